// POST /authenticate: the users file decides.
//
//   no user name          -> ignore (anonymous: the broker's allow-anonymous decides)
//   user not in the file  -> ignore (another plugin may know them)
//   no password           -> deny, reason code 134 (0x86 bad user name or password)
//   wrong password        -> deny, 134
//   right password        -> allow
import { HttpError } from './http.js';
import { verifyPassword } from './users.js';

/**
 * @typedef {import('./api.js').components['schemas']['AuthenticateRequest']} AuthenticateRequest
 * @typedef {import('./api.js').components['schemas']['Decision']} Decision
 * @typedef {import('./users.js').UserHash} UserHash
 */

/**
 * Seconds the broker may reuse each answer. The cache key includes the
 * password, so a cached deny only repeats for the same wrong password; the
 * allow lifetime bounds how long a user removed from the file keeps getting in.
 */
export const AUTH_TTL = Object.freeze({ allow: 60, ignore: 60, deny: 10 });

export const BAD_CREDENTIALS = 134;

/**
 * The fields we use, type-checked; 400 when one has the wrong type.
 * @param {Record<string, unknown>} body
 * @returns {Pick<AuthenticateRequest, 'client_id' | 'username' | 'password' | 'password_base64'>}
 */
export function parseAuthenticate(body) {
  for (const k of ['client_id', 'username', 'password', 'password_base64']) {
    if (body[k] !== undefined && typeof body[k] !== 'string') throw new HttpError(400, `${k}: want a string`);
  }
  if (typeof body.client_id !== 'string') throw new HttpError(400, 'client_id: missing');
  const b = /** @type {Record<string, string | undefined>} */ (body);
  if (b.password_base64 !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(b.password_base64)) {
    throw new HttpError(400, 'password_base64: not base64');
  }
  return { client_id: body.client_id, username: b.username ?? '', password: b.password, password_base64: b.password_base64 };
}

/**
 * @param {Map<string, UserHash>} users
 * @param {ReturnType<typeof parseAuthenticate>} req
 * @returns {Promise<Decision>}
 */
export async function authenticate(users, req) {
  if (req.username === '') return { result: 'ignore', cache_ttl: AUTH_TTL.ignore };
  const hash = users.get(req.username);
  if (!hash) return { result: 'ignore', cache_ttl: AUTH_TTL.ignore };
  /** @type {Decision} */
  const deny = { result: 'deny', reason_code: BAD_CREDENTIALS, cache_ttl: AUTH_TTL.deny };
  let password;
  if (req.password !== undefined) password = Buffer.from(req.password, 'utf8');
  else if (req.password_base64 !== undefined) password = Buffer.from(req.password_base64, 'base64');
  else return { ...deny, reason: 'a password is required' };
  if (!(await verifyPassword(hash, password))) return { ...deny, reason: 'bad user name or password' };
  return { result: 'allow', cache_ttl: AUTH_TTL.allow };
}
