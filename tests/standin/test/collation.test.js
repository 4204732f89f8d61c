// SPDX-License-Identifier: Apache-2.0
// Collation through the official Node driver: the answers MongoDB gives for
// strength 1-3, caseLevel, caseFirst and numericOrdering, in every command
// that takes one, from a collection's, an index's and a view's default, and
// the spec mongod stores and reports.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { standinWithClient } = require('../../lib/harness');

const caseless = { locale: 'en_US', strength: 2 };
const resolvedCaseless = {
  locale: 'en_US', caseLevel: false, caseFirst: 'off', strength: 2, numericOrdering: false,
  alternate: 'non-ignorable', maxVariable: 'punct', normalization: false, backwards: false, version: '57.1',
};

async function setup(t) {
  const { client } = await standinWithClient(t, []);
  return client.db('collation');
}

test('strength 2 compares without case in find, count, distinct, update, delete, findAndModify and bulk writes', async (t) => {
  const db = await setup(t);
  const c = db.collection('words');
  await c.insertMany([{ _id: 1, w: 'PING' }, { _id: 2, w: 'ping' }, { _id: 3, w: 'pïng' }, { _id: 4, w: 'pong' }]);
  assert.deepEqual((await c.find({ w: 'ping' }, { collation: caseless }).toArray()).map((d) => d._id), [1, 2]);
  assert.deepEqual((await c.find({ w: 'ping' }).toArray()).map((d) => d._id), [2], 'without a collation: binary');
  assert.equal(await c.countDocuments({ w: 'Ping' }, { collation: caseless }), 2);
  assert.equal(await c.countDocuments({ w: 'ping' }, { collation: { locale: 'en_US', strength: 1 } }), 3, 'strength 1 ignores accents too');
  assert.equal(await c.countDocuments({ w: 'ping' }, { collation: { locale: 'en_US', strength: 1, caseLevel: true } }), 2, 'caseLevel: case counts, accents do not');
  assert.equal(await c.countDocuments({ w: 'ping' }, { collation: { locale: 'en_US', strength: 3 } }), 1);
  const values = await c.distinct('w', {}, { collation: caseless });
  assert.equal(values.length, 3, JSON.stringify(values));
  assert.ok(values.includes('pïng') && values.includes('pong'));
  assert.deepEqual(await c.distinct('w', { w: { $in: ['PONG'] } }, { collation: caseless }), ['pong']);
  assert.equal((await c.updateMany({ w: 'PiNg' }, { $set: { seen: true } }, { collation: caseless })).modifiedCount, 2);
  assert.equal(await c.countDocuments({ seen: true }), 2);
  const removed = await c.findOneAndDelete({ w: 'PONG' }, { collation: caseless });
  assert.equal(removed._id, 4);
  const bulk = await c.bulkWrite([{ deleteMany: { filter: { w: 'PING' }, collation: caseless } }]);
  assert.equal(bulk.deletedCount, 2);
  assert.deepEqual((await c.find().toArray()).map((d) => d._id), [3]);
});

test('ordering: $gt, sort, caseFirst and numericOrdering follow the collation', async (t) => {
  const db = await setup(t);
  const c = db.collection('order');
  await c.insertMany(['b', 'A', 'a', 'B', '10', '9', '2'].map((w, i) => ({ _id: i, w })));
  const letters = { w: { $regex: '^[a-zA-Z]' } };
  const sorted = async (collation) => (await c.find(letters, { sort: { w: 1 }, collation }).toArray()).map((d) => d.w);
  assert.deepEqual(await sorted(undefined), ['A', 'B', 'a', 'b']);
  assert.deepEqual(await sorted({ locale: 'en' }), ['a', 'A', 'b', 'B']);
  assert.deepEqual(await sorted({ locale: 'en', caseFirst: 'upper' }), ['A', 'a', 'B', 'b']);
  const digits = async (collation) => (await c.find({ w: { $lt: 'a' } }, { sort: { w: -1 }, collation }).toArray()).map((d) => d.w);
  assert.deepEqual(await digits({ locale: 'en', numericOrdering: true }), ['10', '9', '2']);
  assert.deepEqual(await digits({ locale: 'en' }), ['9', '2', '10']);
  assert.deepEqual((await c.find({ w: { $gt: 'a' } }, { collation: caseless, sort: { _id: 1 } }).toArray()).map((d) => d.w), ['b', 'B']);
  const grouped = await c.aggregate([{ $match: letters }, { $group: { _id: '$w', n: { $sum: 1 } } }, { $sort: { _id: 1 } }], { collation: caseless }).toArray();
  assert.deepEqual(grouped.map((g) => [g._id.toLowerCase(), g.n]), [['a', 2], ['b', 2]]);
  assert.deepEqual(await c.aggregate([{ $match: { w: 'A' } }, { $count: 'n' }], { collation: caseless }).toArray(), [{ n: 2 }]);
});

