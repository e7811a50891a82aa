// The users file: one user per line, `name:hash`, where hash is scrypt in the
// PHC string format
//
//   alice:$scrypt$ln=14,r=8,p=1$<salt, base64>$<key, base64>
//
// (ln = log2 of the cost N; base64 without padding), or SCRAM-SHA-256 keys
//
//   bob:$scram-sha-256$i=4096$<salt, base64>$<StoredKey, base64>$<ServerKey, base64>
//
// which let a user log in with MQTT 5 enhanced authentication (src/scram.js)
// as well as with a plain password. Blank lines and lines
// starting with "#" are comments. Names cannot contain ":" or control
// characters. `npm run add-user -- FILE NAME` writes scrypt entries,
// `npm run add-scram-user -- FILE NAME` SCRAM ones.
import { pbkdf2, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { scramKeys } from './scram.js';
import { readFile } from 'node:fs/promises';

/** Cost of new hashes: N = 2^14, r = 8 (16 MiB, tens of ms per check). */
export const DEFAULT_PARAMS = Object.freeze({ ln: 14, r: 8, p: 1 });
const SALT_BYTES = 16;
const KEY_BYTES = 32;
// Bounds on what a file may ask for, so a hand-edited line cannot make every
// CONNECT allocate gigabytes: scrypt needs 128 * N * r bytes.
const MAX_LN = 20;
const MAX_P = 16;
const MAX_MEMORY = 256 * 1024 * 1024;

/** @typedef {{ln: number, r: number, p: number, salt: Buffer, key: Buffer}} ScryptHash */
/** @typedef {import('./scram.js').ScramKeys} ScramHash */
/** @typedef {ScryptHash | ScramHash} UserHash */

/** Iterations of new SCRAM entries (RFC 7677 asks for at least 4096). */
export const SCRAM_ITERATIONS = 4096;
const MAX_SCRAM_ITERATIONS = 1_000_000;

export class UsersFileError extends Error {}

/**
 * Why a user name cannot go in the file, or "".
 * @param {string} name
 */
export function nameProblem(name) {
  if (name === '') return 'the user name is empty';
  if (name.includes(':')) return `user name ${JSON.stringify(name)} contains ":" (the field separator)`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return `user name ${JSON.stringify(name)} contains a control character`;
  if (name.startsWith('#')) return `user name ${JSON.stringify(name)} starts with "#" (a comment)`;
  return '';
}

/** @param {Buffer} b */
const b64 = (b) => b.toString('base64').replace(/=+$/, '');

/**
 * @param {string} s
 * @returns {ScryptHash | ScramHash | string} the hash, or what is wrong with s
 */
export function parseHash(s) {
  if (s.startsWith('$scram-sha-256$')) return parseScram(s);
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(s);
  if (!m) return 'is not a $scrypt$ln=..,r=..,p=..$salt$key hash';
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (ln < 1 || ln > MAX_LN || r < 1 || p < 1 || p > MAX_P || 128 * 2 ** ln * r > MAX_MEMORY) {
    return `has cost parameters out of range (ln 1..${MAX_LN}, p 1..${MAX_P}, 128 * 2^ln * r at most 256 MiB)`;
  }
  const salt = Buffer.from(m[4], 'base64');
  const key = Buffer.from(m[5], 'base64');
  if (salt.length < 8 || key.length < 16 || key.length > 64) return 'has a salt under 8 bytes or a key outside 16..64 bytes';
  return { ln, r, p, salt, key };
}

/**
 * @param {string} s a $scram-sha-256$ entry
 * @returns {ScramHash | string}
 */
function parseScram(s) {
  const m = /^\$scram-sha-256\$i=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/.exec(s);
  if (!m) return 'is not a $scram-sha-256$i=..$salt$storedkey$serverkey entry';
  const i = Number(m[1]);
  if (i < 4096 || i > MAX_SCRAM_ITERATIONS) return `has iterations out of range (4096..${MAX_SCRAM_ITERATIONS})`;
  const [salt, storedKey, serverKey] = [m[2], m[3], m[4]].map((b) => Buffer.from(b, 'base64'));
  if (salt.length < 8 || storedKey.length !== 32 || serverKey.length !== 32) return 'has a salt under 8 bytes or keys that are not 32 bytes';
  return { i, salt, storedKey, serverKey };
}

/**
 * @param {Buffer} password
 * @param {Buffer} salt
 * @param {number} i
 * @returns {Promise<Buffer>} PBKDF2-HMAC-SHA-256, SCRAM's SaltedPassword
 */
function saltedPassword(password, salt, i) {
  return new Promise((resolve, reject) => {
    pbkdf2(password, salt, i, 32, 'sha256', (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/**
 * A new SCRAM-SHA-256 users-file entry for password.
 * @param {Buffer} password
 * @param {number} [i] iterations
 */
export async function scramHash(password, i = SCRAM_ITERATIONS) {
  const salt = randomBytes(SALT_BYTES);
  const { storedKey, serverKey } = scramKeys(await saltedPassword(password, salt, i));
  return `$scram-sha-256$i=${i}$${salt.toString('base64')}$${storedKey.toString('base64')}$${serverKey.toString('base64')}`;
}

/**
 * @param {string} text the file's content
 * @param {string} source the file's name, for messages
 * @returns {Map<string, ScryptHash | ScramHash>}
 */
export function parseUsers(text, source) {
  /** @type {Map<string, ScryptHash | ScramHash>} */
  const users = new Map();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    const where = `${source}:${i + 1}`;
    if (line.trim() === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon < 0) throw new UsersFileError(`${where}: want name:hash, found no ":"`);
    const name = line.slice(0, colon);
    const problem = nameProblem(name);
    if (problem) throw new UsersFileError(`${where}: ${problem}`);
    if (users.has(name)) throw new UsersFileError(`${where}: user ${JSON.stringify(name)} is listed twice`);
    const hash = parseHash(line.slice(colon + 1));
    if (typeof hash === 'string') throw new UsersFileError(`${where}: the hash ${hash}`);
    users.set(name, hash);
  });
  return users;
}

/** @param {string} file */
export async function loadUsers(file) {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsersFileError(`USERS_FILE ${file}: ${/** @type {Error} */ (err).message}`);
  }
  return parseUsers(text, file);
}

/**
 * @param {Buffer} password
 * @param {Buffer} salt
 * @param {{ln: number, r: number, p: number}} params
 * @param {number} keylen
 * @returns {Promise<Buffer>}
 */
function derive(password, salt, { ln, r, p }, keylen) {
  const N = 2 ** ln;
  // Node refuses scrypt above maxmem (default 32 MiB); parseHash already
  // bounded 128 * N * r, so raise the cap to what this hash needs.
  const maxmem = 2 * 128 * N * r + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, { N, r, p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/**
 * A new PHC hash string for password.
 * @param {Buffer} password
 * @param {{ln: number, r: number, p: number}} [params]
 */
export async function hashPassword(password, params = DEFAULT_PARAMS) {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, params, KEY_BYTES);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

/**
 * @param {ScryptHash | ScramHash} hash
 * @param {Buffer} password
 */
export async function verifyPassword(hash, password) {
  if ('storedKey' in hash) {
    const { storedKey } = scramKeys(await saltedPassword(password, hash.salt, hash.i));
    return timingSafeEqual(storedKey, hash.storedKey);
  }
  const key = await derive(password, hash.salt, hash, hash.key.length);
  return timingSafeEqual(key, hash.key);
}

/**
 * The file's text with name's entry set to hash: replaced in place when the
 * user exists (comments and order are kept), else appended.
 * @param {string} text
 * @param {string} name
 * @param {string} hash a PHC string from hashPassword
 */
export function upsertUser(text, name, hash) {
  const entry = `${name}:${hash}`;
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const at = lines.findIndex((l) => !l.startsWith('#') && l.includes(':') && l.slice(0, l.indexOf(':')) === name);
  if (at >= 0) lines[at] = entry;
  else lines.push(entry);
  return lines.join('\n') + '\n';
}
