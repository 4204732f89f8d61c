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

// A change's own resume token names its collection and document key; the
// tokens of watermarks and snapshot-end reach every stream, so they must be
// high-water marks that name nothing (found by review: they leaked the _id
// of writes the stream's token did not grant).
test('watermark and snapshot-end tokens are high-water marks that carry no document key', async () => {
  const stack = await startPush({ flags: ['--push.watermark_ms', '100'] });
  try {
    const hwm = /^82[0-9A-F]{16}2B0429296E1404$/;
    const other = await openSse(sseUrl(stack.pushUrl, { ns: ['it.orders'], filter: { 'fullDocument.never': true } }));
    const live = await openSse(`${stack.pushUrl}/v1/events?ns=shop.secrets&snapshot=1`);
    await stack.client.db('it').collection('orders').insertOne({ _id: 'SECRET-ORDER-ID' });
    await waitUntil(() => other.events.some((e) => e.type === 'watermark') && live.events.some((e) => e.type === 'watermark'), 'watermarks on both');
    const secret = Buffer.from('SECRET-ORDER-ID').toString('hex').toUpperCase();
    for (const e of [...other.events, ...live.events].filter((x) => x.id)) {
      assert.ok(!e.id.includes(secret), `${e.type} id names the document: ${e.id}`);
      if (e.type !== 'change') assert.match(e.id, hwm, `${e.type} id`);
    }
    const end = live.events.find((e) => e.type === 'snapshot-end');
    assert.match(end.json.token, hwm);
    other.close();
    live.close();
  } finally {
    await stack.stop();
  }
});
