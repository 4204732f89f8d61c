// SPDX-License-Identifier: Apache-2.0
// Watermarks: every stream regularly says how far it has delivered, quiet
// ones included, so a client knows its view includes a write, and an SSE
// reconnect resumes past events the stream did not want.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startPush, openSse, openWs, sseUrl, waitUntil } = require('./push-support');

test('a stream whose filter matches nothing still gets watermarks past the latest write', async () => {
  const stack = await startPush({ flags: ['--push.watermark_ms', '200'] });
  try {
    const all = await openSse(sseUrl(stack.pushUrl, { ns: ['it.orders'] }));
    const none = await openSse(sseUrl(stack.pushUrl, { ns: ['it.orders'], filter: { 'fullDocument.never': true } }));
    const ws = await openWs(stack.wsUrl);
    await ws.subscribe('none', 'it.orders', { filter: { 'fullDocument.never': true } });
    const orders = stack.client.db('it').collection('orders');
    for (let i = 1; i <= 3; i++) await orders.insertOne({ _id: i });
    await waitUntil(() => all.changes.length === 3, 'the unfiltered stream got 3');
    const last = all.changes[2].id;
    const watermarks = () => none.events.filter((e) => e.type === 'watermark');
    await waitUntil(() => watermarks().some((e) => e.id >= last), 'a watermark at or past the last write');
    const mark = watermarks().find((e) => e.id >= last);
    assert.equal(mark.json.token, mark.id);
    assert.ok(mark.json.clusterTime.$timestamp.t > 0, 'the watermark carries a clusterTime');
    assert.equal(none.changes.length, 0);
    await waitUntil(() => ws.of('watermark', 'none').some((m) => m.token >= last), 'a WebSocket watermark');
    const wsMark = ws.of('watermark', 'none').find((m) => m.token >= last);
    assert.ok(wsMark.clusterTime.$timestamp.t > 0);

    // Reconnecting from the watermark replays nothing: the stream had
    // already looked at everything up to it.
    none.close();
    const again = await openSse(sseUrl(stack.pushUrl, { ns: ['it.orders'], lastEventId: mark.id }));
    await orders.insertOne({ _id: 4 });
    await waitUntil(() => again.changes.length === 1, 'the next event');
    assert.equal(again.changes[0].json.fullDocument._id, 4);
    all.close();
    again.close();
    ws.close();
  } finally {
    await stack.stop();
  }
});
