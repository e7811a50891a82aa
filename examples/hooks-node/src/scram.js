// SCRAM-SHA-256 (RFC 5802, RFC 7677) as MQTT 5 enhanced authentication: the
// worked example of a plugin answering `continue`.
//
//   step 1: CONNECT, Authentication Method SCRAM-SHA-256, data client-first
//           "n,,n=alice,r=<client nonce>"
//           -> continue, auth_data server-first "r=<nonce>,s=<salt>,i=<iterations>"
//   step 2: AUTH 0x18, data client-final "c=biws,r=<nonce>,p=<proof>"
//           -> allow, auth_data server-final "v=<server signature>" (CONNACK)
//           or deny 135 when the proof is wrong
//
// The users file keeps, per SCRAM user, the salt, the iteration count and
// the two keys the server needs (StoredKey, ServerKey): never the password,
// and nothing a thief could log in with (see users.js, npm run add-scram-user).
// The SCRAM user name must be the CONNECT user name: the topic ACL decides
// on the latter, so a client must not authenticate as one user and act as
// another.
//
// Exchanges in progress are kept in memory by exchange_id, bounded in
// number and age; each is bound to the client id and user name it began
// with, and used once.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { HttpError } from './http.js';

export const SCRAM_METHOD = 'SCRAM-SHA-256';
const NOT_AUTHORIZED = 135;

/**
 * @typedef {import('./api.js').components['schemas']['Decision']} Decision
 * @typedef {{i: number, salt: Buffer, storedKey: Buffer, serverKey: Buffer}} ScramKeys
 * @typedef {{user: string, clientId: string, username: string, nonce: string, gs2: string, clientFirstBare: string,
 *   serverFirst: string, keys: ScramKeys | undefined, expires: number}} Pending
 * @typedef {{auth_method?: string, auth_data?: string, exchange_id?: string, exchange_step?: number,
 *   client_id: string, username: string}} StepRequest
 */

/** @param {Buffer | string} key @param {string} data */
const hmac = (key, data) => createHmac('sha256', key).update(data, 'utf8').digest();
/** @param {Buffer} data */
const sha256 = (data) => createHash('sha256').update(data).digest();

/**
 * The keys the server keeps for a password (RFC 5802 §3), from the salted
 * password: what add-scram-user writes to the users file.
 * @param {Buffer} saltedPassword PBKDF2-HMAC-SHA-256(password, salt, i)
 */
export function scramKeys(saltedPassword) {
  const clientKey = hmac(saltedPassword, 'Client Key');
  return { storedKey: sha256(clientKey), serverKey: hmac(saltedPassword, 'Server Key') };
}

/**
 * Parses "k=v,k=v" attributes; null when malformed or a key repeats.
 * @param {string} s
 * @returns {Map<string, string> | null}
 */
function attributes(s) {
  const m = new Map();
  for (const part of s.split(',')) {
    const eq = part.indexOf('=');
    if (eq !== 1 || m.has(part[0])) return null;
    m.set(part[0], part.slice(2));
  }
  return m;
}

