// Small HTTP helpers over node:http: a bounded body reader and JSON answers.

/** An error that is also an HTTP answer. */
export class HttpError extends Error {
  /**
   * @param {number} status
   * @param {string} message sent to the client as {"error": message}
   * @param {Record<string, string>} [headers]
   */
  constructor(status, message, headers = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

/**
 * Reads the whole body, refusing (413) past limit bytes. A declared
 * Content-Length over the limit is refused before anything is read; a body
 * that grows past it is refused as soon as it does, and the rest is drained
 * and dropped so the client can read the answer.
 * @param {import('node:http').IncomingMessage} req
 * @param {number} limit
 * @returns {Promise<Buffer>}
 */
export function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new HttpError(413, `request body over ${limit} bytes`, { Connection: 'close' });
    if (Number(req.headers['content-length']) > limit) {
      req.resume();
      reject(tooLarge());
      return;
    }
    /** @type {Buffer[]} */
    const chunks = [];
    let size = 0;
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * Parses a JSON object body; 400 when it is not one.
 * @param {Buffer} body
 * @returns {Record<string, unknown>}
 */
export function parseJSONObject(body) {
  let v;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `body is not valid JSON: ${/** @type {Error} */ (err).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'body must be a JSON object');
  return v;
}

/**
 * No Cache-Control by default: on a decision the broker would read it as a
 * cache lifetime (cache_ttl in the body says that instead).
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {unknown} value
 * @param {Record<string, string>} [headers]
 */
export function sendJSON(res, status, value, headers = {}) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}
