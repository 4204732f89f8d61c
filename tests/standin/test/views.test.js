// SPDX-License-Identifier: Apache-2.0
// Read-only views (MongoDB 7.0 "Views") through the official Node driver:
// create with viewOn and pipeline, reads over them (find, aggregate,
// countDocuments, estimatedDocumentCount, distinct), views on views, the
// catalog's entries, and MongoDB's errors for writes, indexes and change
// streams on a view.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { standinWithClient } = require('../../lib/harness');

async function setup(t) {
  const { client } = await standinWithClient(t);
  return { client, db: client.db('views') };
}

const isView = (e) => e.code === 166 && e.codeName === 'CommandNotSupportedOnView' && /is a view, not a collection/.test(e.message);

test('a view reads through its pipeline, follows its source, and stacks', async (t) => {
  const { db } = await setup(t);
  await db.collection('orders').insertMany([
    { _id: 1, customer: 'ann', total: 10, status: 'paid' },
    { _id: 2, customer: 'bob', total: 5, status: 'open' },
    { _id: 3, customer: 'ann', total: 7, status: 'paid' },
  ]);
  await db.createCollection('paid', { viewOn: 'orders', pipeline: [{ $match: { status: 'paid' } }, { $project: { status: 0 } }] });
  const paid = db.collection('paid');
  assert.deepEqual(await paid.find().sort({ _id: 1 }).toArray(), [
    { _id: 1, customer: 'ann', total: 10 }, { _id: 3, customer: 'ann', total: 7 },
  ]);
  assert.deepEqual(await paid.find({ total: { $gt: 8 } }, { projection: { total: 1 } }).toArray(), [{ _id: 1, total: 10 }]);
  assert.deepEqual((await paid.find().sort({ total: 1 }).skip(1).limit(1).toArray()).map((d) => d._id), [1]);
  assert.equal(await paid.countDocuments(), 2);
  assert.equal(await paid.countDocuments({ total: 7 }), 1);
  assert.equal(await paid.estimatedDocumentCount(), 2);
  assert.deepEqual(await paid.distinct('customer'), ['ann']);
  assert.deepEqual(await paid.aggregate([{ $group: { _id: '$customer', sum: { $sum: '$total' } } }]).toArray(), [{ _id: 'ann', sum: 17 }]);
  // A view follows its source; a view may be defined on a view.
  await db.collection('orders').insertOne({ _id: 4, customer: 'cid', total: 1, status: 'paid' });
  await db.createCollection('smallPaid', { viewOn: 'paid', pipeline: [{ $match: { total: { $lt: 8 } } }] });
  assert.deepEqual((await db.collection('smallPaid').find().sort({ _id: 1 }).toArray()).map((d) => d._id), [3, 4]);
  // $lookup may read a view.
  const joined = await db.collection('orders')
    .aggregate([{ $match: { _id: 2 } }, { $lookup: { from: 'paid', localField: 'customer', foreignField: 'customer', as: 'paid' } }])
    .toArray();
  assert.deepEqual(joined[0].paid, []);
});

test('listCollections shows a view as type view with its definition, and system.views beside it; drop removes it', async (t) => {
  const { db } = await setup(t);
  await db.collection('src').insertOne({ _id: 1 });
  await db.createCollection('v', { viewOn: 'src', pipeline: [{ $match: { _id: 1 } }] });
  const entries = await db.listCollections().toArray();
  const view = entries.find((e) => e.name === 'v');
  assert.deepEqual(view, { name: 'v', type: 'view', options: { viewOn: 'src', pipeline: [{ $match: { _id: 1 } }] }, info: { readOnly: true } });
  const views = entries.find((e) => e.name === 'system.views');
  assert.equal(views.type, 'collection');
  assert.deepEqual((await db.listCollections({ type: 'view' }, { nameOnly: true }).toArray()), [{ name: 'v', type: 'view' }]);
  assert.equal(await db.collection('v').drop(), true);
  assert.deepEqual(await db.listCollections({ type: 'view' }).toArray(), []);
});

test('writes, indexes and change streams on a view fail with CommandNotSupportedOnView; create refuses names taken and writing stages', async (t) => {
  const { db } = await setup(t);
  await db.collection('src').insertOne({ _id: 1, x: 1 });
  await db.createCollection('v', { viewOn: 'src' });
  const v = db.collection('v');
  await assert.rejects(v.insertOne({ _id: 2 }), isView);
  await assert.rejects(v.updateOne({ _id: 1 }, { $set: { x: 2 } }), isView);
  await assert.rejects(v.deleteOne({ _id: 1 }), isView);
  await assert.rejects(v.findOneAndUpdate({ _id: 1 }, { $set: { x: 3 } }), isView);
  await assert.rejects(v.createIndex({ x: 1 }), isView);
  await assert.rejects(v.watch().next(), isView);
  await assert.rejects(db.collection('src').aggregate([{ $out: 'v' }]).toArray(), isView);
  assert.deepEqual(await db.collection('src').find().toArray(), [{ _id: 1, x: 1 }], 'nothing written');

  await assert.rejects(db.createCollection('v', { viewOn: 'src' }), (e) => e.code === 48);
  await assert.rejects(db.createCollection('src', { viewOn: 'v' }), (e) => e.code === 48);
  await assert.rejects(db.createCollection('w', { viewOn: 'src', pipeline: [{ $out: 'x' }] }), (e) => e.code === 167);
  await assert.rejects(db.command({ create: 'w', viewOn: 5 }), (e) => e.code === 14);
});
