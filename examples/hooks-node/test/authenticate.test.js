// POST /authenticate against a real server, the users file format, and the
// add-user script.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AUTH_TTL, BAD_CREDENTIALS } from '../src/authenticate.js';
import { hashPassword, loadUsers, parseHash, parseUsers, upsertUser, verifyPassword } from '../src/users.js';
import { authReq, startServer } from './helpers.js';

// Cheap hashes keep the suite fast; the cost parameters travel in the hash.
const FAST = { ln: 10, r: 8, p: 1 };

describe('authenticate', async () => {
  const binary = Buffer.from([0x00, 0xff, 0xfe]);
  const text = [
    '# test users',
    `alice:${await hashPassword(Buffer.from('wonderland'), FAST)}`,
    `bin:${await hashPassword(binary, FAST)}`,
    '',
  ].join('\n');
  const srv = await startServer({ state: { users: parseUsers(text, 'users.txt') } });

  /** @param {Record<string, unknown>} f */
  const ask = async (f) => {
    const res = await srv.post('/authenticate', authReq(f));
    assert.equal(res.status, 200);
    return res.json();
  };

  it('right password -> allow', async () => {
    assert.deepEqual(await ask({ password: 'wonderland' }), { result: 'allow', cache_ttl: AUTH_TTL.allow });
  });
  it('wrong password -> deny 134 with a reason', async () => {
    assert.deepEqual(await ask({ password: 'Wonderland' }), {
      result: 'deny', reason_code: BAD_CREDENTIALS, reason: 'bad user name or password', cache_ttl: AUTH_TTL.deny,
    });
  });
  it('no password -> deny 134', async () => {
    const d = await ask({});
    assert.equal(d.result, 'deny');
    assert.equal(d.reason_code, 134);
    assert.equal(d.reason, 'a password is required');
  });
  it('unknown user -> ignore', async () => {
    assert.deepEqual(await ask({ username: 'mallory', password: 'wonderland' }), { result: 'ignore', cache_ttl: AUTH_TTL.ignore });
  });
  it('no user name -> ignore', async () => {
    assert.deepEqual(await ask({ username: '', password: 'x' }), { result: 'ignore', cache_ttl: AUTH_TTL.ignore });
  });
  it('a non-UTF-8 password arrives as password_base64', async () => {
    assert.equal((await ask({ username: 'bin', password_base64: binary.toString('base64') })).result, 'allow');
    assert.equal((await ask({ username: 'bin', password_base64: 'AAAA' })).result, 'deny');
  });
  it('bad requests -> 400 naming the field', async () => {
    for (const [body, msg] of /** @type {[unknown, RegExp][]} */ ([
      [authReq({ password: 5 }), /password: want a string/],
      [authReq({ username: ['a'] }), /username: want a string/],
      [authReq({ client_id: undefined }), /client_id: missing/],
      [authReq({ password_base64: '@@' }), /password_base64: not base64/],
    ])) {
      const res = await srv.post('/authenticate', body);
      assert.equal(res.status, 400);
      assert.match((await res.json()).error, msg);
    }
  });
});

describe('users file', () => {
  it('refuses broken lines, naming file and line', async () => {
    const h = await hashPassword(Buffer.from('x'), FAST);
    const bad = [
      ['alice', /users.txt:1: want name:hash/],
      [`alice:${h}\nalice:${h}`, /users.txt:2: user "alice" is listed twice/],
      ['alice:plain', /users.txt:1: the hash is not a \$scrypt\$/],
      [`alice:${h.replace('ln=10', 'ln=30')}`, /cost parameters out of range/],
      [`alice:${h.replace('r=8', 'r=4096')}`, /cost parameters out of range/],
      [`#x\n\n:${h}`, /users.txt:3: the user name is empty/],
    ];
    for (const [text, msg] of bad) assert.throws(() => parseUsers(/** @type {string} */ (text), 'users.txt'), msg);
  });

  it('names a missing file', async () => {
    await assert.rejects(loadUsers('/nonexistent/users.txt'), /USERS_FILE \/nonexistent\/users.txt: ENOENT/);
  });

  it('hashes round-trip and use the PHC format', async () => {
    const h = await hashPassword(Buffer.from('pw'));
    assert.match(h, /^\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    const parsed = /** @type {import('../src/users.js').ScryptHash} */ (parseHash(h));
    assert.equal(await verifyPassword(parsed, Buffer.from('pw')), true);
    assert.equal(await verifyPassword(parsed, Buffer.from('pW')), false);
  });

  it('upsertUser replaces in place and keeps comments, else appends', () => {
    const text = '# users\nalice:$old\nbob:$b\n';
    assert.equal(upsertUser(text, 'alice', '$new'), '# users\nalice:$new\nbob:$b\n');
    assert.equal(upsertUser(text, 'carol', '$c'), '# users\nalice:$old\nbob:$b\ncarol:$c\n');
    assert.equal(upsertUser('', 'a', '$x'), 'a:$x\n');
  });
});

describe('npm run add-user', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hooks-node-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const script = fileURLToPath(new URL('../bin/add-user.js', import.meta.url));

  /**
   * @param {string[]} args
   * @param {string} stdin
   * @returns {Promise<{code: number | null, stderr: string}>}
   */
  const run = (args, stdin) => new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin.end(stdin);
  });

  it('creates the file, then updates the entry; the server accepts the new password', async () => {
    const file = join(dir, 'users.txt');
    assert.equal((await run([file, 'alice'], 'first\n')).code, 0);
    assert.equal((await run([file, 'bob'], 'b0b')).code, 0);
    assert.equal((await run([file, 'alice'], 'second\n')).code, 0);
    const text = await readFile(file, 'utf8');
    assert.deepEqual(text.split('\n').map((l) => l.split(':')[0]), ['alice', 'bob', '']);

    const srv = await startServer({ state: { users: await loadUsers(file) } });
    const ask = async (/** @type {string} */ username, /** @type {string} */ password) =>
      (await (await srv.post('/authenticate', authReq({ username, password }))).json()).result;
    assert.equal(await ask('alice', 'second'), 'allow');
    assert.equal(await ask('alice', 'first'), 'deny');
    assert.equal(await ask('bob', 'b0b'), 'allow');
  });

  it('refuses bad arguments with exit 2 and a message', async () => {
    const file = join(dir, 'u2.txt');
    for (const [args, stdin, msg] of /** @type {[string[], string, RegExp][]} */ ([
      [[file], 'pw', /usage: npm run add-user -- FILE NAME/],
      [[file, 'a:b'], 'pw', /contains ":"/],
      [[file, 'alice'], '\n', /the password is empty/],
    ])) {
      const r = await run(args, stdin);
      assert.equal(r.code, 2);
      assert.match(r.stderr, msg);
    }
  });

  it('refuses to rewrite a file it cannot parse', async () => {
    const file = join(dir, 'broken.txt');
    await writeFile(file, 'not a users file\n');
    const r = await run([file, 'alice'], 'pw');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /broken.txt:1: want name:hash/);
    assert.equal(await readFile(file, 'utf8'), 'not a users file\n');
  });
});
