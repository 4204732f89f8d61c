// SPDX-License-Identifier: Apache-2.0
// CRUD through the official Node driver and exact reply shapes through raw
// commands: insert/update/delete/findAndModify/find/count/distinct/aggregate,
// cursors, catalog commands and MongoDB-shaped errors.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { MongoClient, ObjectId, Long } = require('mongodb');
const { standinWithClient } = require('../../lib/harness');

async function setup(t, args = []) {
  const { s, client } = await standinWithClient(t, args);
  return { s, client, db: client.db('crud') };
}

test('insert, find with filter/projection/sort/skip/limit round-trip documents', async (t) => {
  const { db } = await setup(t);
  const c = db.collection('people');
  const r = await c.insertMany([
    { name: 'ann', age: 31, tags: ['a', 'b'] },
    { name: 'bob', age: 25, tags: ['b'] },
    { name: 'cid', age: 40, tags: [] },
    { _id: 7, name: 'dee', age: 35, nested: { x: 1 } },
  ]);
  assert.equal(r.insertedCount, 4);
  const all = await c.find({}).toArray();
  assert.equal(all.length, 4);
  assert.deepEqual(Object.keys(all[0])[0], '_id', '_id is stored first');
  const older = await c.find({ age: { $gt: 30 } }, { projection: { _id: 0, name: 1 }, sort: { age: -1 } }).toArray();
  assert.deepEqual(older, [{ name: 'cid' }, { name: 'dee' }, { name: 'ann' }]);
  const page = await c.find({}).sort({ age: 1 }).skip(1).limit(2).toArray();
  assert.deepEqual(page.map((d) => d.name), ['ann', 'dee']);
  assert.deepEqual(await c.findOne({ _id: 7 }, { projection: { nested: 1 } }), { _id: 7, nested: { x: 1 } });
  assert.equal((await c.find({ tags: 'b' }).toArray()).length, 2);
  assert.equal((await c.find({ name: { $regex: '^[ab]' } }).toArray()).length, 2);
});

test('update operators, upsert, multi and arrayFilters', async (t) => {
  const { db } = await setup(t);
  const c = db.collection('u');
  await c.insertMany([{ _id: 1, n: 1, arr: [1, 2, 3], grades: [{ g: 80 }, { g: 95 }] }, { _id: 2, n: 2 }]);
  let r = await c.updateOne({ _id: 1 }, { $inc: { n: 5 }, $set: { 'sub.x': 'y' }, $push: { arr: 4 } });
  assert.equal(r.matchedCount, 1);
  assert.equal(r.modifiedCount, 1);
  assert.deepEqual(await c.findOne({ _id: 1 }, { projection: { grades: 0 } }), { _id: 1, n: 6, arr: [1, 2, 3, 4], sub: { x: 'y' } });
  r = await c.updateOne({ _id: 1 }, { $set: { n: 6 } });
  assert.equal(r.modifiedCount, 0, 'a no-op update modifies nothing');
  r = await c.updateMany({}, { $set: { flag: true } });
  assert.equal(r.matchedCount, 2);
  assert.equal(r.modifiedCount, 2);
  r = await c.updateOne({ _id: 3 }, { $set: { made: 1 }, $setOnInsert: { fresh: true } }, { upsert: true });
  assert.equal(r.upsertedCount, 1);
  assert.equal(r.upsertedId, 3);
  assert.deepEqual(await c.findOne({ _id: 3 }), { _id: 3, made: 1, fresh: true });
  await c.updateOne({ _id: 1 }, { $set: { 'grades.$[hi].top': true } }, { arrayFilters: [{ 'hi.g': { $gte: 90 } }] });
  assert.deepEqual((await c.findOne({ _id: 1 })).grades, [{ g: 80 }, { g: 95, top: true }]);
  await c.updateOne({ _id: 1, arr: 2 }, { $set: { 'arr.$': 20 } });
  assert.deepEqual((await c.findOne({ _id: 1 })).arr, [1, 20, 3, 4]);
  r = await c.replaceOne({ _id: 2 }, { replaced: true });
  assert.equal(r.modifiedCount, 1);
  assert.deepEqual(await c.findOne({ _id: 2 }), { _id: 2, replaced: true });
  await c.updateOne({ _id: 2 }, [{ $set: { total: { $add: [1, 2] } } }]);
  assert.equal((await c.findOne({ _id: 2 })).total, 3);
  await assert.rejects(c.updateOne({ _id: 2 }, { $set: { _id: 9 } }), (e) => e.code === 66);
});

