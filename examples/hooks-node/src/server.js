// The plugin's HTTP surface (api/openapi.yaml):
//
//   GET  /manifest         what we do                          signed
//   POST /authenticate     the users file decides              signed
//   POST /topic_filtering  the ACL decides                     signed
//   POST /events           event batches, logged to stdout     signed
//   GET  /events/recent    the last events, for demos/tests    open
//   GET  /healthz          liveness, for the container         open
//   POST /users/{name}/disable|enable  revoke now (src/revoke.js)  HOOKS_ADMIN_TOKEN
//
// "signed": with HOOKS_SECRET set, a request without a valid X-Mqttd-Signature
// gets 401. On a decision call the broker reads 401 as deny, so a broker with
// the wrong secret lets nobody in rather than everybody.
import http from 'node:http';
import { authenticate, parseAuthenticate } from './authenticate.js';
import { decide, parseTopicFiltering, TOPIC_TTL } from './acl.js';
import { batchProblem, RecentEvents } from './events.js';
import { HttpError, parseJSONObject, readBody, sendJSON } from './http.js';
import { ReplayGuard, verifySignature } from './signature.js';
import { brokerAdmin } from './broker-admin.js';
import { disabledAnswer, serveUsers } from './revoke.js';
import { parseStep, ScramServer } from './scram.js';

/**
 * @typedef {import('./api.js').components['schemas']['Manifest']} Manifest
 * @typedef {import('./api.js').components['schemas']['Decision']} Decision
 * @typedef {import('./api.js').components['schemas']['EventBatch']} EventBatch
 * @typedef {import('./config.js').Config} Config
 * @typedef {{users: Map<string, import('./users.js').UserHash>, acl: import('./acl.js').Acl, disabled?: Set<string>}} State
 * @typedef {(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void} Log
 *
 * @typedef {object} Options
 * @property {Config} config
 * @property {State} state users and ACL; main swaps them on SIGHUP
 * @property {string} version
 * @property {Log} [log] diagnostics (default: none)
 * @property {(line: string) => void} [eventOut] one JSON line per new event (default: stdout)
 * @property {() => number} [now] the clock in ms (tests set it; default Date.now)
 * @property {import('./broker-admin.js').BrokerAdmin} [broker] the broker's admin API (default: from the config)
 *
 * @typedef {{req: http.IncomingMessage, res: http.ServerResponse, body: Buffer}} Call
 * @typedef {{signed: boolean, handle: (c: Call) => Promise<void> | void}} Route
 */

/**
 * @param {Options} opts
 * @returns {http.Server}
 */
