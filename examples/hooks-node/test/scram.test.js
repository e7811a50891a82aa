// SCRAM-SHA-256 as MQTT 5 enhanced authentication: the RFC 7677 example
// exchange, refusals an attacker would try, POST /authenticate end to end,
// and the add-scram-user script.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { authenticate } from '../src/authenticate.js';
import { SCRAM_METHOD, ScramServer, scramKeys } from '../src/scram.js';
import { loadUsers, parseUsers, scramHash, verifyPassword } from '../src/users.js';
import { authReq, startServer } from './helpers.js';

// RFC 7677 §3: user "user", password "pencil".
const RFC = {
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

const b64 = (/** @type {string} */ s) => Buffer.from(s).toString('base64');
const unb64 = (/** @type {string | undefined} */ s) => Buffer.from(s ?? '', 'base64').toString();

/** The RFC's user as a users-file entry. */
function rfcUsers() {
  const keys = scramKeys(pbkdf2Sync('pencil', RFC.salt, 4096, 32, 'sha256'));
  const line = `user:$scram-sha-256$i=4096$${RFC.salt.toString('base64')}$${keys.storedKey.toString('base64')}$${keys.serverKey.toString('base64')}`;
  return parseUsers(line + '\n', 'users.txt');
}

/**
 * A client's proof for a server-first message (RFC 5802 §3).
 * @param {string} password
 * @param {string} clientFirstBare
 * @param {string} serverFirst
 */
function clientFinal(password, clientFirstBare, serverFirst) {
  const attrs = Object.fromEntries(serverFirst.split(',').map((p) => [p[0], p.slice(2)]));
  const salted = pbkdf2Sync(password, Buffer.from(attrs.s, 'base64'), Number(attrs.i), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const withoutProof = `c=biws,r=${attrs.r}`;
  const sig = createHmac('sha256', storedKey).update(`${clientFirstBare},${serverFirst},${withoutProof}`).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ sig[i]));
  return `${withoutProof},p=${proof.toString('base64')}`;
}

/** @param {Partial<import('../src/scram.js').StepRequest>} f */
const step = (f) => ({ auth_method: SCRAM_METHOD, exchange_id: 'x1', exchange_step: 1, client_id: 'c1', username: 'user', ...f });

describe('SCRAM-SHA-256 exchange', () => {
  const users = rfcUsers();
  const newServer = (/** @type {object} */ o = {}) => new ScramServer({ users: () => users, nonce: () => RFC.serverNonce, ...o });

  it('reproduces the RFC 7677 example byte for byte', () => {
    const s = newServer();
    const first = s.step(step({ auth_data: b64(RFC.clientFirst) }));
    assert.equal(first.result, 'continue');
    assert.equal(unb64(first.auth_data), RFC.serverFirst);
    const final = s.step(step({ exchange_step: 2, auth_data: b64(RFC.clientFinal) }));
    assert.deepEqual({ ...final, auth_data: unb64(final.auth_data) }, { result: 'allow', auth_data: RFC.serverFinal, cache_ttl: 0 });
  });

  it('a wrong password is refused (134), and the exchange is used up', () => {
    const s = newServer();
    s.step(step({ auth_data: b64(RFC.clientFirst) }));
    const wrong = clientFinal('pen', 'n=user,r=rOprNGfwEbeRWgbNEkqO', RFC.serverFirst);
    assert.equal(s.step(step({ exchange_step: 2, auth_data: b64(wrong) })).reason_code, 134);
    // The right proof cannot follow: one try per exchange.
    assert.equal(s.step(step({ exchange_step: 2, auth_data: b64(RFC.clientFinal) })).result, 'deny');
  });

  it('refuses what an attacker would try', () => {
    const s = newServer();
    s.step(step({ auth_data: b64(RFC.clientFirst) }));
    // Another connection naming this exchange: denied, and it is gone.
    assert.match(s.step(step({ exchange_step: 2, client_id: 'other', auth_data: b64(RFC.clientFinal) })).reason ?? '', /another client/);
    // A guessed exchange id.
    assert.match(s.step(step({ exchange_id: 'guess', exchange_step: 2, auth_data: b64(RFC.clientFinal) })).reason ?? '', /no such SCRAM exchange/);
    // An exchange id used twice for a first step.
    s.step(step({ exchange_id: 'x2', auth_data: b64(RFC.clientFirst) }));
    assert.match(s.step(step({ exchange_id: 'x2', auth_data: b64(RFC.clientFirst) })).reason ?? '', /reused/);
    // SCRAM as one user, CONNECT as another.
    assert.match(s.step(step({ exchange_id: 'x3', username: 'admin', auth_data: b64(RFC.clientFirst) })).reason ?? '', /CONNECT user name/);
    // Channel binding, and garbage.
    assert.equal(s.step(step({ exchange_id: 'x4', auth_data: b64('p=tls-unique,,n=user,r=abc') })).result, 'deny');
    assert.equal(s.step(step({ exchange_id: 'x5', auth_data: b64('\u0000\u0001') })).result, 'deny');
    // A final message with another nonce.
    s.step(step({ exchange_id: 'x6', auth_data: b64(RFC.clientFirst) }));
    assert.match(s.step(step({ exchange_id: 'x6', exchange_step: 2, auth_data: b64(RFC.clientFinal.replace('rOpr', 'XOpr')) })).reason ?? '', /client-final/);
  });

  it('an unknown user gets a stable salt, then a refusal', () => {
    const s = newServer();
    const ask = (/** @type {string} */ id) => unb64(s.step(step({ exchange_id: id, username: 'nobody', auth_data: b64('n,,n=nobody,r=abc') })).auth_data);
    const a = ask('u1');
    assert.equal(ask('u2'), a);
    const final = clientFinal('x', 'n=nobody,r=abc', a);
    assert.equal(s.step(step({ exchange_id: 'u1', exchange_step: 2, username: 'nobody', auth_data: b64(final) })).reason_code, 134);
  });

  it('bounds exchanges in number and age', () => {
    const clock = { ms: 0 };
    const s = newServer({ maxPending: 2, ttlMs: 1000, now: () => clock.ms });
    s.step(step({ exchange_id: 'a', auth_data: b64(RFC.clientFirst) }));
    s.step(step({ exchange_id: 'b', auth_data: b64(RFC.clientFirst) }));
    assert.equal(s.step(step({ exchange_id: 'c', auth_data: b64(RFC.clientFirst) })).reason_code, 137);
    clock.ms = 1001;
    assert.match(s.step(step({ exchange_id: 'a', exchange_step: 2, auth_data: b64(RFC.clientFinal) })).reason ?? '', /no such/);
    assert.equal(s.pending.size, 0);
  });

  it('ignores other methods', () => {
    assert.equal(newServer().step(step({ auth_method: 'KERBEROS' })).result, 'ignore');
  });
});

