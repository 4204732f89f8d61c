// SPDX-License-Identifier: Apache-2.0
// The overload rule (docs/push-protocol.md, Flow control): a subscriber is
// dropped as slow_consumer only when its own socket stops taking bytes,
// never because changecast itself fell behind; and queues hold references,
// so what a dropped subscriber held is given back.
'use strict';
const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startPush, waitUntil, sleep, range, openEventSource, openWs, openStalledSse, openStalledWs, closeAll, metrics, metricSum, sseUrl } = require('./push-support');

afterEach(() => closeAll());

const value = (m, name, labels = {}) => metricSum(m.samples, new RegExp(`^${name}$`), labels);

// Readers on both transports: 'SSE' through an EventSource, 'WS' through ws.
// The WebSocket readers do not ask for permessage-deflate: npm ws inflates
// on libuv's threadpool, and on a loaded test machine that makes the
// client itself stop reading for over a second, which is the other rule of
// this file (a socket that takes no bytes is dropped), not the one tested
// here. Compression is tested in push-compression.test.js.
async function openReaders(s, ns, count) {
  const readers = [];
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) {
      const sse = openEventSource(sseUrl(s.pushUrl, { ns }));
      await sse.opened;
      readers.push({ name: `sse-${i}`, seqs: () => sse.seqs, resets: () => sse.resets, open: () => !sse.ended && sse.es.readyState === 1 });
    } else {
      const ws = await openWs(s.wsUrl, { perMessageDeflate: false });
      assert.equal((await ws.subscribe('r', ns)).type, 'subscribed');
      readers.push({ name: `ws-${i}`, seqs: () => ws.seqs('r'), resets: () => ws.of('reset', 'r'), open: () => ws.open });
    }
  }
  return readers;
}

function assertEveryEventOnce(readers, n) {
  for (const r of readers) {
    assert.deepEqual(r.resets(), [], `${r.name} got no reset`);
    assert.deepEqual(r.seqs(), range(1, n), `${r.name} got every event once, in order`);
    assert.ok(r.open(), `${r.name} is still connected`);
  }
}

test('a server that falls behind drops nobody who reads: bursts far above the queue bound pause readers and feed them from the ring', async () => {
  // 16 KiB queues and bursts of 400 events of 1 KiB to each of 40 readers:
  // every queue passes its bound while its socket keeps draining.
  const s = await startPush({ flags: ['--push.max_queue_bytes', '16384'] });
  const ns = 'it.orders';
  try {
    const readers = await openReaders(s, ns, 40);
    const orders = s.client.db('it').collection('orders');
    const pad = 'p'.repeat(1024);
    const n = 1200;
    for (let from = 1; from <= n; from += 400) {
      await orders.insertMany(range(from, from + 399).map((seq) => ({ _id: seq, seq, pad })));
    }
    await waitUntil(() => readers.every((r) => r.seqs().length >= n), () => `every reader to get ${n} events (${readers.map((r) => r.seqs().length).join(' ')})`, 120000);
    assertEveryEventOnce(readers, n);
    const m = await metrics(s.pushUrl);
    assert.equal(value(m, 'changecast_drops_total', { reason: 'slow_consumer' }), 0, 'nobody dropped as slow_consumer');
    assert.ok(value(m, 'changecast_paused_total', { reason: 'server_behind' }) >= 1, 'the burst paused readers (changecast_paused_total{reason="server_behind"})');
  } finally {
    closeAll();
    await s.stop();
  }
});

test('hostile trial, small: readers keep every event while 100 subscribers that never read are each dropped when their socket stalls, and their queues are given back', async () => {
  // The full-size case (10 readers, 1,000 non-readers, 200 writes/s of
  // 2 KiB) is bench/hostile.sh; this one fits the test machine.
  const s = await startPush({ flags: ['--push.stall_timeout_ms', '1000', '--push.max_queue_bytes', '262144'] });
  const ns = 'it.chat';
  const chat = s.client.db('it').collection('chat');
  const body = 'b'.repeat(2048);
  let n = 0;
  let writing = true;
  let writer = Promise.resolve();
  try {
    const readers = await openReaders(s, ns, 10);
    writer = (async () => {
      // 200 inserts a second through the wire port, one at a time.
      const start = Date.now();
      while (writing) {
        n += 1;
        await chat.insertOne({ _id: n, seq: n, body });
        const ahead = start + n * 5 - Date.now();
        if (ahead > 0) await sleep(ahead);
      }
    })();
    await waitUntil(() => readers.every((r) => r.seqs().length >= 1), 'the readers to receive');
    const stalled = [];
    for (let i = 0; i < 100; i++) {
      const localAddress = `127.0.${Math.floor(i / 20)}.${10 + (i % 20)}`; // 20 per address, 5 addresses
      stalled.push(i % 2 ? await openStalledWs(s.changecast.pushPort, { id: 's', ns }, { localAddress }) : await openStalledSse(s.changecast.pushPort, `/v1/events?ns=${ns}`, { localAddress }));
    }
    const drops = async () => value(await metrics(s.pushUrl), 'changecast_drops_total', { reason: 'slow_consumer' });
    await waitUntil(async () => (await drops()) >= 100, async () => `the 100 non-readers to be dropped as slow_consumer (${await drops()} so far)`, 90000);
    writing = false;
    await writer;
    await waitUntil(() => readers.every((r) => r.seqs().length >= n), () => `every reader to get all ${n} events (${readers.map((r) => r.seqs().length).join(' ')})`, 60000);
    // Readers subscribed before the first write, so each has 1..n.
    assertEveryEventOnce(readers, n);
    const m = await metrics(s.pushUrl);
    assert.equal(value(m, 'changecast_drops_total', { reason: 'slow_consumer' }), 100, 'exactly the non-readers were dropped');
    const subscribers = async () => value(await metrics(s.pushUrl), 'changecast_subscribers');
    await waitUntil(async () => (await subscribers()) === 10, async () => `only the 10 readers to remain subscribed (${await subscribers()} are)`);
    // changecast cut each non-reader's socket: reading it now reaches its end.
    for (const c of stalled) {
      c.socket.on('error', () => {});
      c.drain();
    }
    await waitUntil(() => stalled.every((c) => c.closed), () => `every non-reader's socket to be closed by changecast (${stalled.filter((c) => !c.closed).length} open)`);
    const queues = async () => value(await metrics(s.pushUrl), 'changecast_output_queues');
    await waitUntil(async () => (await queues()) === 0, async () => `no connection to hold an output queue once the readers are idle and the non-readers gone (${await queues()} do)`);
  } finally {
    writing = false;
    await writer.catch(() => {});
    closeAll();
    await s.stop();
  }
});
