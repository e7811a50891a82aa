// docs/plugins.md must stay true: its worked signature example is recomputed,
// and its curl session is run against a real hooks-node with the compose
// stack's users and ACL, each answer compared with the "# → " line under it.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { computeSignature, verifySignature } from '../src/signature.js';

const here = (/** @type {string} */ p) => fileURLToPath(new URL(p, import.meta.url));
const doc = await readFile(here('../../../docs/plugins.md'), 'utf8');

/** @param {string} name */
function has(name) {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('docs/plugins.md', () => {
  it('worked signature example: v2 is HMAC-SHA256(secret, t LF method LF path LF request-id LF body)', () => {
    /** @param {string} key */
    const field = (key) => {
      const m = new RegExp(`^${key}: +(.+)$`, 'm').exec(doc);
      assert.ok(m, `docs/plugins.md has no "${key}:" line in the worked example`);
      return m[1];
    };
    const [secret, t, method, path, requestId, body, v2] = ['secret', 't', 'method', 'path', 'request-id', 'body', 'v2'].map(field);
    const signed = { method, path, requestId, body: Buffer.from(body) };
    assert.equal(computeSignature(secret, t, signed), v2);
    assert.ok(doc.includes(`X-Mqttd-Signature: t=${t},v2=${v2}`), 'the header line matches the example');
    assert.equal(verifySignature(`t=${t},v2=${v2}`, signed, [secret], Number(t)).ok, true);
  });

  it('the curl session answers what the guide says', { skip: !(has('curl') && has('openssl')) && 'needs curl and openssl' }, async () => {
    const blocks = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
    const helpers = blocks.find((b) => b.includes('sign() {'));
    const session = blocks.filter((b) => b.includes('# → '));
    assert.ok(helpers && session.length >= 4, 'found the helpers and the example blocks');
    const expected = session.flatMap((b) => b.split('\n').filter((l) => l.startsWith('# → ')).map((l) => l.slice(4).trim()));

    const child = spawn(process.execPath, [here('../src/main.js')], {
      env: {
        PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', HOOKS_SECRET: 'change-me',
        USERS_FILE: here('../../compose/hooks/users.txt'), ACL_FILE: here('../../compose/hooks/acl.json'),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    after(() => child.kill('SIGKILL'));
    let log = '';
    const port = await new Promise((resolve, reject) => {
      child.stderr.on('data', (d) => {
        log += d;
        const m = /"msg":"listening","port":(\d+)/.exec(log);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', () => reject(new Error(`hooks-node exited:\n${log}`)));
    });

    const script = [helpers, ...session].join('\n');
    const sh = spawn('sh', ['-e', '-c', script], { env: { PATH: process.env.PATH, PLUGIN: `http://127.0.0.1:${port}` } });
    let out = '';
    let err = '';
    sh.stdout.on('data', (d) => { out += d; });
    sh.stderr.on('data', (d) => { err += d; });
    const [code] = await once(sh, 'exit');
    assert.equal(code, 0, `the session failed:\n${err}`);
    assert.deepEqual(out.trim().split('\n').map((l) => l.trim()), expected);
  });
});
