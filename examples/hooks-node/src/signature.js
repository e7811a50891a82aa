// X-Mqttd-Signature: how the broker proves a request came from it, and that it
// is this request (api/openapi.yaml, "Headers and signatures"):
//
//   X-Mqttd-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256(secret, t LF method LF path LF request id LF raw body)>
//
// LF is one newline byte; path is the request path as received (no query);
// request id is the X-Mqttd-Request-Id header. The timestamp is inside the MAC,
// so a captured request cannot be replayed once it leaves the window; method
// and path, so it cannot be replayed to another endpoint; the request id, so
// the ReplayGuard below refuses a verbatim replay inside the window. The body
// is the raw bytes as received: the check runs before any JSON parsing, which
// could reorder or normalise it. The first scheme, v1 (t + "." + body only),
// is ignored: it binds no endpoint.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** A request whose t is further than this from our clock is refused. */
export const TOLERANCE_SECONDS = 300;

/** Request ids remembered at most; see ReplayGuard. */
export const REPLAY_MEMORY = 100_000;

/**
 * What a signature covers besides the time.
 * @typedef {object} Signed
 * @property {string} method "POST", "GET"
 * @property {string} path as on the wire, e.g. "/authenticate"
 * @property {string} requestId the X-Mqttd-Request-Id header
 * @property {Buffer|string} body the raw request body ("" for a GET)
 */

/**
 * hex(HMAC-SHA256(secret, t LF method LF path LF request id LF body)).
 * @param {string} secret
 * @param {number|string} t unix seconds
 * @param {Signed} r
 */
export function computeSignature(secret, t, r) {
  return createHmac('sha256', secret).update(`${t}\n${r.method}\n${r.path}\n${r.requestId}\n`).update(r.body).digest('hex');
}

/**
 * The header value the broker would send; for tests and for the docs.
 * @param {string} secret
 * @param {number} t
 * @param {Signed} r
 */
export function signatureHeader(secret, t, r) {
  return `t=${t},v2=${computeSignature(secret, t, r)}`;
}

/**
 * Checks a request's signature against every accepted secret (current and
 * previous, so a rotation never rejects a request).
 * @param {string|undefined} header the X-Mqttd-Signature value
 * @param {Signed} r the request as received
 * @param {string[]} secrets accepted secrets, non-empty
 * @param {number} nowSeconds our clock, unix seconds
 * @returns {{ok: true, t: number} | {ok: false, reason: string}}
 */
export function verifySignature(header, r, secrets, nowSeconds) {
  if (!header) return { ok: false, reason: 'missing X-Mqttd-Signature header' };
  if (!r.requestId) return { ok: false, reason: 'missing X-Mqttd-Request-Id header (it is signed)' };
  if (/\n/.test(r.method + r.path + r.requestId)) return { ok: false, reason: 'a newline in the method, path or request id' };
  let t = NaN;
  /** @type {Buffer[]} */
  const macs = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^[0-9]{1,12}$/.test(value)) t = Number(value);
    // Other keys (v1, a future scheme) are skipped, not fatal.
    if (key === 'v2' && /^[0-9a-f]{64}$/.test(value)) macs.push(Buffer.from(value, 'hex'));
  }
  if (Number.isNaN(t) || macs.length === 0) {
    return { ok: false, reason: 'malformed X-Mqttd-Signature (want t=<unix seconds>,v2=<64 hex digits>; v1 alone is from an older broker)' };
  }
  if (Math.abs(nowSeconds - t) > TOLERANCE_SECONDS) {
    return { ok: false, reason: `signature timestamp ${t} is more than ${TOLERANCE_SECONDS}s from this server's clock` };
  }
  for (const secret of secrets) {
    const want = Buffer.from(computeSignature(secret, t, r), 'hex');
    // timingSafeEqual: the time taken must not tell an attacker how many
    // leading bytes of a forged MAC were right. Lengths are equal (32 bytes).
    if (macs.some((mac) => timingSafeEqual(mac, want))) return { ok: true, t };
  }
  return { ok: false, reason: 'signature does not match (wrong secret, or the request was altered or sent to another path)' };
}

/**
 * Refuses a request id already accepted within the window: a verbatim replay
 * of a signed request. Only verified requests are recorded, so nobody without
 * the secret can fill it. Memory is bounded: at most `max` ids, dropped once
 * their t is out of the window; when full, the oldest is forgotten and every
 * request signed at or before its second is refused from then on (`floor`),
 * so a forgotten id can never be replayed. Ids arrive in about the order of
 * their t, so the oldest is the first in the Map.
 */
export class ReplayGuard {
  /** @type {Map<string, number>} request id -> its t */
  #seen = new Map();
  #floor = -Infinity;

  /** @param {number} [max] */
  constructor(max = REPLAY_MEMORY) {
    this.max = max;
  }

  /**
   * Records id (signed at t) unless it is a replay.
   * @param {string} id
   * @param {number} t
   * @param {number} nowSeconds
   * @returns {{ok: true} | {ok: false, reason: string}}
   */
  check(id, t, nowSeconds) {
    for (const [old, oldT] of this.#seen) {
      if (oldT >= nowSeconds - TOLERANCE_SECONDS) break;
      this.#seen.delete(old); // out of the window: verifySignature refuses it anyway
    }
    if (this.#seen.has(id)) return { ok: false, reason: `request id ${id} was already accepted (a replay)` };
    if (t <= this.#floor) return { ok: false, reason: 'signed before the oldest request id this server still remembers (too busy to check replays that far back)' };
    if (this.#seen.size >= this.max) {
      const [oldest, oldestT] = this.#seen.entries().next().value ?? ['', -Infinity];
      this.#seen.delete(oldest);
      this.#floor = Math.max(this.#floor, oldestT);
      if (t <= this.#floor) return { ok: false, reason: 'signed before the oldest request id this server still remembers (too busy to check replays that far back)' };
    }
    this.#seen.set(id, t);
    return { ok: true };
  }

  /** Ids held. */
  get size() {
    return this.#seen.size;
  }
}