test('a pipeline update keeps _id when its output has none, and may not change it (66)', async (t) => {
  const { db } = await setup(t);
  const c = db.collection('p');
  await c.insertOne({ _id: 1, t: { u: 'x' } });
  await c.updateOne({ _id: 1 }, [{ $replaceRoot: { newRoot: '$t' } }, { $addFields: { foo: 1 } }]);
  const kept = await c.findOne({ _id: 1 });
  assert.deepEqual(kept, { _id: 1, u: 'x', foo: 1 });
  assert.deepEqual(Object.keys(kept), ['_id', 'u', 'foo'], '_id first, as mongod keeps it');
  await assert.rejects(c.updateOne({ _id: 1 }, [{ $set: { _id: 2 } }]),
    (e) => e.code === 66 &&
      e.message === "After applying the update, the (immutable) field '_id' was found to have been altered to _id: 2");
  assert.deepEqual(await c.findOne({ _id: 1 }), { _id: 1, u: 'x', foo: 1 }, 'the refused update changed nothing');
  // The same output through findOneAndUpdate.
  const r = await c.findOneAndUpdate({ _id: 1 }, [{ $replaceWith: { v: 2 } }], { returnDocument: 'after' });
  assert.deepEqual(r, { _id: 1, v: 2 });
});

test('delete and findAndModify report what they did', async (t) => {
  const { db } = await setup(t);
  const c = db.collection('d');
  await c.insertMany([{ _id: 1, k: 'a' }, { _id: 2, k: 'a' }, { _id: 3, k: 'b' }]);
  assert.equal((await c.deleteOne({ k: 'a' })).deletedCount, 1);
  assert.equal((await c.deleteMany({})).deletedCount, 2);
  await c.insertMany([{ _id: 1, v: 1 }, { _id: 2, v: 2 }]);
  const raw = await db.command({ findAndModify: 'd', query: { _id: 1 }, update: { $inc: { v: 10 } }, new: true });
  assert.deepEqual(raw.lastErrorObject, { n: 1, updatedExisting: true });
  assert.deepEqual(raw.value, { _id: 1, v: 11 });
  const up = await db.command({ findAndModify: 'd', query: { _id: 5 }, update: { $set: { v: 5 } }, upsert: true });
  assert.deepEqual(up.lastErrorObject, { n: 1, updatedExisting: false, upserted: 5 });
  assert.equal(up.value, null);
  const del = await c.findOneAndDelete({ _id: 2 });
  assert.deepEqual(del, { _id: 2, v: 2 });
  const sorted = await c.findOneAndUpdate({}, { $set: { first: true } }, { sort: { v: -1 }, returnDocument: 'after' });
  assert.deepEqual(sorted, { _id: 1, v: 11, first: true });
});

test('count, distinct and aggregate answer like mongod', async (t) => {
  const { db } = await setup(t);
  const c = db.collection('a');
  await c.insertMany([{ g: 'x', v: 1, t: ['p', 'q'] }, { g: 'x', v: 2, t: ['q'] }, { g: 'y', v: 3 }]);
  assert.equal((await db.command({ count: 'a', query: { g: 'x' } })).n, 2);
  assert.equal(await c.countDocuments({ v: { $gte: 2 } }), 2);
  assert.equal(await c.estimatedDocumentCount(), 3);
  assert.deepEqual((await c.distinct('g')).sort(), ['x', 'y']);
  assert.deepEqual((await c.distinct('t')).sort(), ['p', 'q']);
  const groups = await c.aggregate([{ $group: { _id: '$g', total: { $sum: '$v' } } }, { $sort: { _id: 1 } }]).toArray();
  assert.deepEqual(groups, [{ _id: 'x', total: 3 }, { _id: 'y', total: 3 }]);
  await db.collection('names').insertMany([{ g: 'x', label: 'ex' }]);
  const joined = await c.aggregate([{ $match: { v: 1 } }, { $lookup: { from: 'names', localField: 'g', foreignField: 'g', as: 'n' } }, { $project: { _id: 0, label: { $first: '$n.label' } } }]).toArray();
  assert.deepEqual(joined, [{ label: 'ex' }]);
});

