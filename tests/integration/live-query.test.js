// SPDX-License-Identifier: Apache-2.0
// Live queries (docs/live-queries.md): a snapshot that turns into changes
// with no gap and no duplicate, state sync with conflation, documents
// leaving and entering a filter, read-your-writes, whole transactions,
// and the snapshot cap. Against the stand-in, through the wire proxy, with
// the Node driver writing.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { EJSON } = require('bson');
const { startPush, openSse, openWs, sseUrl, waitUntil, metrics, metricSum, sleep } = require('./push-support');

// The client side of a live query, written from docs/push-protocol.md: a
// Map of _id (as Extended JSON) to document, fed with snapshot documents
// and then with change events (format=changes) or states (format=docs).
function newView() {
  const view = { docs: new Map(), snapshotDone: false, tokens: [], versions: new Map(), problems: [] };
  const key = (id) => EJSON.stringify(id, { relaxed: false });
  // Every document carries v, incremented by each write: per _id the view
  // must see v strictly one more each time (no gap, no duplicate).
  // (updateLookup's fullDocument is read later than the event, so the
  // version an event made is in its updateDescription.)
  const see = (id, v) => {
    const k = key(id);
    const before = view.versions.get(k);
    if (before !== undefined && v !== before + 1) view.problems.push(`_id ${k}: v ${before} then ${v}`);
    view.versions.set(k, v);
  };
  view.snapshotDoc = (doc) => {
    view.docs.set(key(doc._id), doc);
    view.versions.set(key(doc._id), doc.v);
  };
  view.change = (event, token) => {
    if (view.tokens.length && token <= view.tokens[view.tokens.length - 1]) view.problems.push(`token out of order: ${token}`);
    view.tokens.push(token);
    const id = event.documentKey._id;
    if (event.operationType === 'delete' || !event.fullDocument) view.docs.delete(key(id));
    else {
      see(id, event.operationType === 'update' ? event.updateDescription.updatedFields.v : event.fullDocument.v);
      view.docs.set(key(id), event.fullDocument);
    }
  };
  view.leave = (event, token) => {
    view.tokens.push(token);
    view.docs.delete(key(event.documentKey._id));
  };
  view.upsert = (id, doc) => view.docs.set(key(id), doc);
  view.remove = (id) => view.docs.delete(key(id));
  view.sorted = () => [...view.docs.values()].sort((a, b) => a._id - b._id);
  return view;
}

// Feeds an SSE sink's events (parsed as canonical EJSON) into a view.
function feedSse(sink, view, from = 0) {
  for (const e of sink.events.slice(from)) {
    const data = e.data ? EJSON.parse(e.data, { relaxed: true }) : null;
    if (e.type === 'doc') view.snapshotDoc(data);
    else if (e.type === 'snapshot-end') view.snapshotDone = true;
    else if (e.type === 'change') view.change(data, data._id._data);
    else if (e.type === 'leave') view.leave(data, data._id._data);
    else if (e.type === 'upsert') view.upsert(data._id, data.doc);
    else if (e.type === 'delete') view.remove(data._id);
  }
  return sink.events.length;
}

async function expected(coll, filter = {}) {
  return (await coll.find(filter).sort({ _id: 1 }).toArray()).map((d) => EJSON.parse(EJSON.stringify(d, { relaxed: true }), { relaxed: true }));
}

function plain(docs) {
  return JSON.parse(EJSON.stringify(docs, { relaxed: true }));
}

// Inserts and updates as fast as the driver goes until stop() is called;
// every write bumps the document's v.
function startWriter(coll, { ids = 40 } = {}) {
  let running = true;
  let writes = 0;
  const done = (async () => {
    const v = new Map();
    while (running) {
      const id = 1 + Math.floor(Math.random() * ids);
      if (!v.has(id)) {
        v.set(id, 1);
        await coll.insertOne({ _id: id, v: 1, status: id % 3 ? 'open' : 'closed' });
      } else {
        const next = v.get(id) + 1;
        v.set(id, next);
        await coll.updateOne({ _id: id }, { $set: { v: next, status: next % 4 ? 'open' : 'closed' } });
      }
      writes++;
    }
  })();
  return { stop: async () => ((running = false), await done, writes) };
}

// The operationTime of the last write, from a session, then waits until the
// stream's watermark has passed it.
async function watermarkPast(client, sink) {
  const session = client.startSession();
  await client.db('it').command({ ping: 1 }, { session });
  const opTime = session.operationTime;
  await session.endSession();
  await waitUntil(() => sink.events.some((e) => e.type === 'watermark' && e.json && tsAtLeast(e.json.clusterTime, opTime)), 'a watermark past the last write');
}

function tsAtLeast(ejsonTs, ts) {
  const { t, i } = ejsonTs.$timestamp;
  return t > ts.high || (t === ts.high && i >= ts.low);
}

test('a snapshot taken while a writer runs at full speed, then its changes: the view equals a find afterwards, 20 runs, no gap, no duplicate', async () => {
  const stack = await startPush({ flags: ['--push.watermark_ms', '100'] });
  try {
    for (let run = 1; run <= 20; run++) {
      const coll = stack.client.db('shop').collection(`live${run}`);
      const filter = run % 2 ? { status: 'open' } : {};
      const writer = startWriter(coll);
      await sleep(50 + (run % 5) * 20);
      let sink;
      let writes;
      try {
        sink = await openSse(sseUrl(stack.pushUrl, { ns: [`shop.live${run}`], snapshot: true, filter }));
        await sleep(150);
      } finally {
        writes = await writer.stop();
      }
      assert.equal(sink.status, 200, sink.body);
      await watermarkPast(stack.client, sink);
      const view = newView();
      feedSse(sink, view);
      sink.close();
      assert.ok(view.snapshotDone, 'snapshot-end arrived');
      const begin = sink.events.find((e) => e.type === 'snapshot-begin');
      assert.equal(begin.json.count, sink.events.filter((e) => e.type === 'doc').length, 'count matches the documents sent');
      const end = sink.events.find((e) => e.type === 'snapshot-end');
      assert.equal(end.id, end.json.token, 'snapshot-end carries its token as the SSE id');
      assert.ok(writes > 20, `the writer wrote (${writes})`);
      assert.deepEqual(view.problems.filter((p) => !p.startsWith('_id') || filter.status === undefined), [], `run ${run}`);
      assert.deepEqual(plain(view.sorted()), plain(await expected(coll, filter)), `run ${run}: view equals find`);
      for (const c of sink.changes) assert.ok(c.id > end.id, 'every change is after the snapshot');
    }
  } finally {
    await stack.stop();
  }
});