describe('SCRAM users', () => {
  it('a SCRAM entry also checks a plain password', async () => {
    const users = parseUsers(`bob:${await scramHash(Buffer.from('s3cret'))}\n`, 'users.txt');
    const hash = /** @type {import('../src/users.js').UserHash} */ (users.get('bob'));
    assert.equal(await verifyPassword(hash, Buffer.from('s3cret')), true);
    assert.equal(await verifyPassword(hash, Buffer.from('s3cret!')), false);
    const base = { client_id: 'c', username: 'bob' };
    assert.equal((await authenticate(users, { ...base, password: 's3cret' })).result, 'allow');
  });

  it('rejects malformed entries', () => {
    assert.throws(() => parseUsers('bob:$scram-sha-256$i=10$AAAAAAAAAAA=$AA==$AA==\n', 'u'), /iterations out of range/);
    assert.throws(() => parseUsers('bob:$scram-sha-256$i=4096$AAAAAAAAAAA=$AA==$AA==\n', 'u'), /not 32 bytes/);
  });
});

describe('POST /authenticate with SCRAM-SHA-256', async () => {
  const srv = await startServer({ state: { users: rfcUsers() } });
  /** @param {Record<string, unknown>} f */
  const ask = async (f) => {
    const res = await srv.post('/authenticate', authReq({ username: 'user', auth_method: SCRAM_METHOD, ...f }));
    assert.equal(res.status, 200);
    return res.json();
  };

  it('runs the exchange; a plain CONNECT still gets the password check', async () => {
    const first = await ask({ exchange_id: 'e1', exchange_step: 1, auth_data: b64(RFC.clientFirst) });
    assert.equal(first.result, 'continue');
    const serverFirst = unb64(first.auth_data);
    const final = await ask({ exchange_id: 'e1', exchange_step: 2, auth_data: b64(clientFinal('pencil', 'n=user,r=rOprNGfwEbeRWgbNEkqO', serverFirst)) });
    assert.equal(final.result, 'allow');
    assert.match(unb64(final.auth_data), /^v=/);
    const plain = await srv.post('/authenticate', authReq({ username: 'user', password: 'pencil' }));
    assert.equal((await plain.json()).result, 'allow');
  });

  it('answers 400 to a mistyped field', async () => {
    const res = await srv.post('/authenticate', authReq({ auth_method: SCRAM_METHOD, exchange_step: 'one' }));
    assert.equal(res.status, 400);
  });
});

describe('npm run add-scram-user', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hooks-scram-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const script = fileURLToPath(new URL('../bin/add-user.js', import.meta.url));

  it('writes SCRAM keys, not the password', async () => {
    const file = join(dir, 'users.txt');
    const child = spawn(process.execPath, [script, '--scram', file, 'carol'], { stdio: ['pipe', 'ignore', 'pipe'] });
    child.stdin.end('correct horse\n');
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 0);
    const text = await readFile(file, 'utf8');
    assert.match(text, /^carol:\$scram-sha-256\$i=4096\$/);
    assert.doesNotMatch(text, /correct horse/);
    const hash = /** @type {import('../src/users.js').UserHash} */ ((await loadUsers(file)).get('carol'));
    assert.equal(await verifyPassword(hash, Buffer.from('correct horse')), true);
  });
});