test('cursors hand out batches through getMore and killCursors', async (t) => {
  const { db } = await setup(t);
  const c = db.collection('many');
  await c.insertMany(Array.from({ length: 250 }, (_, i) => ({ _id: i })));
  const first = await db.command({ find: 'many', batchSize: 100 });
  assert.equal(first.cursor.firstBatch.length, 100);
  assert.equal(first.cursor.ns, 'crud.many');
  assert.ok(first.cursor.id > 0n || first.cursor.id > 0);
  const id = Long.fromValue(first.cursor.id);
  const more = await db.command({ getMore: id, collection: 'many', batchSize: 100 });
  assert.equal(more.cursor.nextBatch.length, 100);
  assert.equal(more.cursor.nextBatch[0]._id, 100);
  const last = await db.command({ getMore: id, collection: 'many' });
  assert.equal(last.cursor.nextBatch.length, 50);
  assert.equal(Number(last.cursor.id), 0);
  const dflt = await db.command({ find: 'many' });
  assert.equal(dflt.cursor.firstBatch.length, 101, 'default first batch is 101');
  const killed = await db.command({ killCursors: 'many', cursors: [Long.fromValue(dflt.cursor.id), Long.fromNumber(12345)] });
  assert.deepEqual(killed.cursorsKilled.map(Number), [Number(dflt.cursor.id)]);
  assert.deepEqual(killed.cursorsNotFound.map(Number), [12345]);
  assert.deepEqual(killed.cursorsAlive, []);
  assert.equal((await c.find().batchSize(7).toArray()).length, 250);
});

test('getMore on an unknown cursor fails with 43 CursorNotFound', async (t) => {
  const { db } = await setup(t);
  await assert.rejects(db.command({ getMore: Long.fromString('4242424242'), collection: 'x' }), (e) => {
    assert.equal(e.code, 43);
    assert.equal(e.codeName, 'CursorNotFound');
    assert.equal(e.message, 'cursor id 4242424242 not found');
    return true;
  });
});

test('duplicate _id is E11000 inside writeErrors', async (t) => {
  const { db } = await setup(t);
  await db.collection('dup').insertOne({ _id: 1 });
  const r = await db.command({ insert: 'dup', documents: [{ _id: 2 }, { _id: 1 }, { _id: 3 }] });
  assert.equal(r.ok, 1);
  assert.equal(r.n, 1, 'ordered insert stops at the first error');
  assert.equal(r.writeErrors.length, 1);
  const we = r.writeErrors[0];
  assert.equal(we.index, 1);
  assert.equal(we.code, 11000);
  assert.equal(we.errmsg, 'E11000 duplicate key error collection: crud.dup index: _id_ dup key: { _id: 1 }');
  assert.deepEqual(we.keyPattern, { _id: 1 });
  assert.deepEqual(we.keyValue, { _id: 1 });
  const unordered = await db.command({ insert: 'dup', documents: [{ _id: 1 }, { _id: 4 }], ordered: false });
  assert.equal(unordered.n, 1);
  await assert.rejects(db.collection('dup').insertOne({ _id: 'x' }).then(() => db.collection('dup').insertOne({ _id: 'x' })), (e) => e.code === 11000);
});

test('unique indexes are enforced and listed', async (t) => {
  const { db } = await setup(t);
  const c = db.collection('ix');
  const name = await c.createIndex({ email: 1 }, { unique: true });
  assert.equal(name, 'email_1');
  const raw = await db.command({ createIndexes: 'ix', indexes: [{ key: { email: 1 }, name: 'email_1', unique: true }] });
  assert.equal(raw.note, 'all indexes already exist');
  await c.insertOne({ email: 'a@x' });
  await assert.rejects(c.insertOne({ email: 'a@x' }), (e) => {
    assert.equal(e.code, 11000);
    assert.match(e.message, /index: email_1 dup key: \{ email: "a@x" \}/);
    return true;
  });
  await c.insertOne({ email: 'b@x' });
  await assert.rejects(c.updateOne({ email: 'b@x' }, { $set: { email: 'a@x' } }), (e) => e.code === 11000);
  const indexes = await c.listIndexes().toArray();
  assert.deepEqual(indexes.map((i) => i.name), ['_id_', 'email_1']);
  assert.equal(indexes[1].unique, true);
  await c.dropIndex('email_1');
  await c.insertOne({ email: 'a@x' });
});

test('create, collMod, listCollections, drop and dropDatabase manage the catalog', async (t) => {
  const { db, client } = await setup(t);
  await db.createCollection('pp', { changeStreamPreAndPostImages: { enabled: true } });
  await assert.rejects(db.command({ create: 'pp', capped: true, size: 1000 }), (e) => e.code === 48 && e.codeName === 'NamespaceExists');
  const colls = await db.listCollections().toArray();
  const pp = colls.find((c) => c.name === 'pp');
  assert.equal(pp.type, 'collection');
  assert.deepEqual(pp.options, { changeStreamPreAndPostImages: { enabled: true } });
  assert.equal(pp.info.uuid.sub_type, 4);
  assert.deepEqual(pp.idIndex, { v: 2, key: { _id: 1 }, name: '_id_' });
  await db.command({ collMod: 'pp', changeStreamPreAndPostImages: { enabled: false } });
  assert.deepEqual((await db.listCollections({ name: 'pp' }).toArray())[0].options, {});
  const names = (await client.db('admin').admin().listDatabases()).databases.map((d) => d.name);
  assert.ok(names.includes('crud'));
  await db.collection('other').insertOne({});
  const dropped = await db.command({ drop: 'other' });
  assert.equal(dropped.ns, 'crud.other');
  assert.equal(dropped.nIndexesWas, 1);
  assert.equal((await db.command({ drop: 'never' })).ok, 1);
  await client.db('admin').command({ renameCollection: 'crud.pp', to: 'crud.qq' });
  assert.deepEqual((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name), ['qq']);
  assert.equal((await db.dropDatabase()), true);
  assert.deepEqual(await db.listCollections().toArray(), []);
});

