// Test helpers: a real server on 127.0.0.1 with an ephemeral port, and a client
// that signs requests the way the broker does.
import { after } from 'node:test';
import { emptyAcl } from '../src/acl.js';
import { loadConfig } from '../src/config.js';
import { createServer } from '../src/server.js';
import { signatureHeader } from '../src/signature.js';

export const SECRET = 'test-secret';

/**
 * @typedef {object} TestServer
 * @property {string} url
 * @property {string[]} lines event lines written to "stdout"
 * @property {{ms: number}} clock the server's clock; tests move it
 * @property {import('../src/server.js').State} state
 * @property {(path: string, body: unknown, opts?: SignOpts) => Promise<Response>} post
 * @property {(path: string, opts?: SignOpts) => Promise<Response>} get
 *
 * @typedef {object} SignOpts
 * @property {string | null} [secret] sign with this secret (default SECRET; null: no header)
 * @property {number} [t] signature timestamp (default: the server's clock)
 * @property {Record<string, string>} [headers]
 * @property {string} [rawBody] send exactly these bytes instead of JSON.stringify(body)
 */

/**
 * Starts a server; it is closed when the test file ends.
 * @param {object} [o]
 * @param {Record<string, string>} [o.env] environment for loadConfig (HOOKS_SECRET defaults to SECRET)
 * @param {Partial<import('../src/server.js').State>} [o.state]
 * @returns {Promise<TestServer>}
 */
export async function startServer(o = {}) {
  const config = loadConfig({ HOOKS_SECRET: SECRET, ...o.env });
  const state = { users: new Map(), acl: emptyAcl(), ...o.state };
  const clock = { ms: Date.UTC(2025, 2, 1, 10, 0, 0) };
  /** @type {string[]} */
  const lines = [];
  const server = createServer({ config, state, version: '0.0.0-test', eventOut: (l) => lines.push(l), now: () => clock.ms });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  after(() => new Promise((resolve) => {
    server.close(() => resolve(undefined));
    server.closeAllConnections();
  }));
  const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
  const url = `http://127.0.0.1:${addr.port}`;
  let requests = 0; // each request gets its own id, as from the broker

  /**
   * @param {string} method
   * @param {string} path
   * @param {string} body
   * @param {SignOpts} opts
   */
  const request = (method, path, body, opts) => {
    /** @type {Record<string, string>} */
    const headers = { 'X-Mqttd-Plugin': 'hooks', 'X-Mqttd-Request-Id': `test-${++requests}`, ...opts.headers };
    const secret = opts.secret === undefined ? SECRET : opts.secret;
    if (secret !== null) {
      const signed = { method, path, requestId: headers['X-Mqttd-Request-Id'], body };
      headers['X-Mqttd-Signature'] = signatureHeader(secret, opts.t ?? Math.floor(clock.ms / 1000), signed);
    }
    if (method === 'POST') headers['Content-Type'] = 'application/json';
    return fetch(url + path, { method, headers, body: method === 'GET' ? undefined : body });
  };
  return {
    url,
    lines,
    clock,
    state,
    post: (path, body, opts = {}) => request('POST', path, opts.rawBody ?? JSON.stringify(body), opts),
    get: (path, opts = {}) => request('GET', path, '', opts),
  };
}

/**
 * A TopicFilteringRequest with defaults.
 * @param {Partial<import('../src/acl.js').TopicFilteringRequest>} f
 */
export function topicReq(f) {
  return { client_id: 'c1', username: 'alice', topic: 'a', action: 'publish', qos: 0, retain: false, ...f };
}

/**
 * An AuthenticateRequest with defaults.
 * @param {Record<string, unknown>} f
 */
export function authReq(f) {
  return {
    client_id: 'c1', username: 'alice', remote_addr: '127.0.0.1:50000', listener: 'default', transport: 'tcp',
    protocol_version: 5, clean_start: true, keep_alive: 60, ...f,
  };
}
