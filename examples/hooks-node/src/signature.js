// X-Mqttd-Signature: how the broker proves a request came from it (api/openapi.yaml,
// "Headers and signatures"):
//
//   X-Mqttd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + raw body)>
//
// The timestamp is inside the MAC, so a captured request cannot be replayed
// once it leaves the window, and the body is the raw bytes as received: the
// check runs before any JSON parsing, which could reorder or normalise it.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** A request whose t is further than this from our clock is refused. */
export const TOLERANCE_SECONDS = 300;

/**
 * hex(HMAC-SHA256(secret, t + "." + body)).
 * @param {string} secret
 * @param {number|string} t unix seconds
 * @param {Buffer|string} body the raw request body ("" for a GET)
 */
export function computeSignature(secret, t, body) {
  return createHmac('sha256', secret).update(`${t}.`).update(body).digest('hex');
}

/**
 * The header value the broker would send; for tests and for the docs.
 * @param {string} secret
 * @param {number} t
 * @param {Buffer|string} body
 */
export function signatureHeader(secret, t, body) {
  return `t=${t},v1=${computeSignature(secret, t, body)}`;
}

/**
 * Checks a request's signature against every accepted secret (current and
 * previous, so a rotation never rejects a request).
 * @param {string|undefined} header the X-Mqttd-Signature value
 * @param {Buffer} body the raw body
 * @param {string[]} secrets accepted secrets, non-empty
 * @param {number} nowSeconds our clock, unix seconds
 * @returns {{ok: true} | {ok: false, reason: string}}
 */
export function verifySignature(header, body, secrets, nowSeconds) {
  if (!header) return { ok: false, reason: 'missing X-Mqttd-Signature header' };
  let t = NaN;
  /** @type {Buffer[]} */
  const macs = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^[0-9]{1,12}$/.test(value)) t = Number(value);
    // Unknown keys (a future v2 scheme) are skipped, not fatal.
    if (key === 'v1' && /^[0-9a-f]{64}$/.test(value)) macs.push(Buffer.from(value, 'hex'));
  }
  if (Number.isNaN(t) || macs.length === 0) {
    return { ok: false, reason: 'malformed X-Mqttd-Signature (want t=<unix seconds>,v1=<64 hex digits>)' };
  }
  if (Math.abs(nowSeconds - t) > TOLERANCE_SECONDS) {
    return { ok: false, reason: `signature timestamp ${t} is more than ${TOLERANCE_SECONDS}s from this server's clock` };
  }
  for (const secret of secrets) {
    const want = Buffer.from(computeSignature(secret, t, body), 'hex');
    // timingSafeEqual: the time taken must not tell an attacker how many
    // leading bytes of a forged MAC were right. Lengths are equal (32 bytes).
    if (macs.some((mac) => timingSafeEqual(mac, want))) return { ok: true };
  }
  return { ok: false, reason: 'signature does not match (wrong secret, or the body was altered)' };
}