test('an unknown command fails with 59 CommandNotFound', async (t) => {
  const { db } = await setup(t);
  await assert.rejects(db.command({ foo: 1 }), (e) => {
    assert.equal(e.code, 59);
    assert.equal(e.codeName, 'CommandNotFound');
    assert.equal(e.message, "no such command: 'foo'");
    assert.ok(e.errorResponse.operationTime, 'errors carry operationTime too');
    assert.ok(e.errorResponse.$clusterTime);
    return true;
  });
});

test('many connections are served at once', async (t) => {
  const { s } = await setup(t);
  const clients = await Promise.all(Array.from({ length: 8 }, () => new MongoClient(s.uri, { maxPoolSize: 4 }).connect()));
  t.after(() => Promise.all(clients.map((c) => c.close())));
  await Promise.all(clients.map((c, i) => Promise.all(Array.from({ length: 20 }, (_, j) => c.db('m').collection('c').insertOne({ i, j })))));
  assert.equal(await clients[0].db('m').collection('c').countDocuments(), 160);
});

test('ObjectId, Date, Long and nested values survive a round trip', async (t) => {
  const { db } = await setup(t);
  const c = db.collection('types');
  const oid = new ObjectId();
  const when = new Date('2024-01-02T03:04:05.678Z');
  await c.insertOne({ _id: oid, when, big: Long.fromString('9007199254740993'), deep: { a: [{ b: null }] } });
  const back = await c.findOne({ _id: oid }, { promoteLongs: false });
  assert.ok(back._id.equals(oid));
  assert.equal(back.when.getTime(), when.getTime());
  assert.equal(back.big.toString(), '9007199254740993');
  assert.deepEqual(back.deep, { a: [{ b: null }] });
  assert.equal((await c.find({ when: { $gte: new Date('2024-01-01') } }).toArray()).length, 1);
});

test('aggregation and projection never change the stored documents', async (t) => {
  const { db } = await setup(t);
  const c = db.collection('pure');
  await c.insertOne({ _id: 1, a: { b: 1 } });
  await c.aggregate([{ $set: { 'a.c': 2 } }, { $unset: 'a.b' }]).toArray();
  await c.find({}, { projection: { 'a.b': 0 } }).toArray();
  await c.aggregate([{ $lookup: { from: 'pure', pipeline: [{ $set: { 'a.z': 1 } }], as: 'j' } }]).toArray();
  assert.deepEqual(await c.findOne({ _id: 1 }), { _id: 1, a: { b: 1 } });
});

test('projections keep the stored field order with _id first', async (t) => {
  const { db } = await setup(t);
  const c = db.collection('order');
  await c.insertOne({ _id: 1, a: 1, b: { c: 1, d: 2 }, e: 3 });
  const doc = await c.findOne({}, { projection: { e: 1, a: 1, 'b.d': 1 } });
  assert.deepEqual(Object.keys(doc), ['_id', 'a', 'b', 'e']);
  const [agg] = await c.aggregate([{ $project: { e: 1, a: 1 } }]).toArray();
  assert.equal(Object.keys(agg)[0], '_id', 'aggregation keeps _id first (other fields: see README)');
});

test('$project computes _id from an expression, as mongod does', async (t) => {
  const { db } = await setup(t);
  const c = db.collection('projected');
  await c.insertMany([{ _id: 1, customer: 'ann', total: 5 }, { _id: 2, customer: 'bob', total: 7 }]);
  assert.deepEqual(await c.aggregate([{ $project: { _id: '$customer', total: 1 } }]).toArray(), [
    { _id: 'ann', total: 5 }, { _id: 'bob', total: 7 },
  ]);
  assert.deepEqual(await c.aggregate([{ $match: { _id: 1 } }, { $project: { _id: { who: '$customer' }, doubled: { $multiply: ['$total', 2] } } }]).toArray(), [
    { _id: { who: 'ann' }, doubled: 10 },
  ]);
  assert.deepEqual(await c.aggregate([{ $match: { _id: 1 } }, { $project: { _id: 0, total: 1 } }]).toArray(), [{ total: 5 }]);
});