test('a collection default collation: stored resolved, used by every operation, the _id index collated, overridden by an explicit one', async (t) => {
  const db = await setup(t);
  await db.createCollection('people', { collation: caseless });
  const [entry] = await db.listCollections({ name: 'people' }).toArray();
  assert.deepEqual(entry.options, { collation: resolvedCaseless });
  assert.deepEqual(entry.idIndex, { v: 2, key: { _id: 1 }, name: '_id_', collation: resolvedCaseless });
  const c = db.collection('people');
  await c.insertMany([{ _id: 'ann', n: 1 }, { _id: 'bob', n: 2 }]);
  await assert.rejects(c.insertOne({ _id: 'ANN' }), (e) => e.code === 11000 && /index: _id_ dup key: \{ _id: "ANN" \}/.test(e.message));
  assert.equal((await c.findOne({ _id: 'BOB' })).n, 2);
  assert.equal(await c.findOne({ _id: 'BOB' }, { collation: { locale: 'simple' } }), null);
  await c.createIndex({ n: 1 });
  const indexes = await c.listIndexes().toArray();
  assert.deepEqual(indexes[1], { v: 2, key: { n: 1 }, name: 'n_1', collation: resolvedCaseless });
  await c.createIndex({ m: 1 }, { collation: { locale: 'simple' } });
  assert.equal((await c.listIndexes().toArray())[2].collation, undefined);
});

test('a unique index with a collation refuses values equal under it', async (t) => {
  const db = await setup(t);
  const c = db.collection('handles');
  await c.createIndex({ handle: 1 }, { unique: true, collation: caseless });
  assert.deepEqual((await c.listIndexes().toArray())[1].collation, resolvedCaseless);
  await c.insertOne({ handle: 'Ann' });
  await assert.rejects(c.insertOne({ handle: 'aNN' }), (e) => e.code === 11000 && /index: handle_1/.test(e.message));
  await c.insertOne({ handle: 'Änn' });
  assert.equal(await c.countDocuments(), 2);
});

test('a view with a collation uses it, and an operation cannot override it', async (t) => {
  const db = await setup(t);
  await db.collection('src').insertMany([{ _id: 1, w: 'X' }, { _id: 2, w: 'x' }]);
  await db.createCollection('v', { viewOn: 'src', pipeline: [], collation: caseless });
  const [entry] = await db.listCollections({ name: 'v' }).toArray();
  assert.deepEqual(entry.options, { viewOn: 'src', pipeline: [], collation: resolvedCaseless });
  assert.equal(await db.collection('v').countDocuments({ w: 'x' }), 2);
  await assert.rejects(db.collection('v').find({}, { collation: { locale: 'fr' } }).toArray(), (e) => e.code === 167);
});

test('$regex ignores the collation; what the stand-in cannot compare is refused with 115, nothing written', async (t) => {
  const db = await setup(t);
  const c = db.collection('r');
  await c.insertMany([{ _id: 1, w: 'PING' }, { _id: 2, w: 'ping' }]);
  assert.deepEqual((await c.find({ w: { $regex: '^p' } }, { collation: caseless }).toArray()).map((d) => d._id), [2]);
  assert.deepEqual((await c.find({ $or: [{ w: /^P/ }, { w: 'nothing' }] }, { collation: caseless }).toArray()).map((d) => d._id), [1]);
  const refused = (e) => e.code === 115 && /not implemented by the stand-in/.test(e.message);
  await assert.rejects(c.find({}, { collation: { locale: 'en', strength: 4 } }).toArray(), refused);
  await assert.rejects(c.find({ $expr: { $eq: ['$w', 'ping'] } }, { collation: caseless }).toArray(), refused);
  await assert.rejects(c.updateMany({ w: 'ping' }, { $addToSet: { tags: 'a' } }, { collation: caseless }), refused);
  await assert.rejects(c.aggregate([{ $lookup: { from: 'r', localField: 'w', foreignField: 'w', as: 'j' } }], { collation: caseless }).toArray(), refused);
  assert.equal(await c.countDocuments({ tags: { $exists: true } }), 0);
});

test('a malformed collation gets the error mongod gives', async (t) => {
  const db = await setup(t);
  await db.collection('e').insertOne({ _id: 1 });
  const run = (collation) => db.command({ find: 'e', filter: {}, collation });
  await assert.rejects(run('en'), (e) => e.code === 14);
  await assert.rejects(run({ strength: 2 }), (e) => e.code === 40414);
  await assert.rejects(run({ locale: 'xx_NOPE' }), (e) => e.code === 2 && /Field 'locale' is invalid/.test(e.message));
  await assert.rejects(run({ locale: 'en', strength: 6 }), (e) => e.code === 9 && /must be an integer 1 through 5/.test(e.message));
  await assert.rejects(run({ locale: 'en', caseFirst: 'sideways' }), (e) => e.code === 9);
  await assert.rejects(run({ locale: 'en', color: 'red' }), (e) => e.code === 40415);
  await assert.rejects(run({ locale: 'simple', strength: 2 }), (e) => e.code === 2);
  assert.equal((await run({ locale: 'simple' })).cursor.firstBatch.length, 1);
});
