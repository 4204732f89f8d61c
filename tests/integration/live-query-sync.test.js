// SPDX-License-Identifier: Apache-2.0
// Live queries, continued: format=docs conflation for a slow client,
// documents leaving and entering the filter, read-your-writes, whole
// transactions, the snapshot cap, reset then re-subscribe.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startPush, openSse, openWs, sseUrl, sseParser, waitUntil, metrics, metricSum, sleep } = require('./push-support');
const { newView, feedSse, expected, plain, watermarkPast } = require('./live-support');

// An SSE subscriber over a raw socket that can stop reading and go on.
function openPausableSse(port, pathAndQuery) {
  return new Promise((resolve, reject) => {
    const sink = { events: [], comments: [], lines: [], status: null };
    const socket = net.connect(port, '127.0.0.1');
    let head = '';
    let feed = null;
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      if (feed) return feed(chunk);
      head += chunk;
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      sink.status = Number(head.split(' ')[1]);
      feed = sseParser(sink);
      feed(head.slice(end + 4));
      resolve(sink);
    });
    socket.on('error', reject);
    socket.write(`GET ${pathAndQuery} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    sink.pause = () => socket.pause();
    sink.resume = () => socket.resume();
    sink.close = () => socket.destroy();
    sink.socket = socket;
  });
}

const padding = 'x'.repeat(20000);

test('a format=docs subscriber that stops reading is not dropped: it skips intermediate states, holds at most one per document, and converges to the same rows as a fast one', async () => {
  const stack = await startPush({ flags: ['--push.max_queue_bytes', '65536', '--push.watermark_ms', '100'] });
  try {
    const coll = stack.client.db('shop').collection('conflate');
    for (let id = 1; id <= 20; id++) await coll.insertOne({ _id: id, v: 0, padding });
    const query = (extra) => sseUrl(stack.pushUrl, { ns: ['shop.conflate'], snapshot: true, format: 'docs', ...extra }).replace(stack.pushUrl, '');
    const fast = await openSse(`${stack.pushUrl}${query()}`);
    const slow = await openPausableSse(stack.changecast.pushPort, query());
    await waitUntil(() => slow.events.some((e) => e.type === 'snapshot-end'), 'the slow client has its snapshot');
    slow.pause();
    let most = 0;
    for (let round = 1; round <= 150; round++) {
      for (let id = 1; id <= 20; id++) await coll.updateOne({ _id: id }, { $set: { v: round, padding: `${round}`.repeat(20000 / `${round}`.length) } });
      if (round % 25 === 0) most = Math.max(most, metricSum((await metrics(stack.pushUrl)).samples, /^changecast_pending_docs$/));
    }
    const { samples } = await metrics(stack.pushUrl);
    most = Math.max(most, metricSum(samples, /^changecast_pending_docs$/));
    assert.ok(most > 0, 'the slow client had states waiting (its socket was full)');
    assert.ok(most <= 40, `at most one waiting state per document and subscriber (${most})`);
    assert.equal(metricSum(samples, /^changecast_drops_total$/), 0, 'nobody was dropped');
    await watermarkPast(stack.client, fast);
    slow.resume();
    await waitUntil(() => {
      const view = newView();
      feedSse(slow, view);
      return view.docs.size === 20 && [...view.docs.values()].every((d) => d.v === 150);
    }, 'the slow client converged', 60000);
    const want = plain(await expected(coll));
    for (const sink of [fast, slow]) {
      const view = newView();
      feedSse(sink, view);
      assert.deepEqual(plain(view.sorted()), want);
      assert.equal(sink.events.filter((e) => e.type === 'reset').length, 0);
    }
    const fastStates = fast.events.filter((e) => e.type === 'upsert').length;
    const slowStates = slow.events.filter((e) => e.type === 'upsert').length;
    // A reader that keeps up sees nearly every state (two writes of one
    // document within one flush window conflate even for it); the stalled
    // one skipped most.
    assert.ok(fastStates > 2000, `the fast client saw most states (${fastStates} of 3000)`);
    assert.ok(slowStates < fastStates / 2, `the slow one skipped states (${slowStates} vs ${fastStates})`);
    fast.close();
    slow.close();
  } finally {
    await stack.stop();
  }
});

test('a document leaving the filter is a delete (docs) or a leave (changes), and one entering it is an upsert or a change', async () => {
  const stack = await startPush({ flags: ['--push.watermark_ms', '100'] });
  try {
    const coll = stack.client.db('shop').collection('moves');
    const watcher = await openSse(sseUrl(stack.pushUrl, { ns: ['shop.moves'] }));
    await coll.insertMany([{ _id: 1, status: 'open' }, { _id: 2, status: 'closed' }]);
    await watermarkPast(stack.client, watcher); // so the snapshot includes them
    watcher.close();
    const ws = await openWs(stack.wsUrl);
    const filter = { status: 'open' };
    assert.equal((await ws.subscribe('docs', 'shop.moves', { snapshot: true, format: 'docs', filter })).type, 'subscribed');
    assert.equal((await ws.subscribe('raw', 'shop.moves', { snapshot: true, filter })).type, 'subscribed');
    await waitUntil(() => ws.of('snapshot-end').length === 2, 'both snapshots');
    assert.deepEqual(ws.of('doc', 'docs').map((m) => m.doc._id), [1]);
    // One write at a time: within one flush window format=docs would
    // (rightly) conflate two states of one document.
    const docsMessages = () => ws.messages.filter((m) => m.id === 'docs' && ['upsert', 'delete'].includes(m.type));
    const steps = [
      () => coll.updateOne({ _id: 1 }, { $set: { status: 'closed' } }),
      () => coll.updateOne({ _id: 2 }, { $set: { status: 'open' } }),
      () => coll.updateOne({ _id: 2 }, { $set: { note: 'still open' } }),
      () => coll.updateOne({ _id: 1 }, { $set: { note: 'closed and changed' } }),
      () => coll.deleteOne({ _id: 2 }),
    ];
    const expectedDocs = [1, 2, 3, 3, 4];
    for (const [k, step] of steps.entries()) {
      await step();
      await waitUntil(() => docsMessages().length === expectedDocs[k], `docs message ${expectedDocs[k]}`);
    }
    const docs = docsMessages();
    assert.deepEqual(docs.map((m) => [m.type, m._id]), [['delete', 1], ['upsert', 2], ['upsert', 2], ['delete', 2]]);
    assert.equal(docs[2].doc.note, 'still open');
    await waitUntil(() => ws.messages.filter((m) => m.id === 'raw' && ['change', 'leave'].includes(m.type)).length === 4, 'four changes on the raw one');
    const raw = ws.messages.filter((m) => m.id === 'raw' && ['change', 'leave'].includes(m.type));
    assert.deepEqual(raw.map((m) => [m.type, m.event.operationType, m.event.documentKey._id]), [
      ['leave', 'update', 1],
      ['change', 'update', 2],
      ['change', 'update', 2],
      ['change', 'delete', 2],
    ]);
    ws.close();
  } finally {
    await stack.stop();
  }
});

test("read-your-writes: once a stream reports a clusterTime at or past a write's operationTime, that write's change has been delivered", async () => {
  const stack = await startPush({ flags: ['--push.watermark_ms', '50'] });
  try {
    const coll = stack.client.db('shop').collection('ryw');
    const sink = await openSse(sseUrl(stack.pushUrl, { ns: ['shop.ryw'], snapshot: true }));
    for (let i = 1; i <= 10; i++) {
      const session = stack.client.startSession();
      await coll.insertOne({ _id: i }, { session });
      const opTime = session.operationTime;
      await session.endSession();
      const past = (e) => {
        const ts = e.type === 'watermark' ? e.json?.clusterTime : e.type === 'change' ? e.json?.clusterTime : null;
        return ts && (ts.$timestamp.t > opTime.high || (ts.$timestamp.t === opTime.high && ts.$timestamp.i >= opTime.low));
      };
      await waitUntil(() => sink.events.some(past), `the stream passed write ${i}`);
      const at = sink.events.findIndex(past);
      const delivered = sink.events.slice(0, at + 1).some((e) => e.type === 'change' && e.json.documentKey._id === i);
      assert.ok(delivered, `write ${i} was delivered before the stream said it had passed it`);
    }
    // The proxy timed those ten writes from their replies to their delivery;
    // writes to a namespace that is not exposed, and ones that change
    // nothing, are not counted.
    await stack.client.db('it').collection('unexposed').insertOne({ _id: 1 });
    await coll.updateOne({ _id: 1 }, { $set: {} }).catch(() => {});
    await coll.updateOne({ _id: 999 }, { $set: { a: 1 } });
    await coll.insertOne({ _id: 11 });
    await waitUntil(() => sink.changes.length === 11, 'the eleventh change');
    await waitUntil(async () => metricSum((await metrics(stack.pushUrl)).samples, /^changecast_write_to_delivery_seconds_count$/) === 11, 'eleven timed writes');
    const { samples } = await metrics(stack.pushUrl);
    const inf = metricSum(samples, /^changecast_write_to_delivery_seconds_bucket$/, { le: '+Inf' });
    assert.equal(inf, 11);
    assert.ok(metricSum(samples, /^changecast_write_to_delivery_seconds_sum$/) > 0);
    sink.close();
  } finally {
    await stack.stop();
  }
});

test('a 5-document transaction arrives in one WebSocket message, and on SSE as a txn marker followed by its 5 events', async () => {
  const stack = await startPush();
  try {
    const coll = stack.client.db('shop').collection('txn');
    const ws = await openWs(stack.wsUrl);
    await ws.subscribe('t', 'shop.txn');
    const sse = await openSse(sseUrl(stack.pushUrl, { ns: ['shop.txn'] }));
    await coll.insertOne({ _id: 'before' });
    const session = stack.client.startSession();
    await session.withTransaction(async () => {
      for (let i = 1; i <= 5; i++) await coll.insertOne({ _id: i }, { session });
    });
    await session.endSession();
    await coll.insertOne({ _id: 'after' });
    await waitUntil(() => ws.changes('t').length === 2 && ws.of('transaction', 't').length === 1, 'the transaction and the writes around it');
    const [txn] = ws.of('transaction', 't');
    assert.equal(txn.changes.length, 5);
    assert.deepEqual(txn.changes.map((c) => c.event.documentKey._id), [1, 2, 3, 4, 5]);
    assert.ok(txn.txn.txnNumber !== undefined && txn.txn.lsid, 'the message names the transaction');
    const order = ws.messages.filter((m) => ['change', 'transaction'].includes(m.type)).map((m) => m.type);
    assert.deepEqual(order, ['change', 'transaction', 'change']);
    await waitUntil(() => sse.changes.length === 7, 'seven SSE changes');
    const types = sse.events.filter((e) => ['change', 'txn'].includes(e.type)).map((e) => e.type);
    assert.deepEqual(types, ['change', 'txn', 'change', 'change', 'change', 'change', 'change', 'change']);
    assert.equal(sse.events.find((e) => e.type === 'txn').json.count, 5);
    ws.close();
    sse.close();
  } finally {
    await stack.stop();
  }
});

test('a snapshot over push.snapshot_max_docs is refused before anything is sent; a limit within the cap is accepted', async () => {
  const stack = await startPush({ flags: ['--push.snapshot_max_docs', '5', '--push.watermark_ms', '100'] });
  try {
    const coll = stack.client.db('shop').collection('big');
    const watcher = await openSse(sseUrl(stack.pushUrl, { ns: ['shop.big'] }));
    for (let i = 1; i <= 6; i++) await coll.insertOne({ _id: i });
    // A snapshot is read where capture has read up to: wait until that is
    // past the sixth insert.
    await watermarkPast(stack.client, watcher);
    watcher.close();
    const refused = await openSse(sseUrl(stack.pushUrl, { ns: ['shop.big'], snapshot: true }));
    assert.equal(refused.status, 413);
    assert.equal(refused.json.error, 'snapshot_too_large');
    assert.match(refused.json.message, /snapshot_max_docs/);
    const limited = await openSse(sseUrl(stack.pushUrl, { ns: ['shop.big'], snapshot: true, sort: { _id: -1 }, limit: 5 }));
    assert.equal(limited.status, 200);
    await waitUntil(() => limited.events.some((e) => e.type === 'snapshot-end'), 'the limited snapshot');
    assert.deepEqual(limited.events.filter((e) => e.type === 'doc').map((e) => e.json._id), [6, 5, 4, 3, 2]);
    limited.close();
    const over = await openSse(sseUrl(stack.pushUrl, { ns: ['shop.big'], snapshot: true, limit: 6 }));
    assert.equal(over.status, 400);
    const ws = await openWs(stack.wsUrl);
    const answer = await ws.subscribe('big', 'shop.big', { snapshot: true });
    assert.equal(answer.type, 'subscribed');
    const error = await waitUntil(() => ws.of('error', 'big')[0], 'the refusal');
    assert.equal(error.code, 'snapshot_too_large');
    assert.equal(ws.of('doc', 'big').length, 0, 'no document was sent');
    assert.equal((await ws.subscribe('big', 'shop.big', { snapshot: true, limit: 2 })).type, 'subscribed', 'the id is free again');
    ws.close();
    const { samples } = await metrics(stack.pushUrl);
    assert.equal(metricSum(samples, /^changecast_snapshots_total$/, { result: 'refused' }), 2);
  } finally {
    await stack.stop();
  }
});

test('a format=docs WebSocket subscription past push.max_pending_docs is told reset, then its socket closes with 1013 too_many_pending', async () => {
  const stack = await startPush({ flags: ['--push.max_pending_docs', '5', '--push.watermark_ms', '100'] });
  try {
    const coll = stack.client.db('shop').collection('overflow_ws');
    const ws = await openWs(stack.wsUrl);
    assert.equal((await ws.subscribe('docs', 'shop.overflow_ws', { snapshot: true, format: 'docs' })).type, 'subscribed');
    await waitUntil(() => ws.of('snapshot-end', 'docs').length === 1, 'the snapshot');
    ws.ws.pause(); // reads nothing more: the states wait in changecast
    for (let id = 1; id <= 400; id++) await coll.insertOne({ _id: id, padding });
    await waitUntil(async () => metricSum((await metrics(stack.pushUrl)).samples, /^changecast_resets_total$/, { reason: 'too_many_pending' }) === 1, 'the reset');
    ws.ws.resume();
    await waitUntil(() => ws.closed, 'the close');
    assert.equal(ws.closed.code, 1013);
    assert.equal(ws.closed.reason, 'too_many_pending');
    assert.equal(ws.of('reset', 'docs')[0]?.reason, 'too_many_pending', JSON.stringify(ws.messages.slice(-3)).slice(0, 300));
  } finally {
    await stack.stop();
  }
});

test('a format=docs client past push.max_pending_docs gets reset, and a new snapshot subscription converges', async () => {
  const stack = await startPush({ flags: ['--push.max_pending_docs', '5', '--push.watermark_ms', '100'] });
  try {
    const coll = stack.client.db('shop').collection('overflow');
    const slow = await openPausableSse(stack.changecast.pushPort, sseUrl('', { ns: ['shop.overflow'], snapshot: true, format: 'docs' }));
    await waitUntil(() => slow.events.some((e) => e.type === 'snapshot-end'), 'the snapshot');
    slow.pause();
    for (let id = 1; id <= 400; id++) await coll.insertOne({ _id: id, padding });
    await waitUntil(async () => metricSum((await metrics(stack.pushUrl)).samples, /^changecast_resets_total$/, { reason: 'too_many_pending' }) === 1, 'the reset');
    slow.resume();
    await waitUntil(() => slow.events.some((e) => e.type === 'reset'), 'the client saw the reset');
    assert.equal(slow.events.find((e) => e.type === 'reset').json.reason, 'too_many_pending');
    slow.close();
    // (A narrower view keeps the new snapshot small: the test is about the
    // reset, not about moving 8 MB again.)
    const filter = { _id: { $lte: 10 } };
    const again = await openSse(sseUrl(stack.pushUrl, { ns: ['shop.overflow'], snapshot: true, format: 'docs', filter }));
    await coll.updateOne({ _id: 7 }, { $set: { touched: true } });
    await watermarkPast(stack.client, again);
    const view = newView();
    feedSse(again, view);
    assert.deepEqual(plain(view.sorted()), plain(await expected(coll, filter)));
    again.close();
  } finally {
    await stack.stop();
  }
});

test('live queries are refused with a clear error when capture has no post-images, or when asked wrongly', async () => {
  const stack = await startPush({ flags: ['--changes.full_document', 'default'] });
  try {
    const sse = await openSse(sseUrl(stack.pushUrl, { ns: ['shop.x'], snapshot: true }));
    assert.equal(sse.status, 400);
    assert.equal(sse.json.error, 'full_document_required');
    assert.match(sse.json.message, /changes\.full_document = updateLookup/);
  } finally {
    await stack.stop();
  }
  const ok = await startPush();
  try {
    const cases = [
      [{ ns: ['shop.*'], snapshot: true }, /exactly one ns/],
      [{ ns: ['shop.a', 'shop.b'], format: 'docs' }, /exactly one ns/],
      [{ ns: ['shop.a'], snapshot: true, ops: ['insert'] }, /ops does not apply/],
      [{ ns: ['shop.a'], limit: 3 }, /snapshot only/],
      [{ ns: ['shop.a'], format: 'rows' }, /format/],
    ];
    for (const [query, message] of cases) {
      const r = await openSse(sseUrl(ok.pushUrl, query));
      assert.equal(r.status, 400, JSON.stringify(query));
      assert.match(r.json.message, message);
    }
  } finally {
    await ok.stop();
  }
});

test('format=docs: a watermark never overtakes the conflated states it speaks for, even while the client is not reading', async () => {
  const stack = await startPush({ flags: ['--push.watermark_ms', '50'] });
  try {
    const coll = stack.client.db('shop').collection('marks');
    for (let id = 1; id <= 20; id++) await coll.insertOne({ _id: id, v: 0, padding });
    const reader = await openPausableSse(stack.changecast.pushPort, sseUrl('', { ns: ['shop.marks'], snapshot: true, format: 'docs' }));
    await waitUntil(() => reader.events.some((e) => e.type === 'snapshot-end'), 'the snapshot');
    reader.pause();
    for (let round = 1; round <= 60; round++) {
      for (let id = 1; id <= 20; id++) await coll.updateOne({ _id: id }, { $set: { v: round, padding: `${round}`.repeat(20000 / `${round}`.length) } });
    }
    const session = stack.client.startSession();
    await coll.updateOne({ _id: 1 }, { $set: { v: 'last' } }, { session });
    const opTime = session.operationTime;
    await session.endSession();
    await sleep(500);
    reader.resume();
    const passed = (e) => e.type === 'watermark' && (e.json.clusterTime.$timestamp.t > opTime.high || (e.json.clusterTime.$timestamp.t === opTime.high && e.json.clusterTime.$timestamp.i >= opTime.low));
    await waitUntil(() => reader.events.some(passed), 'a watermark past the last write', 60000);
    const at = reader.events.findIndex(passed);
    const before = reader.events.slice(0, at);
    assert.ok(before.some((e) => e.type === 'upsert' && e.json._id === 1 && e.json.doc.v === 'last'), 'the last state came before the watermark that covers it');
    reader.close();
  } finally {
    await stack.stop();
  }
});
