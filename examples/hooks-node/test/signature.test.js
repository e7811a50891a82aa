// The X-Mqttd-Signature check: the function, then the real server's answers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHmac } from 'node:crypto';
import { computeSignature, ReplayGuard, signatureHeader, TOLERANCE_SECONDS, verifySignature } from '../src/signature.js';
import { SECRET, startServer } from './helpers.js';

describe('verifySignature', () => {
  const body = Buffer.from('{"a":1}');
  const t = 1740824130;
  const req = { method: 'POST', path: '/authenticate', requestId: 'abc-1', body };
  const good = signatureHeader('k', t, req);

  it('matches the vector computed with openssl (api/openapi.yaml)', () => {
    // printf '1740824130\nPOST\n/authenticate\nabc-1\n{"a":1}' | openssl dgst -sha256 -hmac topsecret
    assert.equal(signatureHeader('topsecret', t, req), 't=1740824130,v2=9f6cf56a67aaa91cfbeb3a441a2fc0f2229a828ea7fe32b1beb5aa3f7db4a305');
  });

  it('accepts a valid signature within the window, either side', () => {
    assert.deepEqual(verifySignature(good, req, ['k'], t), { ok: true, t });
    assert.equal(verifySignature(good, req, ['k'], t + TOLERANCE_SECONDS).ok, true);
    assert.equal(verifySignature(good, req, ['k'], t - TOLERANCE_SECONDS).ok, true);
  });

  it('refuses a timestamp just outside the window, old or future', () => {
    assert.match(/** @type {any} */ (verifySignature(good, req, ['k'], t + TOLERANCE_SECONDS + 1)).reason, /more than 300s/);
    assert.equal(verifySignature(good, req, ['k'], t - TOLERANCE_SECONDS - 1).ok, false);
  });

  it('refuses a missing or malformed header, and a v1-only one', () => {
    assert.match(/** @type {any} */ (verifySignature(undefined, req, ['k'], t)).reason, /missing/);
    const v1 = createHmac('sha256', 'k').update(`${t}.`).update(body).digest('hex');
    for (const h of ['', 't=1', `v2=${'0'.repeat(64)}`, `t=x,v2=${'0'.repeat(64)}`, `t=${t},v2=abc`, 'garbage', `t=${t},v1=${v1}`]) {
      assert.equal(verifySignature(h, req, ['k'], t).ok, false, h);
    }
    assert.match(/** @type {any} */ (verifySignature(good, { ...req, requestId: '' }, ['k'], t)).reason, /X-Mqttd-Request-Id/);
  });

  it('refuses a wrong secret, an altered body, and the request replayed elsewhere', () => {
    assert.match(/** @type {any} */ (verifySignature(good, req, ['other'], t)).reason, /does not match/);
    for (const other of [
      { ...req, body: Buffer.from('{"a":2}') },
      { ...req, path: '/topic_filtering' },
      { ...req, method: 'GET' },
      { ...req, requestId: 'abc-2' },
      { ...req, path: '/authenticate\nabc-1', requestId: '' },
    ]) {
      assert.equal(verifySignature(good, other, ['k'], t).ok, false, JSON.stringify(other));
    }
  });

  it('accepts any listed secret and any of several v2 values', () => {
    assert.equal(verifySignature(good, req, ['new', 'k'], t).ok, true);
    const two = `t=${t},v2=${computeSignature('x', t, req)},v2=${computeSignature('k', t, req)}`;
    assert.equal(verifySignature(two, req, ['k'], t).ok, true);
  });

  it('skips unknown schemes', () => {
    assert.equal(verifySignature(`t=${t},v0=zz,${good.split(',')[1]}`, req, ['k'], t).ok, true);
  });
});

describe('ReplayGuard', () => {
  const t = 1740824130;

  it('refuses an id it accepted within the window, and forgets it after', () => {
    const g = new ReplayGuard();
    assert.equal(g.check('a', t, t).ok, true);
    assert.match(/** @type {any} */ (g.check('a', t, t + 10)).reason, /already accepted/);
    assert.equal(g.check('b', t, t + 10).ok, true);
    // Once out of the window the signature check refuses it; the guard lets it go.
    assert.equal(g.check('c', t + TOLERANCE_SECONDS + 1, t + TOLERANCE_SECONDS + 1).ok, true);
    assert.equal(g.size, 1);
  });

  it('holds at most max ids, and never lets a forgotten one through', () => {
    const g = new ReplayGuard(3);
    for (const [id, at] of /** @type {[string, number][]} */ ([['a', t], ['b', t], ['c', t + 1], ['d', t + 2]])) {
      assert.equal(g.check(id, at, t + 2).ok, true, id);
    }
    assert.equal(g.size, 3);
    // 'a' was forgotten to make room: a replay of it, or of anything signed
    // at or before its second, is refused rather than trusted.
    assert.match(/** @type {any} */ (g.check('a', t, t + 2)).reason, /oldest request id/);
    assert.match(/** @type {any} */ (g.check('e', t, t + 2)).reason, /oldest request id/);
    assert.equal(g.check('f', t + 2, t + 2).ok, true);
    assert.ok(g.size <= 3);
  });
});

