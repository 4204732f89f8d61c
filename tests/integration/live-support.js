// SPDX-License-Identifier: Apache-2.0
// What the live-query tests share: a client-side view written from
// docs/push-protocol.md alone, a writer, and waiting for a watermark.
'use strict';
const { EJSON } = require('bson');
const { waitUntil } = require('./push-support');

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
  return { count: () => writes, stop: async () => ((running = false), await done, writes) };
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

module.exports = { newView, feedSse, expected, plain, startWriter, watermarkPast, tsAtLeast };