export function createServer(opts) {
  const { config, state, version } = opts;
  const log = opts.log ?? (() => {});
  const eventOut = opts.eventOut ?? ((line) => process.stdout.write(line + '\n'));
  const now = opts.now ?? Date.now;
  const recent = new RecentEvents(config.recentEvents);
  const replays = new ReplayGuard();
  const broker = opts.broker ?? brokerAdmin({ url: config.mqttdAdminURL, token: config.mqttdAdminToken });
  const scram = new ScramServer({ users: () => state.users, now });

  /** @type {Manifest} */
  const manifest = { name: 'hooks-node', version, authenticate: true, topic_filtering: true, events: config.events };

  /** @type {Record<string, Record<string, Route>>} */
  const routes = {
    '/manifest': { GET: { signed: true, handle: ({ res }) => sendJSON(res, 200, manifest) } },
    '/authenticate': {
      POST: {
        signed: true,
        async handle({ req, res, body }) {
          const obj = parseJSONObject(body);
          const ask = parseAuthenticate(obj);
          // A step of MQTT 5 enhanced authentication (auth_method set) goes
          // to SCRAM; a plain CONNECT to the password check.
          const step = parseStep(obj);
          const d = disabledAnswer(state.disabled, ask.username) ??
            (step ? scram.step(step) : await authenticate(state.users, ask));
          log('info', 'authenticate', { client_id: ask.client_id, username: ask.username, result: d.result, request_id: req.headers['x-mqttd-request-id'] });
          sendJSON(res, 200, d);
        },
      },
    },
    '/topic_filtering': {
      POST: {
        signed: true,
        handle({ req, res, body }) {
          const ask = parseTopicFiltering(parseJSONObject(body));
          const d = decide(state.acl, ask);
          /** @type {Decision} */
          const answer = { ...d, cache_ttl: TOPIC_TTL[d.result] };
          log('info', 'topic_filtering', { client_id: ask.client_id, username: ask.username, action: ask.action, topic: ask.topic, result: d.result, request_id: req.headers['x-mqttd-request-id'] });
          sendJSON(res, 200, answer);
        },
      },
    },
    '/events': {
      POST: {
        signed: true,
        handle({ res, body }) {
          const batch = parseJSONObject(body);
          const problem = batchProblem(batch);
          if (problem) throw new HttpError(400, problem);
          for (const ev of /** @type {EventBatch} */ (batch).events) {
            if (recent.add(ev)) eventOut(JSON.stringify(ev));
          }
          res.writeHead(204).end();
        },
      },
    },
    '/events/recent': { GET: { signed: false, handle: ({ res }) => sendJSON(res, 200, { events: recent.list() }, { 'Cache-Control': 'no-store' }) } },
    '/healthz': { GET: { signed: false, handle: ({ res }) => sendJSON(res, 200, { status: 'ok' }, { 'Cache-Control': 'no-store' }) } },
  };

  /**
   * @param {http.IncomingMessage} req
   * @param {http.ServerResponse} res
   */
  async function serve(req, res) {
    const path = new URL(req.url ?? '/', 'http://plugin').pathname;
    if (path.startsWith('/users/')) {
      await readBody(req, config.maxBodyBytes);
      return serveUsers(path, req, res, { state, disabledFile: config.disabledFile, broker, token: config.adminToken });
    }
    const methods = routes[path];
    if (!methods) throw new HttpError(404, `no such path: ${path}`);
    const route = methods[req.method === 'HEAD' ? 'GET' : req.method ?? ''];
    if (!route) throw new HttpError(405, `${req.method} is not allowed on ${path}`, { Allow: Object.keys(methods).join(', ') });
    // After close() (shutdown) a kept-alive connection would otherwise stay
    // open until it idles out; ask the client to go away after this answer.
    if (!server.listening) res.setHeader('Connection', 'close');
    const body = await readBody(req, config.maxBodyBytes);
    if (route.signed && config.secrets.length > 0) {
      const nowSeconds = Math.floor(now() / 1000);
      const requestId = req.headers['x-mqttd-request-id']?.toString() ?? '';
      // The path as it came on the wire, not the parsed one: the broker signs
      // what it sent, and a proxy that rewrites it breaks the signature.
      const signed = { method: req.method ?? '', path: (req.url ?? '').split('?')[0], requestId, body };
      const sig = verifySignature(req.headers['x-mqttd-signature']?.toString(), signed, config.secrets, nowSeconds);
      const v = sig.ok ? replays.check(requestId, sig.t, nowSeconds) : sig;
      if (!v.ok) {
        log('warn', 'signature rejected', { path, reason: v.reason, request_id: requestId });
        // no-store: this deny is about the sender, not the client asked
        // about; the broker must not cache it as that client's answer.
        throw new HttpError(401, v.reason, { 'Cache-Control': 'no-store' });
      }
    }
    await route.handle({ req, res, body });
  }

  const server = http.createServer((req, res) => {
    // Shutting down (close() was called): a connection whose answer is out
    // is closed now rather than left to idle out.
    res.on('finish', () => {
      if (!server.listening) setImmediate(() => server.closeIdleConnections());
    });
    serve(req, res).catch((err) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) {
        sendJSON(res, err.status, { error: err.message }, err.headers);
        return;
      }
      log('error', 'request failed', { path: req.url, error: String(err?.stack ?? err) });
      sendJSON(res, 500, { error: 'internal error' });
    });
  });
  // Longer than the broker's pooled-connection idle timeout (Go's default is
  // 90s), so the broker closes idle connections, not us: otherwise a POST can
  // race our close and fail with a reset that the broker counts as an error.
  server.keepAliveTimeout = 120_000;
  return server;
}