describe('signed endpoints', async () => {
  const srv = await startServer({ env: { HOOKS_SECRET_PREVIOUS: 'old-secret' } });
  const batch = { events: [{ id: 'e1', seq: 1, time: '2025-03-01T10:00:00Z', broker: 'n', type: 'broker_post_start' }] };
  const now = () => Math.floor(srv.clock.ms / 1000);

  for (const path of ['/events', '/authenticate', '/topic_filtering']) {
    it(`${path}: missing signature -> 401`, async () => {
      const res = await srv.post(path, batch, { secret: null });
      assert.equal(res.status, 401);
      assert.match((await res.json()).error, /missing X-Mqttd-Signature/);
    });
    it(`${path}: wrong secret -> 401`, async () => {
      const res = await srv.post(path, batch, { secret: 'nope' });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('cache-control'), 'no-store', 'not cached as the client\'s answer');
      assert.match((await res.json()).error, /does not match/);
    });
    it(`${path}: older than 5 minutes -> 401`, async () => {
      const res = await srv.post(path, batch, { t: now() - TOLERANCE_SECONDS - 1 });
      assert.equal(res.status, 401);
      assert.match((await res.json()).error, /more than 300s/);
    });
  }

  it('GET /manifest is signed too (over an empty body)', async () => {
    assert.equal((await srv.get('/manifest', { secret: null })).status, 401);
    assert.equal((await srv.get('/manifest')).status, 200);
  });

  it('accepts a batch signed 5 minutes ago exactly', async () => {
    const res = await srv.post('/events', batch, { t: now() - TOLERANCE_SECONDS });
    assert.equal(res.status, 204);
  });

  it('accepts the previous secret during a rotation', async () => {
    const res = await srv.post('/events', { events: [{ ...batch.events[0], id: 'e2' }] }, { secret: 'old-secret' });
    assert.equal(res.status, 204);
  });

  /**
   * Sends a request signed for `signedFor` as `sent` (a replay, or a forgery).
   * @param {{method: string, path: string, requestId: string, body: string}} signedFor
   * @param {{method: string, path: string, requestId: string, body: string}} sent
   */
  const sendAs = (signedFor, sent) => fetch(srv.url + sent.path, {
    method: sent.method,
    headers: { 'X-Mqttd-Request-Id': sent.requestId, 'X-Mqttd-Signature': signatureHeader(SECRET, now(), signedFor) },
    body: sent.method === 'GET' ? undefined : sent.body,
  });

  it('a body altered after signing -> 401', async () => {
    const signed = { method: 'POST', path: '/events', requestId: 'alter-1', body: JSON.stringify(batch) };
    const res = await sendAs(signed, { ...signed, body: signed.body.replace('e1', 'e9') });
    assert.equal(res.status, 401);
  });

  it('a verbatim replay within the window -> 401, and so is one to another path or under a new id', async () => {
    const body = JSON.stringify({ client_id: 'c1', username: 'alice', topic: 'a', action: 'publish', qos: 0, retain: false });
    const signed = { method: 'POST', path: '/topic_filtering', requestId: 'replay-1', body };
    assert.equal((await sendAs(signed, signed)).status, 200, 'the original');
    const replay = await sendAs(signed, signed);
    assert.equal(replay.status, 401);
    assert.match((await replay.json()).error, /already accepted/);
    for (const sent of [{ ...signed, path: '/authenticate', requestId: 'replay-2' }, { ...signed, requestId: 'replay-3' }]) {
      const res = await sendAs(signed, sent);
      assert.equal(res.status, 401, `${sent.path} ${sent.requestId}`);
      assert.match((await res.json()).error, /does not match/);
    }
  });

  it('healthz and events/recent are open', async () => {
    assert.equal((await srv.get('/healthz', { secret: null })).status, 200);
    assert.equal((await srv.get('/events/recent', { secret: null })).status, 200);
  });
});

describe('without HOOKS_SECRET', async () => {
  const srv = await startServer({ env: { HOOKS_SECRET: '' } });
  it('accepts unsigned requests', async () => {
    const res = await srv.post('/events', { events: [{ id: 'x', type: 'broker_post_start' }] }, { secret: null });
    assert.equal(res.status, 204);
  });
});
