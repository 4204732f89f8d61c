// SPDX-License-Identifier: Apache-2.0
// aggregate's writing stages, $out and $merge, through the official Node
// driver: what they write, their modes and errors, and the change events a
// watcher sees for them, as MongoDB 7.0 emits them ($out: inserts into
// tmp.agg_out.<UUID>, then one rename over the target; $merge: one insert,
// update or replace per document written).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { standinWithClient } = require('../../lib/harness');

async function setup(t) {
  const { client } = await standinWithClient(t);
  return { client, db: client.db('stage') };
}

// The next `n` events of a change stream (the stream is closed after).
async function take(stream, n) {
  const events = [];
  while (events.length < n) events.push(await stream.next());
  await stream.close();
  return events;
}

test('$out replaces the target with the pipeline result (indexes kept), returns an empty cursor, and is only a final stage', async (t) => {
  const { db } = await setup(t);
  await db.collection('orders').insertMany([
    { _id: 1, customer: 'ann', total: 10 },
    { _id: 2, customer: 'bob', total: 5 },
    { _id: 3, customer: 'ann', total: 7 },
  ]);
  await db.collection('totals').insertOne({ _id: 'stale' });
  await db.collection('totals').createIndex({ sum: 1 });
  const cursor = await db.collection('orders')
    .aggregate([{ $group: { _id: '$customer', sum: { $sum: '$total' } } }, { $sort: { _id: 1 } }, { $out: 'totals' }])
    .toArray();
  assert.deepEqual(cursor, []);
  assert.deepEqual(await db.collection('totals').find().sort({ _id: 1 }).toArray(), [{ _id: 'ann', sum: 17 }, { _id: 'bob', sum: 5 }]);
  assert.deepEqual((await db.collection('totals').indexes()).map((i) => i.name).sort(), ['_id_', 'sum_1']);
  // The object form names another database; no temporary collection stays.
  await db.collection('orders').aggregate([{ $match: { customer: 'bob' } }, { $out: { db: 'stage2', coll: 'bobs' } }]).toArray();
  assert.deepEqual(await db.client.db('stage2').collection('bobs').find().toArray(), [{ _id: 2, customer: 'bob', total: 5 }]);
  const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
  assert.equal(names.some((n) => n.startsWith('tmp.agg_out.')), false, names.join());

  await assert.rejects(db.collection('orders').aggregate([{ $out: 'x' }, { $match: {} }]).toArray(), (e) => e.code === 40601);
  await assert.rejects(db.collection('orders').aggregate([{ $out: 5 }]).toArray(), (e) => e.code === 16990);
  await assert.rejects(db.collection('orders').aggregate([{ $out: 'system.x' }]).toArray(), (e) => e.code === 17385);
  // A duplicate _id in the result fails the stage and leaves the target as it was.
  await assert.rejects(db.collection('orders').aggregate([{ $project: { _id: '$customer' } }, { $out: 'totals' }]).toArray(), (e) => e.code === 11000);
  assert.equal(await db.collection('totals').countDocuments(), 2);
});

