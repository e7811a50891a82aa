// The X-Mqttd-Signature check: the function, then the real server's answers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeSignature, signatureHeader, TOLERANCE_SECONDS, verifySignature } from '../src/signature.js';
import { SECRET, startServer } from './helpers.js';

describe('verifySignature', () => {
  const body = Buffer.from('{"a":1}');
  const t = 1740824130;
  const good = signatureHeader('k', t, body);

  it('accepts a valid signature within the window, either side', () => {
    assert.deepEqual(verifySignature(good, body, ['k'], t), { ok: true });
    assert.deepEqual(verifySignature(good, body, ['k'], t + TOLERANCE_SECONDS), { ok: true });
    assert.deepEqual(verifySignature(good, body, ['k'], t - TOLERANCE_SECONDS), { ok: true });
  });

  it('refuses a timestamp just outside the window, old or future', () => {
    assert.match(/** @type {any} */ (verifySignature(good, body, ['k'], t + TOLERANCE_SECONDS + 1)).reason, /more than 300s/);
    assert.equal(verifySignature(good, body, ['k'], t - TOLERANCE_SECONDS - 1).ok, false);
  });

  it('refuses a missing or malformed header', () => {
    assert.match(/** @type {any} */ (verifySignature(undefined, body, ['k'], t)).reason, /missing/);
    for (const h of ['', 't=1', `v1=${'0'.repeat(64)}`, `t=x,v1=${'0'.repeat(64)}`, `t=${t},v1=abc`, 'garbage']) {
      assert.equal(verifySignature(h, body, ['k'], t).ok, false, h);
    }
  });

  it('refuses a wrong secret and an altered body', () => {
    assert.match(/** @type {any} */ (verifySignature(good, body, ['other'], t)).reason, /does not match/);
    assert.equal(verifySignature(good, Buffer.from('{"a":2}'), ['k'], t).ok, false);
  });

  it('accepts any listed secret and any of several v1 values', () => {
    assert.equal(verifySignature(good, body, ['new', 'k'], t).ok, true);
    const two = `t=${t},v1=${computeSignature('x', t, body)},v1=${computeSignature('k', t, body)}`;
    assert.equal(verifySignature(two, body, ['k'], t).ok, true);
  });

  it('skips unknown schemes', () => {
    assert.equal(verifySignature(`t=${t},v0=zz,${good.split(',')[1]}`, body, ['k'], t).ok, true);
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

  it('a body altered after signing -> 401', async () => {
    const signedFor = JSON.stringify(batch);
    const res = await fetch(srv.url + '/events', {
      method: 'POST',
      headers: { 'X-Mqttd-Signature': signatureHeader(SECRET, now(), signedFor) },
      body: signedFor.replace('e1', 'e9'),
    });
    assert.equal(res.status, 401);
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
