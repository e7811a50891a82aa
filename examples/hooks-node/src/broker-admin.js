// A small client of the broker's admin REST API (api/admin.yaml in the
// mqttd repository): what the revoke recipe needs to act on the broker.
//
//   GET  /api/v1/clients?q=NAME        find the user's connected clients
//   POST /api/v1/clients/{id}/kick     disconnect one now
//   POST /api/v1/cache/purge           drop cached decisions for the user
//
// The broker wants its admin.token as a bearer token, and JSON bodies.

/** An answer of the broker that is not a success. */
export class BrokerAdminError extends Error {
  /**
   * @param {string} message
   * @param {number} status 0 when the broker could not be reached
   */
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/**
 * @typedef {object} ClientSummary
 * @property {string} client_id
 * @property {string} username
 *
 * @typedef {object} BrokerAdmin
 * @property {(username: string) => Promise<string[]>} clientsOf client ids of the user's connected clients
 * @property {(clientId: string) => Promise<boolean>} kick false when the client had already gone
 * @property {(username: string) => Promise<number>} purgeUser cached decisions dropped, across plugins
 */

/**
 * @param {object} o
 * @param {string} o.url the broker's admin listener, e.g. http://127.0.0.1:9180
 * @param {string} o.token its admin.token ("" sends none: a broker without a token answers only over loopback)
 * @param {typeof fetch} [o.fetch]
 * @param {number} [o.timeoutMs] per request (default 5000)
 * @returns {BrokerAdmin}
 */
export function brokerAdmin(o) {
  const doFetch = o.fetch ?? fetch;
  const base = o.url.replace(/\/+$/, '');
  const timeoutMs = o.timeoutMs ?? 5000;

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @returns {Promise<{status: number, json: any}>}
   */
  async function call(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    if (o.token) headers.Authorization = `Bearer ${o.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await doFetch(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new BrokerAdminError(`cannot reach the broker's admin API at ${base} (MQTTD_ADMIN_URL): ${/** @type {Error} */ (err).message}`, 0);
    }
    const text = await res.text();
    let json;
    try {
      json = text === '' ? {} : JSON.parse(text);
    } catch {
      json = { error: text.slice(0, 200) };
    }
    return { status: res.status, json };
  }

  /**
   * @param {string} what
   * @param {{status: number, json: any}} r
   */
  const fail = (what, r) => {
    const hint = r.status === 401 ? ' (set MQTTD_ADMIN_TOKEN to the broker\'s admin.token)' : '';
    return new BrokerAdminError(`${what}: broker answered ${r.status}: ${r.json?.error ?? 'no message'}${hint}`, r.status);
  };

  return {
    async clientsOf(username) {
      /** @type {string[]} */
      const ids = [];
      let cursor = '';
      // The search matches substrings of ids and names: keep exact names.
      for (let pages = 0; pages < 1000; pages++) {
        const q = new URLSearchParams({ q: username, limit: '1000' });
        if (cursor) q.set('cursor', cursor);
        const r = await call('GET', `/api/v1/clients?${q}`);
        if (r.status !== 200) throw fail('listing clients', r);
        for (const c of /** @type {ClientSummary[]} */ (r.json.items ?? [])) {
          if (c.username === username) ids.push(c.client_id);
        }
        cursor = r.json.next ?? '';
        if (!cursor) break;
      }
      return ids;
    },
    async kick(clientId) {
      const r = await call('POST', `/api/v1/clients/${encodeURIComponent(clientId)}/kick`, { discard_session: false });
      if (r.status === 404) return false;
      if (r.status !== 200) throw fail(`kicking ${clientId}`, r);
      return Boolean(r.json.kicked);
    },
    async purgeUser(username) {
      const r = await call('POST', '/api/v1/cache/purge', { username });
      if (r.status !== 200) throw fail('purging cached decisions', r);
      return Number(r.json.purged ?? 0);
    },
  };
}
