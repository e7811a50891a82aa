// The process: environment, start-up errors, SIGHUP reload, graceful SIGTERM.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hashPassword } from '../src/users.js';
import { signatureHeader } from '../src/signature.js';
import { authReq } from './helpers.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const dir = await mkdtemp(join(tmpdir(), 'hooks-node-main-'));
after(() => rm(dir, { recursive: true, force: true }));

/**
 * Starts src/main.js; log lines (stderr, JSON) are parsed as they come.
 * @param {Record<string, string>} env
 */
function start(env) {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  /** @type {Record<string, any>[]} */
  const logs = [];
  /** @type {((l: Record<string, any>) => void)[]} */
  let waiters = [];
  let buf = '';
  child.stderr.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      logs.push(line);
      waiters.forEach((w) => w(line));
    }
  });
  let stdout = '';
  child.stdout.on('data', (d) => { stdout += d; });
  const exited = once(child, 'exit');
  after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  return {
    child,
    logs,
    exited,
    stdout: () => stdout,
    /** Resolves with the first log line (already seen or to come) whose msg matches. @param {RegExp} re */
    waitLog(re) {
      const seen = logs.find((l) => re.test(l.msg));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => {
        waiters.push(function w(l) {
          if (re.test(l.msg)) {
            waiters = waiters.filter((x) => x !== w);
            resolve(l);
          }
        });
      });
    },
  };
}

let openRequests = 0;

/**
 * A signed POST with node:http, so a test can hold the body back.
 * @param {number} port
 * @param {string} path
 * @param {string} body
 * @param {string} secret
 * @param {Record<string, string>} [headers]
 */
function openRequest(port, path, body, secret, headers = {}) {
  const requestId = `main-${++openRequests}`;
  const signature = signatureHeader(secret, Math.floor(Date.now() / 1000), { method: 'POST', path, requestId, body });
  const req = http.request({
    host: '127.0.0.1', port, path, method: 'POST',
    headers: {
      'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
      'X-Mqttd-Request-Id': requestId, 'X-Mqttd-Signature': signature, ...headers,
    },
  });
  const response = new Promise((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('error', reject);
  });
  return { req, response: /** @type {Promise<{status: number, body: string}>} */ (response) };
}

describe('main', () => {
  it('refuses a bad environment with exit 2 and a message naming the variable or file', async () => {
    for (const [env, msg] of /** @type {[Record<string, string>, RegExp][]} */ ([
      [{ PORT: 'http' }, /PORT="http": want an integer from 0 to 65535/],
      [{ USERS_FILE: join(dir, 'missing.txt') }, /USERS_FILE .*missing.txt: ENOENT/],
      [{ ACL_FILE: join(dir, 'missing.json') }, /ACL_FILE .*missing.json: ENOENT/],
      [{ HOOKS_SECRET_PREVIOUS: 'old' }, /HOOKS_SECRET_PREVIOUS is set without HOOKS_SECRET/],
      [{ EVENTS: 'broker_started' }, /EVENTS: "broker_started" is not an event type/],
    ])) {
      const p = start(env);
      const [code] = await p.exited;
      assert.equal(code, 2, JSON.stringify(env));
      assert.match(p.logs.map((l) => l.msg).join('\n'), msg);
    }
  });

  it('warns when it runs without a secret, users or ACL', async () => {
    const p = start({});
    await p.waitLog(/^listening$/);
    for (const re of [/HOOKS_SECRET is not set/, /USERS_FILE is not set/, /ACL_FILE is not set/]) {
      assert.ok(p.logs.some((l) => l.level === 'warn' && re.test(l.msg)), String(re));
    }
    p.child.kill('SIGTERM');
    assert.deepEqual(await p.exited, [0, null]);
  });

  it('reloads the users file on SIGHUP, keeping the old one when the new one is broken', async () => {
    const users = join(dir, 'users.txt');
    await writeFile(users, `alice:${await hashPassword(Buffer.from('one'), { ln: 10, r: 8, p: 1 })}\n`);
    const p = start({ USERS_FILE: users, HOOKS_SECRET: 's' });
    const { port } = await p.waitLog(/^listening$/);
    const ask = async (/** @type {string} */ password) => {
      const { req, response } = openRequest(port, '/authenticate', JSON.stringify(authReq({ password })), 's');
      req.end(JSON.stringify(authReq({ password })));
      return JSON.parse((await response).body).result;
    };
    assert.equal(await ask('one'), 'allow');

    await writeFile(users, `alice:${await hashPassword(Buffer.from('two'), { ln: 10, r: 8, p: 1 })}\n`);
    p.child.kill('SIGHUP');
    await p.waitLog(/^reloaded$/);
    assert.equal(await ask('two'), 'allow');
    assert.equal(await ask('one'), 'deny');

    await writeFile(users, 'broken\n');
    p.child.kill('SIGHUP');
    assert.match((await p.waitLog(/^reload failed/)).msg, /users.txt:1: want name:hash/);
    assert.equal(await ask('two'), 'allow');

    p.child.kill('SIGTERM');
    assert.deepEqual(await p.exited, [0, null]);
  });

  it('on SIGTERM finishes the request in flight, then exits 0', async () => {
    const p = start({ HOOKS_SECRET: 's' });
    const { port } = await p.waitLog(/^listening$/);
    const body = JSON.stringify({ events: [{ id: 'last', type: 'broker_pre_shutdown' }] });
    const { req, response } = openRequest(port, '/events', body, 's', { Expect: '100-continue' });
    req.flushHeaders();
    // "100 Continue" proves the server has the request: it is now in flight.
    await once(req, 'continue');
    req.write(body.slice(0, 10));

    p.child.kill('SIGTERM');
    await p.waitLog(/^shutting down$/);
    req.end(body.slice(10));
    assert.equal((await response).status, 204);
    assert.deepEqual(await p.exited, [0, null]);
    assert.ok(p.logs.some((l) => l.msg === 'stopped'));
    assert.equal(JSON.parse(p.stdout()).id, 'last');
  });
});
