// The revoke recipe against a fake broker admin API: disabling a user
// purges the broker's cached decisions, kicks exactly that user's clients
// (across pages of the client list), persists the mark, and denies the
// user's next CONNECT; the CLI drives it the same way.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hashPassword, parseHash } from '../src/users.js';
import { loadDisabled } from '../src/revoke.js';
import { startServer } from './helpers.js';

const BROKER_TOKEN = 'broker-admin-token';
const HOOKS_TOKEN = 'hooks-admin-token';

/**
 * A fake of the broker's admin API that records every call.
 * @returns {Promise<{url: string, calls: {method: string, path: string, auth: string, type: string, body: any}[], clients: {client_id: string, username: string}[]}>}
 */
async function fakeBroker() {
  const state = {
    url: '',
    /** @type {{method: string, path: string, auth: string, type: string, body: any}[]} */
    calls: [],
    clients: [
      { client_id: 'alice-phone', username: 'alice' },
      { client_id: 'alice-laptop', username: 'alice' },
      { client_id: 'x-1', username: 'alice2' }, // matches q=alice, is not alice
      { client_id: 'bob-1', username: 'bob' },
    ],
  };
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://broker');
      state.calls.push({ method: req.method ?? '', path: url.pathname + url.search, auth: req.headers.authorization ?? '', type: req.headers['content-type'] ?? '', body: raw ? JSON.parse(raw) : undefined });
      const send = (/** @type {number} */ status, /** @type {unknown} */ v) => {
        res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(v));
      };
      if (req.headers.authorization !== `Bearer ${BROKER_TOKEN}`) return send(401, { error: 'missing or wrong admin token' });
      if (req.method === 'GET' && url.pathname === '/api/v1/clients') {
        // Pages of one, to make the client follow "next".
        const q = url.searchParams.get('q') ?? '';
        const match = state.clients.filter((c) => c.client_id.includes(q) || c.username.includes(q)).sort((a, b) => a.client_id.localeCompare(b.client_id));
        const from = Number(url.searchParams.get('cursor') || '0');
        return send(200, { items: match.slice(from, from + 1), next: from + 1 < match.length ? String(from + 1) : '', total: match.length });
      }
      const kick = /^\/api\/v1\/clients\/([^/]+)\/kick$/.exec(url.pathname);
      if (req.method === 'POST' && kick) {
        const id = decodeURIComponent(kick[1]);
        const i = state.clients.findIndex((c) => c.client_id === id);
        if (i < 0) return send(404, { error: `no client ${id}` });
        state.clients.splice(i, 1);
        return send(200, { kicked: true, session_discarded: false });
      }
      if (req.method === 'POST' && url.pathname === '/api/v1/cache/purge') return send(200, { purged: 2, plugins: { hooks: 2 } });
      send(404, { error: 'no such route' });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  after(() => new Promise((resolve) => { server.close(() => resolve(undefined)); server.closeAllConnections(); }));
  state.url = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (server.address()).port}`;
  return state;
}

// Started at the top level: the helpers close them when the file ends.
const broker = await fakeBroker();
const disabledFile = join(await mkdtemp(join(tmpdir(), 'revoke-')), 'disabled.txt');
const aliceHash = parseHash(await hashPassword(Buffer.from('pw'), { ln: 4, r: 8, p: 1 }));
assert.notEqual(typeof aliceHash, 'string');
const hooks = await startServer({
  env: { HOOKS_ADMIN_TOKEN: HOOKS_TOKEN, MQTTD_ADMIN_URL: broker.url, MQTTD_ADMIN_TOKEN: BROKER_TOKEN, DISABLED_FILE: disabledFile },
  state: { users: new Map([['alice', /** @type {any} */ (aliceHash)]]) },
});
const other = await startServer({ env: { HOOKS_ADMIN_TOKEN: HOOKS_TOKEN, MQTTD_ADMIN_URL: broker.url, MQTTD_ADMIN_TOKEN: 'wrong' } });
const plain = await startServer();

describe('revoke now', () => {
  const admin = (/** @type {string} */ path, /** @type {string} */ token = HOOKS_TOKEN) =>
    fetch(hooks.url + path, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
  const login = async () => (await hooks.post('/authenticate', { client_id: 'c9', username: 'alice', password: 'pw', remote_addr: '127.0.0.1:1', listener: 'tcp', transport: 'tcp', protocol_version: 4, clean_start: true, keep_alive: 30 })).json();

  it('lets alice in before', async () => {
    assert.equal((await login()).result, 'allow');
  });

  it('refuses a missing or wrong token', async () => {
    assert.equal((await admin('/users/alice/disable', 'nope')).status, 401);
    assert.equal((await fetch(hooks.url + '/users/alice/disable', { method: 'POST' })).status, 401);
    assert.equal((await fetch(hooks.url + '/users/alice/disable')).status, 405);
    assert.equal(broker.calls.length, 0);
  });

  it('disables alice: purge, kick her clients only, purge again', async () => {
    const res = await admin('/users/alice/disable');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { user: 'alice', disabled: true, kicked: ['alice-laptop', 'alice-phone'], purged: 4 });
    const seen = broker.calls.map((c) => `${c.method} ${c.path}`);
    assert.deepEqual(seen, [
      'POST /api/v1/cache/purge',
      'GET /api/v1/clients?q=alice&limit=1000',
      'GET /api/v1/clients?q=alice&limit=1000&cursor=1',
      'GET /api/v1/clients?q=alice&limit=1000&cursor=2',
      'POST /api/v1/clients/alice-laptop/kick',
      'POST /api/v1/clients/alice-phone/kick',
      'POST /api/v1/cache/purge',
    ]);
    for (const c of broker.calls) {
      assert.equal(c.auth, `Bearer ${BROKER_TOKEN}`);
      if (c.method === 'POST') assert.equal(c.type, 'application/json');
    }
    assert.deepEqual(broker.calls[0].body, { username: 'alice' });
    assert.deepEqual(broker.clients.map((c) => c.client_id), ['x-1', 'bob-1']);
    assert.deepEqual([...await loadDisabled(disabledFile)], ['alice']);
    assert.match(await readFile(disabledFile, 'utf8'), /^alice$/m);
  });

  it('denies alice\'s next login with 0x8A banned', async () => {
    const d = await login();
    assert.equal(d.result, 'deny');
    assert.equal(d.reason_code, 138);
  });

  it('enables alice again through the CLI', async () => {
    broker.calls.length = 0;
    const cli = fileURLToPath(new URL('../bin/disable-user.js', import.meta.url));
    const out = await new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [cli, 'enable', 'alice'], { env: { PATH: process.env.PATH, HOOKS_URL: hooks.url, HOOKS_ADMIN_TOKEN: HOOKS_TOKEN } });
      let text = '';
      p.stdout.on('data', (c) => { text += c; });
      p.stderr.on('data', (c) => { text += c; });
      p.on('error', reject);
      p.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`exit ${code}: ${text}`))));
    });
    assert.match(String(out), /alice enabled; 2 cached decisions purged/);
    assert.deepEqual(broker.calls.map((c) => `${c.method} ${c.path}`), ['POST /api/v1/cache/purge']);
    assert.equal((await login()).result, 'allow');
    assert.deepEqual([...await loadDisabled(disabledFile)], []);
  });

  it('says so when the broker refuses, and keeps the user disabled here', async () => {
    const res = await fetch(other.url + '/users/bob/disable', { method: 'POST', headers: { Authorization: `Bearer ${HOOKS_TOKEN}` } });
    assert.equal(res.status, 502);
    assert.match((await res.json()).error, /bob is disabled here, but the broker was not told: .*401.*MQTTD_ADMIN_TOKEN/);
    assert.ok(other.state.disabled?.has('bob'));
  });

  it('has no /users routes without HOOKS_ADMIN_TOKEN', async () => {
    const res = await fetch(plain.url + '/users/alice/disable', { method: 'POST', headers: { Authorization: 'Bearer x' } });
    assert.equal(res.status, 404);
    assert.match((await res.json()).error, /HOOKS_ADMIN_TOKEN/);
  });
});
