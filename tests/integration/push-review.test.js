// SPDX-License-Identifier: Apache-2.0
// Hostile and heavy clients found by review: oversized fields, a reconnect
// from far back with a small queue, an SSE client that keeps talking.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startPush, openSse, openWs, openStalledSse, sseUrl, waitUntil, writeSeq, range } = require('./push-support');

test('a WebSocket ops array with a huge item is an error, and the socket stays', async () => {
  const stack = await startPush();
  try {
    const ws = await openWs(stack.wsUrl);
    const answer = await ws.subscribe('a', 'it.orders', { ops: ['A'.repeat(5000), 'insert'] });
    assert.equal(answer.type, 'error');
    assert.equal(answer.code, 'bad_request');
    const pong = await ws.request({ type: 'ping' }, ['pong']);
    assert.equal(pong.type, 'pong');
    ws.close();
  } finally {
    await stack.stop();
  }
});

test('a reconnect from far back with a small queue gets every event: replay is paced by the client', async () => {
  const stack = await startPush({ flags: ['--push.max_queue_bytes', '16384', '--changes.ring_events', '100000'] });
  try {
    const first = await openSse(sseUrl(stack.pushUrl, { ns: ['it.orders'] }));
    const orders = stack.client.db('it').collection('orders');
    await writeSeq(orders, 1, 300, () => ({ pad: 'x'.repeat(1000) }));
    await waitUntil(() => first.changes.length === 300, 'the live subscriber saw 300');
    const token = first.changes[0].id;
    first.close();
    const again = await openSse(sseUrl(stack.pushUrl, { ns: ['it.orders'], lastEventId: token }));
    await waitUntil(() => again.changes.length === 299 || again.resets.length > 0, 'the replay');
    assert.equal(again.resets.length, 0, 'no reset');
    assert.deepEqual(again.seqs, range(2, 300));
    assert.doesNotMatch(stack.changecast.output, /reason=slow_consumer/);
    again.close();
  } finally {
    await stack.stop();
  }
});

test('an SSE client that sends bytes after its request is closed (client_sent_data)', async () => {
  const stack = await startPush();
  try {
    const client = await openStalledSse(stack.changecast.pushPort, '/v1/events?ns=it.orders');
    await waitUntil(() => /event=sse_open/.test(stack.changecast.output), 'the stream opened');
    client.socket.write('more bytes than a GET should have\r\n');
    await waitUntil(() => /event=dropped reason=client_sent_data/.test(stack.changecast.output), 'the drop');
    client.drain(); // reading again lets the client see the close
    await waitUntil(() => client.closed, 'changecast closed the connection');
  } finally {
    await stack.stop();
  }
});

test('/metrics reports the wire proxy: connections and bytes forwarded each way', async () => {
  const { metrics, metricSum } = require('./push-support');
  const stack = await startPush();
  try {
    await stack.client.db('it').collection('orders').insertOne({ _id: 'm1' });
    const read = async () => (await metrics(stack.pushUrl)).samples;
    await waitUntil(async () => metricSum(await read(), /^changecast_wire_bytes_forwarded_total$/, { direction: 'upstream' }) > 0, 'bytes counted');
    const samples = await read();
    assert.ok(metricSum(samples, /^changecast_wire_connections$/) >= 1);
    const up = metricSum(samples, /^changecast_wire_bytes_forwarded_total$/, { direction: 'upstream' });
    const down = metricSum(samples, /^changecast_wire_bytes_forwarded_total$/, { direction: 'client' });
    assert.ok(up > 100 && down > 100, `forwarded ${up} up, ${down} down`);
    await stack.client.db('it').collection('orders').findOne({ _id: 'm1' });
    await waitUntil(async () => metricSum(await read(), /^changecast_wire_bytes_forwarded_total$/, { direction: 'client' }) > down, 'more bytes after a find');
  } finally {
    await stack.stop();
  }
});