/** RFC 5802 saslname: "=2C" is ",", "=3D" is "="; any other "=" is malformed. @param {string} s */
function saslName(s) {
  if (/=(?!2C|3D)/.test(s)) return null;
  return s.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

/**
 * The enhanced-authentication fields of an authenticate request, type-checked
 * (400 when one has the wrong type); null for a plain CONNECT.
 * @param {Record<string, unknown>} body
 * @returns {StepRequest | null}
 */
export function parseStep(body) {
  if (body.auth_method === undefined) return null;
  for (const k of ['auth_method', 'auth_data', 'exchange_id', 'client_id', 'username']) {
    if (body[k] !== undefined && typeof body[k] !== 'string') throw new HttpError(400, `${k}: want a string`);
  }
  if (body.exchange_step !== undefined && !Number.isInteger(body.exchange_step)) throw new HttpError(400, 'exchange_step: want an integer');
  return /** @type {StepRequest} */ ({ username: '', ...body });
}

export class ScramServer {
  /**
   * @param {object} opts
   * @param {() => Map<string, unknown>} opts.users the current users (name -> hash); SCRAM users have storedKey
   * @param {() => number} [opts.now] clock in ms
   * @param {number} [opts.maxPending] exchanges kept at once; beyond it new ones are refused
   * @param {number} [opts.ttlMs] how long an exchange may wait for its second step
   * @param {() => string} [opts.nonce] the server's part of the nonce (tests fix it)
   */
  constructor({ users, now = Date.now, maxPending = 10000, ttlMs = 30_000, nonce = () => randomBytes(18).toString('base64') }) {
    this.users = users;
    this.serverNonce = nonce;
    this.now = now;
    this.maxPending = maxPending;
    this.ttlMs = ttlMs;
    /** @type {Map<string, Pending>} */
    this.pending = new Map();
    // Unknown users get a salt that is the same on every try, so a client
    // cannot tell them from known ones before it sends a proof.
    this.fakeSaltKey = randomBytes(32);
  }

  /**
   * One step of an exchange.
   * @param {StepRequest} req
   * @returns {Decision}
   */
  step(req) {
    if (req.auth_method !== SCRAM_METHOD) return { result: 'ignore', cache_ttl: 0 };
    if (typeof req.exchange_id !== 'string' || req.exchange_id === '') return deny('no exchange_id');
    this.sweep();
    const data = Buffer.from(req.auth_data ?? '', 'base64').toString('utf8');
    if (req.exchange_step === 1) return this.first(req, data);
    return this.final(req, data);
  }

  /** Drops exchanges past their time. */
  sweep() {
    const now = this.now();
    for (const [id, p] of this.pending) {
      if (p.expires > now) break; // insertion order is expiry order
      this.pending.delete(id);
    }
  }

  /**
   * client-first -> server-first.
   * @param {StepRequest} req
   * @param {string} data
   * @returns {Decision}
   */
  first(req, data) {
    if (this.pending.has(/** @type {string} */ (req.exchange_id))) return deny('exchange_id reused');
    if (this.pending.size >= this.maxPending) return deny('too many SCRAM exchanges in progress', 137);
    // gs2 header: "n,," (no channel binding) or "y,,"; "p=" (binding) and an authzid are not supported.
    const m = /^([ny]),,(n=([^,]*),r=([\x21-\x2b\x2d-\x7e]+)(?:,.*)?)$/.exec(data);
    if (!m) return deny('not a SCRAM client-first message without channel binding');
    const user = saslName(m[3]);
    if (user === null || user === '') return deny('bad SCRAM user name');
    if (user !== req.username) return deny('the SCRAM user name must be the CONNECT user name');
    const entry = /** @type {any} */ (this.users().get(user));
    /** @type {ScramKeys | undefined} */
    const keys = entry && entry.storedKey ? entry : undefined;
    const salt = keys ? keys.salt : hmac(this.fakeSaltKey, user).subarray(0, 16);
    const i = keys ? keys.i : 4096;
    const nonce = m[4] + this.serverNonce();
    const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${i}`;
    this.pending.set(/** @type {string} */ (req.exchange_id), {
      user, clientId: req.client_id, username: req.username, nonce, gs2: Buffer.from(`${m[1]},,`).toString('base64'),
      clientFirstBare: m[2], serverFirst, keys,
      expires: this.now() + this.ttlMs,
    });
    return { result: 'continue', auth_data: Buffer.from(serverFirst).toString('base64'), cache_ttl: 0 };
  }

  /**
   * client-final -> server-final, or deny.
   * @param {StepRequest} req
   * @param {string} data
   * @returns {Decision}
   */
  final(req, data) {
    const id = /** @type {string} */ (req.exchange_id);
    const p = this.pending.get(id);
    this.pending.delete(id); // one try per exchange
    if (!p) return deny('no such SCRAM exchange (expired, or never begun)');
    if (p.clientId !== req.client_id || p.username !== req.username) return deny('the exchange belongs to another client');
    const at = data.lastIndexOf(',p=');
    const attrs = at < 0 ? null : attributes(data.slice(0, at));
    if (!attrs || attrs.get('r') !== p.nonce || attrs.get('c') !== p.gs2) {
      return deny('bad SCRAM client-final message');
    }
    const proof = Buffer.from(data.slice(at + 3), 'base64');
    if (!p.keys || proof.length !== 32) return deny('bad user name or password', 134);
    const authMessage = `${p.clientFirstBare},${p.serverFirst},${data.slice(0, at)}`;
    const signature = hmac(p.keys.storedKey, authMessage);
    const clientKey = Buffer.alloc(32);
    for (let k = 0; k < 32; k++) clientKey[k] = proof[k] ^ signature[k];
    if (!timingSafeEqual(sha256(clientKey), p.keys.storedKey)) return deny('bad user name or password', 134);
    const serverFinal = `v=${hmac(p.keys.serverKey, authMessage).toString('base64')}`;
    return { result: 'allow', auth_data: Buffer.from(serverFinal).toString('base64'), cache_ttl: 0 };
  }
}

/**
 * @param {string} reason
 * @param {number} [code]
 * @returns {Decision}
 */
function deny(reason, code = NOT_AUTHORIZED) {
  return { result: 'deny', reason, reason_code: code, cache_ttl: 0 };
}