test('$out: a database stream sees the inserts into tmp.agg_out.<UUID> and one rename over the target (dropTarget); a stream on the target is invalidated', async (t) => {
  const { db } = await setup(t);
  await db.collection('src').insertMany([{ _id: 1 }, { _id: 2 }]);
  await db.collection('dst').insertOne({ _id: 'old' });
  const dstUuid = (await db.listCollections({ name: 'dst' }).toArray())[0].info.uuid;
  // Expanded events for the rename's dropTarget; MongoDB's create and
  // createIndexes events of the temporary collection are filtered out (the
  // stand-in does not make them: README, departures).
  const onDb = db.watch([{ $match: { operationType: { $in: ['insert', 'rename'] } } }], { showExpandedEvents: true });
  const onTarget = db.collection('dst').watch();
  await onDb.tryNext(); // opened before the write
  await onTarget.tryNext();
  await db.collection('src').aggregate([{ $out: 'dst' }]).toArray();

  const events = await take(onDb, 3);
  assert.deepEqual(events.map((e) => e.operationType), ['insert', 'insert', 'rename']);
  const temp = events[0].ns.coll;
  assert.match(temp, /^tmp\.agg_out\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.deepEqual(events.map((e) => e.documentKey?._id), [1, 2, undefined]);
  const rename = events[2];
  assert.deepEqual(rename.ns, { db: 'stage', coll: temp });
  assert.deepEqual(rename.to, { db: 'stage', coll: 'dst' });
  assert.deepEqual(rename.operationDescription.to, { db: 'stage', coll: 'dst' });
  assert.equal(rename.operationDescription.dropTarget.toString('hex'), dstUuid.toString('hex'));

  const target = await take(onTarget, 2);
  assert.deepEqual(target.map((e) => e.operationType), ['rename', 'invalidate']);
  assert.deepEqual(await db.collection('dst').find().toArray(), [{ _id: 1 }, { _id: 2 }]);
});

test('renameCollection with dropTarget is one rename event, no drop of the target (as MongoDB: SERVER-53478)', async (t) => {
  const { client, db } = await setup(t);
  await db.collection('a').insertOne({ _id: 1 });
  await db.collection('b').insertOne({ _id: 2 });
  const onDb = db.watch();
  await onDb.tryNext();
  await client.db('admin').command({ renameCollection: 'stage.a', to: 'stage.b', dropTarget: true });
  await db.collection('b').insertOne({ _id: 3 });
  const events = await take(onDb, 2);
  assert.deepEqual(events.map((e) => e.operationType), ['rename', 'insert']);
  assert.deepEqual(await db.collection('b').find().sort({ _id: 1 }).toArray(), [{ _id: 1 }, { _id: 3 }]);
});

test('$merge: each whenMatched / whenNotMatched mode, into another database, on a unique field; its events are the writes it made', async (t) => {
  const { client, db } = await setup(t);
  const target = db.collection('stock');
  await target.insertMany([{ _id: 1, qty: 1, note: 'keep' }, { _id: 2, qty: 2 }]);
  const source = db.collection('incoming');
  await source.insertMany([{ _id: 1, qty: 10 }, { _id: 3, qty: 30 }]);
  const merge = (spec) => source.aggregate([{ $merge: { into: 'stock', ...spec } }]).toArray();

  const stream = target.watch();
  await stream.tryNext();
  assert.deepEqual(await merge({}), []); // merge + insert: the defaults
  assert.deepEqual(await target.find().sort({ _id: 1 }).toArray(), [
    { _id: 1, qty: 10, note: 'keep' }, { _id: 2, qty: 2 }, { _id: 3, qty: 30 },
  ]);
  const events = await take(stream, 2);
  assert.deepEqual(events.map((e) => e.operationType), ['update', 'insert']);
  assert.deepEqual(events[0].updateDescription.updatedFields, { qty: 10 });
  assert.deepEqual(events[1].fullDocument, { _id: 3, qty: 30 });

  await source.updateOne({ _id: 1 }, { $set: { qty: 11 } });
  await merge({ whenMatched: 'replace', whenNotMatched: 'discard' });
  assert.deepEqual(await target.findOne({ _id: 1 }), { _id: 1, qty: 11 });
  await source.insertOne({ _id: 4, qty: 40 });
  await merge({ whenMatched: 'keepExisting', whenNotMatched: 'discard' });
  assert.equal(await target.countDocuments({ _id: 4 }), 0);
  await assert.rejects(merge({ whenMatched: 'fail' }), (e) => e.code === 11000 && /E11000 duplicate key error collection: stage.stock index: _id_ dup key/.test(e.message));
  await assert.rejects(merge({ whenMatched: 'keepExisting', whenNotMatched: 'fail' }), (e) => e.code === 13113);
  await assert.rejects(merge({ whenMatched: 'sometimes' }), (e) => e.code === 2);
  await assert.rejects(merge({ on: 'sku' }), (e) => e.code === 51183);
  // A pipeline for whenMatched reads the incoming document as $$new, and let's variables.
  await merge({ whenMatched: [{ $set: { qty: { $add: ['$qty', '$$new.qty'] }, by: '$$who' } }], whenNotMatched: 'discard', let: { who: 'merge' } });
  assert.deepEqual(await target.findOne({ _id: 3 }), { _id: 3, qty: 60, by: 'merge' });
  assert.deepEqual(await target.findOne({ _id: 1 }), { _id: 1, qty: 22, by: 'merge' });

  // into {db, coll}, on a field with a unique index
  const other = client.db('stage_other').collection('bySku');
  await other.createIndex({ sku: 1 }, { unique: true });
  await other.insertOne({ _id: 'x', sku: 'A', qty: 1 });
  await db.collection('skus').insertMany([{ _id: 9, sku: 'A', qty: 5 }, { _id: 10, sku: 'B', qty: 6 }]);
  await db.collection('skus').aggregate([
    { $project: { _id: 0, sku: 1, qty: 1 } },
    { $merge: { into: { db: 'stage_other', coll: 'bySku' }, on: 'sku' } },
  ]).toArray();
  const merged = await other.find({}, { projection: { _id: 0 } }).sort({ sku: 1 }).toArray();
  assert.deepEqual(merged, [{ sku: 'A', qty: 5 }, { sku: 'B', qty: 6 }]);
  assert.equal((await other.findOne({ sku: 'A' }))._id, 'x', 'the matched document keeps its _id');
});
