// Revoking a user now: the "revoke now" recipe of docs/plugins.md.
//
//   POST /users/{name}/disable   mark the user disabled, then make the
//                                broker act: purge its cached decisions
//                                for the user and kick their clients
//   POST /users/{name}/enable    lift it (the broker's cached deny is
//                                purged too)
//
// Both need `Authorization: Bearer $HOOKS_ADMIN_TOKEN`; without that
// variable the routes do not exist. A disabled user's CONNECT is denied
// with 0x8A (banned) whatever the password. The disabled names are kept in
// DISABLED_FILE (one per line) when it is set, else in memory only.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { BrokerAdminError } from './broker-admin.js';
import { HttpError, sendJSON } from './http.js';
import { nameProblem } from './users.js';

/** MQTT 5 reason code 0x8A: banned. */
export const BANNED = 138;

/** @typedef {import('./api.js').components['schemas']['Decision']} Decision */

/**
 * The answer for a disabled user, or null when name is not disabled.
 * Cached briefly: enabling the user purges it at the broker anyway.
 * @param {Set<string> | undefined} disabled
 * @param {string} name
 * @returns {Decision | null}
 */
export function disabledAnswer(disabled, name) {
  if (!name || !disabled?.has(name)) return null;
  return { result: 'deny', reason_code: BANNED, reason: 'account disabled', cache_ttl: 10 };
}

/**
 * Reads DISABLED_FILE: one user name per line, "#" comments. A missing
 * file is an empty list.
 * @param {string} file
 * @returns {Promise<Set<string>>}
 */
export async function loadDisabled(file) {
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code !== 'ENOENT') throw err;
  }
  return new Set(text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '' && !l.startsWith('#')));
}

/**
 * Writes the set atomically (temporary file + rename).
 * @param {string} file
 * @param {Set<string>} names
 */
async function saveDisabled(file, names) {
  const tmp = `${file}.tmp-${process.pid}`;
  const body = ['# disabled users, one per line (hooks-node /users/{name}/disable)', ...[...names].sort()].join('\n') + '\n';
  await writeFile(tmp, body, { mode: 0o644 });
  await rename(tmp, file);
}

/**
 * @typedef {object} RevokeOptions
 * @property {{disabled?: Set<string>}} state the server's state; disabled is created when missing
 * @property {string} disabledFile "" = in memory only
 * @property {import('./broker-admin.js').BrokerAdmin} broker
 */

/**
 * Disables name and makes the broker act. The cache is purged before the
 * kick, so a client reconnecting at once asks us again (and is denied),
 * and once more after it, so a login decided while the kicks were under
 * way is not kept either.
 * @param {string} name
 * @param {RevokeOptions} o
 */
export async function disableUser(name, o) {
  o.state.disabled ??= new Set();
  o.state.disabled.add(name);
  if (o.disabledFile) await saveDisabled(o.disabledFile, o.state.disabled);
  let purged = await o.broker.purgeUser(name);
  const kicked = [];
  for (const id of await o.broker.clientsOf(name)) {
    if (await o.broker.kick(id)) kicked.push(id);
  }
  purged += await o.broker.purgeUser(name);
  return { user: name, disabled: true, kicked, purged };
}

/**
 * Enables name again and purges the broker's cached deny.
 * @param {string} name
 * @param {RevokeOptions} o
 */
export async function enableUser(name, o) {
  o.state.disabled?.delete(name);
  if (o.disabledFile) await saveDisabled(o.disabledFile, o.state.disabled ?? new Set());
  const purged = await o.broker.purgeUser(name);
  return { user: name, disabled: false, kicked: [], purged };
}

/**
 * @param {string | undefined} header
 * @param {string} token
 */
function bearerOK(header, token) {
  const m = /^Bearer (.+)$/i.exec(header ?? '');
  if (!m) return false;
  // Hashes first: equal lengths for timingSafeEqual, and no length leak.
  const h = (/** @type {string} */ s) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(m[1].trim()), h(token));
}

/**
 * Serves POST /users/{name}/disable and /enable.
 * @param {string} path the request path, starting with /users/
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {RevokeOptions & {token: string}} o
 */
export async function serveUsers(path, req, res, o) {
  const m = /^\/users\/([^/]+)\/(disable|enable)$/.exec(path);
  if (!o.token || !m) throw new HttpError(404, o.token ? `no such path: ${path} (POST /users/{name}/disable or /enable)` : 'set HOOKS_ADMIN_TOKEN to enable the /users admin routes');
  if (req.method !== 'POST') throw new HttpError(405, `${req.method} is not allowed on ${path}`, { Allow: 'POST' });
  if (!bearerOK(req.headers.authorization, o.token)) {
    throw new HttpError(401, 'send HOOKS_ADMIN_TOKEN as "Authorization: Bearer <token>"', { 'WWW-Authenticate': 'Bearer' });
  }
  let name;
  try {
    name = decodeURIComponent(m[1]);
  } catch {
    throw new HttpError(400, 'the user name is not valid URL escaping');
  }
  const problem = nameProblem(name);
  if (problem) throw new HttpError(400, problem);
  const disable = m[2] === 'disable';
  let result;
  try {
    result = disable ? await disableUser(name, o) : await enableUser(name, o);
  } catch (err) {
    if (!(err instanceof BrokerAdminError)) throw err;
    // Our side is done (the user's next CONNECT that reaches us is
    // answered accordingly); the broker's cache and connections are not.
    throw new HttpError(502, `${name} is ${disable ? 'disabled' : 'enabled'} here, but the broker was not told: ${err.message}; retry once it answers`);
  }
  sendJSON(res, 200, result, { 'Cache-Control': 'no-store' });
}
