// The HTTP surface: manifest, events intake, routing and bad input.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_EVENTS } from '../src/config.js';
import { startServer } from './helpers.js';

/**
 * @param {string} id
 * @param {number} seq
 */
const ev = (id, seq) => ({ id, seq, time: '2025-03-01T10:00:00Z', broker: 'node-1', type: 'broker_client_connected', client_id: 'c' });

describe('manifest', async () => {
  it('says what we do', async () => {
    const srv = await startServer();
    const res = await srv.get('/manifest');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.deepEqual(await res.json(), { name: 'hooks-node', version: '0.0.0-test', authenticate: true, topic_filtering: true, events: DEFAULT_EVENTS });
  });
  it('lists the events asked for in EVENTS', async () => {
    const srv = await startServer({ env: { EVENTS: 'broker_message_received, mqtt_packet_sent' } });
    assert.deepEqual((await (await srv.get('/manifest')).json()).events, ['broker_message_received', 'mqtt_packet_sent']);
  });
});

describe('events', async () => {
  const srv = await startServer({ env: { RECENT_EVENTS: '3' } });

  it('logs each event as one JSON line and keeps the most recent ones', async () => {
    const res = await srv.post('/events', { events: [ev('a', 1), ev('b', 2)] });
    assert.equal(res.status, 204);
    await srv.post('/events', { events: [ev('c', 3), ev('d', 4)] });
    assert.deepEqual(srv.lines.map((l) => JSON.parse(l).id), ['a', 'b', 'c', 'd']);
    assert.deepEqual(JSON.parse(srv.lines[0]), ev('a', 1));
    const recent = await (await srv.get('/events/recent')).json();
    assert.deepEqual(recent.events.map((/** @type {{id: string}} */ e) => e.id), ['b', 'c', 'd']);
  });

  it('logs a retried event once (same id)', async () => {
    const before = srv.lines.length;
    await srv.post('/events', { events: [ev('d', 4), ev('e', 5)] });
    assert.deepEqual(srv.lines.slice(before).map((l) => JSON.parse(l).id), ['e']);
  });

  it('keeps unknown fields (later brokers may add some)', async () => {
    await srv.post('/events', { events: [{ ...ev('f', 6), future_field: { x: 1 } }] });
    assert.deepEqual(JSON.parse(srv.lines[srv.lines.length - 1]).future_field, { x: 1 });
  });

  it('refuses a malformed batch with 400 and logs nothing', async () => {
    const before = srv.lines.length;
    for (const [body, msg] of /** @type {[unknown, RegExp][]} */ ([
      [{}, /want \{"events": \[...\]\}/],
      [{ events: [] }, /events is empty/],
      [{ events: [ev('g', 7), 'x'] }, /events\[1\] is not an object/],
      [{ events: [{ type: 'broker_post_start' }] }, /events\[0\]\.id/],
      [{ events: [{ id: 'h' }] }, /events\[0\]\.type/],
    ])) {
      const res = await srv.post('/events', body);
      assert.equal(res.status, 400);
      assert.match((await res.json()).error, msg);
    }
    assert.equal(srv.lines.length, before);
  });
});

describe('bad input', async () => {
  const srv = await startServer({ env: { MAX_BODY_BYTES: '1024' } });

  it('invalid JSON -> 400', async () => {
    const res = await srv.post('/authenticate', null, { rawBody: '{"client_id": ' });
    assert.equal(res.status, 400);
    assert.match((await res.json()).error, /body is not valid JSON/);
  });

  it('a body over the cap -> 413, declared or streamed', async () => {
    const big = JSON.stringify({ events: [{ id: 'x'.repeat(2000), type: 't' }] });
    const res = await srv.post('/events', null, { rawBody: big });
    assert.equal(res.status, 413);
    assert.match((await res.json()).error, /over 1024 bytes/);

    // Chunked: no Content-Length, so the cap trips while reading.
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big.slice(0, 1000)));
        c.enqueue(new TextEncoder().encode(big.slice(1000)));
        c.close();
      },
    });
    const chunked = await fetch(srv.url + '/events', { method: 'POST', body: stream, duplex: 'half' });
    assert.equal(chunked.status, 413);
  });

  it('unknown path -> 404, wrong method -> 405 with Allow', async () => {
    const nf = await srv.get('/nope');
    assert.equal(nf.status, 404);
    assert.match((await nf.json()).error, /no such path: \/nope/);
    const na = await srv.get('/authenticate');
    assert.equal(na.status, 405);
    assert.equal(na.headers.get('allow'), 'POST');
  });

  it('HEAD /healthz answers like GET, without a body', async () => {
    const res = await fetch(srv.url + '/healthz', { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
  });
});
