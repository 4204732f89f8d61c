// SPDX-License-Identifier: Apache-2.0
// Change events built from oplog records: shapes, field order, images,
// transactions, invalidation, stream scopes. Module-level tests (no server).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Binary, Long } = require('bson');
const { makeWorld, rejectsWithCode } = require('./changestreams-helpers');

const keys = (o) => Object.keys(o);

test('insert, update, replace and delete events have MongoDB field order', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  w.insert('app', 'c', { _id: 1, a: 1 });
  w.update('app', 'c', 1, { a: 2 });
  w.replace('app', 'c', 1, { _id: 1, b: 1 });
  w.remove('app', 'c', 1);
  const { nextBatch } = await w.more(cur);
  assert.deepEqual(nextBatch.map((e) => e.operationType), ['insert', 'update', 'replace', 'delete']);
  const [ins, upd, rep, del] = nextBatch;
  assert.deepEqual(keys(ins), ['_id', 'operationType', 'clusterTime', 'wallTime', 'fullDocument', 'ns', 'documentKey']);
  assert.deepEqual(keys(upd), ['_id', 'operationType', 'clusterTime', 'wallTime', 'ns', 'documentKey', 'updateDescription']);
  assert.deepEqual(keys(rep), ['_id', 'operationType', 'clusterTime', 'wallTime', 'fullDocument', 'ns', 'documentKey']);
  assert.deepEqual(keys(del), ['_id', 'operationType', 'clusterTime', 'wallTime', 'ns', 'documentKey']);
  assert.deepEqual(ins.fullDocument, { _id: 1, a: 1 });
  assert.deepEqual(ins.ns, { db: 'app', coll: 'c' });
  assert.deepEqual(upd.updateDescription, { updatedFields: { a: 2 }, removedFields: [], truncatedArrays: [] });
  assert.deepEqual(keys(upd.updateDescription), ['updatedFields', 'removedFields', 'truncatedArrays']);
  assert.deepEqual(rep.fullDocument, { _id: 1, b: 1 });
  assert.deepEqual(del.documentKey, { _id: 1 });
  assert.ok(ins.wallTime instanceof Date);
  assert.equal(ins.clusterTime._bsontype, 'Timestamp');
  assert.match(ins._id._data, /^82[0-9A-F]+$/);
  // Each write outside a transaction has its own, increasing clusterTime and token.
  for (let k = 1; k < nextBatch.length; k++) {
    assert.ok(nextBatch[k - 1].clusterTime.lessThan(nextBatch[k].clusterTime));
    assert.ok(nextBatch[k - 1]._id._data < nextBatch[k]._id._data);
  }
});

test('events of one transaction share clusterTime and carry txnNumber and lsid first', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  const lsid = { id: new Binary(Buffer.alloc(16, 7), 4) };
  const ts = w.oplog.append([
    { op: 'insert', ns: { db: 'app', coll: 'c' }, documentKey: { _id: 1 }, fullDocument: { _id: 1 } },
    { op: 'insert', ns: { db: 'app', coll: 'c' }, documentKey: { _id: 2 }, fullDocument: { _id: 2 } },
    { op: 'delete', ns: { db: 'app', coll: 'c' }, documentKey: { _id: 1 } },
  ], { lsid, txnNumber: Long.fromNumber(4) });
  w.insert('app', 'c', { _id: 3 });
  const { nextBatch } = await w.more(cur);
  assert.equal(nextBatch.length, 4);
  const txnEvents = nextBatch.slice(0, 3);
  for (const e of txnEvents) {
    assert.deepEqual(keys(e).slice(0, 3), ['txnNumber', 'lsid', '_id']);
    assert.ok(e.clusterTime.equals(ts));
    assert.ok(e.txnNumber.equals(Long.fromNumber(4)));
    assert.ok(Buffer.from(e.lsid.id.buffer).equals(Buffer.alloc(16, 7)));
    assert.equal(e.lsid.uid.length(), 32, 'the oplog lsid carries the user digest');
  }
  assert.ok(txnEvents[0]._id._data < txnEvents[1]._id._data && txnEvents[1]._id._data < txnEvents[2]._id._data);
  assert.equal(nextBatch[3].txnNumber, undefined);
  assert.ok(nextBatch[3].clusterTime.greaterThan(ts));
});

test('fullDocument: updateLookup reads the current document, null once it is gone', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c', { fullDocument: 'updateLookup' });
  w.insert('app', 'c', { _id: 1, a: 1 });
  w.update('app', 'c', 1, { a: 2 });
  w.update('app', 'c', 1, { a: 3 });
  let { nextBatch } = await w.more(cur);
  // updateLookup shows the document as it is when the event is read.
  assert.deepEqual(nextBatch[1].fullDocument, { _id: 1, a: 3 });
  assert.deepEqual(keys(nextBatch[1]), ['_id', 'operationType', 'clusterTime', 'wallTime', 'fullDocument', 'ns', 'documentKey', 'updateDescription']);
  w.update('app', 'c', 1, { a: 4 });
  w.remove('app', 'c', 1);
  ({ nextBatch } = await w.more(cur));
  assert.equal(nextBatch[0].fullDocument, null);
});

test('post-images whenAvailable/required depend on changeStreamPreAndPostImages', async () => {
  const w = makeWorld();
  w.store.coll('app', 'on', { changeStreamPreAndPostImages: { enabled: true } });
  const when = await w.open('app', null, { fullDocument: 'whenAvailable' });
  const req = await w.open('app', null, { fullDocument: 'required' });
  w.insert('app', 'on', { _id: 1, a: 1 });
  w.update('app', 'on', 1, { a: 2 });
  w.insert('app', 'off', { _id: 1, a: 1 });
  w.update('app', 'off', 1, { a: 2 });
  const { nextBatch } = await w.more(when);
  assert.deepEqual(nextBatch[1].fullDocument, { _id: 1, a: 2 });
  assert.equal(nextBatch[3].fullDocument, null);
  const err = await rejectsWithCode(w.more(req), 47);
  assert.equal(err.codeName, 'NoMatchingDocument');
  assert.match(err.message, /^Executor error during getMore :: caused by :: Change stream was configured to require a post-image for all update events, but the post-image was not found for event: \{operationType: "update", ns: \{db: "app", coll: "off"\}, clusterTime: Timestamp\(\d+, \d+\)\}$/);
  assert.equal(w.cs.ownsCursor(req.id), false, 'the failed cursor is gone');
});

test('pre-images: off omits, whenAvailable gives image or null, required fails at the event', async () => {
  const w = makeWorld();
  w.store.coll('app', 'on', { changeStreamPreAndPostImages: { enabled: true } });
  const off = await w.open('app', 'on');
  const when = await w.open('app', null, { fullDocumentBeforeChange: 'whenAvailable' });
  const req = await w.open('app', 'off', { fullDocumentBeforeChange: 'required' });
  w.insert('app', 'on', { _id: 1, a: 1 });
  w.update('app', 'on', 1, { a: 2 });
  w.remove('app', 'on', 1);
  w.insert('app', 'off', { _id: 1, a: 1 });
  w.remove('app', 'off', 1);
  assert.ok((await w.more(off)).nextBatch.every((e) => !('fullDocumentBeforeChange' in e)));
  const { nextBatch } = await w.more(when);
  assert.equal('fullDocumentBeforeChange' in nextBatch[0], false, 'inserts have no pre-image field');
  assert.deepEqual(nextBatch[1].fullDocumentBeforeChange, { _id: 1, a: 1 });
  assert.equal(keys(nextBatch[1]).at(-1), 'fullDocumentBeforeChange');
  assert.deepEqual(nextBatch[2].fullDocumentBeforeChange, { _id: 1, a: 2 });
  assert.equal(nextBatch[4].fullDocumentBeforeChange, null);
  // The insert comes through; the delete without a pre-image fails the getMore.
  const err = await rejectsWithCode(w.more(req, { batchSize: 1 }).then(() => w.more(req)), 47,
    'Change stream was configured to require a pre-image for all update, delete and replace events, but the pre-image was not found for event: {operationType: "delete", ns: {db: "app", coll: "off"}');
  assert.equal(err.codeName, 'NoMatchingDocument');
});

test('dropping the collection of a collection stream gives drop, then invalidate, and closes it', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  const db = await w.open('app', null);
  w.insert('app', 'c', { _id: 1 });
  w.drop('app', 'c');
  w.insert('app', 'c', { _id: 2 });
  const r = await w.more(cur);
  assert.deepEqual(r.nextBatch.map((e) => e.operationType), ['insert', 'drop', 'invalidate']);
  const [, drop, inv] = r.nextBatch;
  assert.deepEqual(keys(drop), ['_id', 'operationType', 'clusterTime', 'wallTime', 'ns']);
  assert.deepEqual(keys(inv), ['_id', 'operationType', 'clusterTime', 'wallTime']);
  assert.ok(inv.clusterTime.equals(drop.clusterTime));
  assert.ok(drop._id._data < inv._id._data);
  assert.deepEqual(r.postBatchResumeToken, inv._id);
  assert.ok(r.id.isZero(), 'cursor closed');
  assert.equal(w.cs.ownsCursor(cur.id), false);
  // A database stream sees the drop but is not invalidated.
  const d = await w.more(db);
  assert.deepEqual(d.nextBatch.map((e) => e.operationType), ['insert', 'drop', 'insert']);
  assert.equal(d.id.isZero(), false);
});

test('an invalidate that does not fit the batch comes first in the next one', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  w.drop('app', 'c');
  const a = await w.more(cur, { batchSize: 1 });
  assert.deepEqual(a.nextBatch.map((e) => e.operationType), ['drop']);
  assert.equal(a.id.isZero(), false);
  const b = await w.more(cur);
  assert.deepEqual(b.nextBatch.map((e) => e.operationType), ['invalidate']);
  assert.ok(b.id.isZero());
});

test('rename invalidates collection streams on both sides and shows `to` first', async () => {
  const w = makeWorld();
  const src = await w.open('app', 'a');
  const dst = await w.open('app', 'b');
  const cluster = await w.open('admin', null, { allChangesForCluster: true });
  w.insert('app', 'a', { _id: 1 });
  w.rename('app', 'a', 'app', 'b');
  for (const cur of [src, dst]) {
    const r = await w.more(cur);
    const ops = r.nextBatch.map((e) => e.operationType);
    assert.deepEqual(ops.slice(-2), ['rename', 'invalidate']);
    const ren = r.nextBatch.at(-2);
    assert.deepEqual(keys(ren), ['to', '_id', 'operationType', 'clusterTime', 'wallTime', 'ns']);
    assert.deepEqual(ren.ns, { db: 'app', coll: 'a' });
    assert.deepEqual(ren.to, { db: 'app', coll: 'b' });
    assert.ok(r.id.isZero());
  }
  const c = await w.more(cluster);
  assert.deepEqual(c.nextBatch.map((e) => e.operationType), ['insert', 'rename']);
});

test('dropDatabase: collection drops, then dropDatabase and invalidate on a database stream', async () => {
  const w = makeWorld();
  w.insert('app', 'x', { _id: 1 });
  const db = await w.open('app', null);
  const cluster = await w.open('admin', null, { allChangesForCluster: true });
  w.dropDatabase('app');
  const r = await w.more(db);
  assert.deepEqual(r.nextBatch.map((e) => e.operationType), ['drop', 'dropDatabase', 'invalidate']);
  assert.deepEqual(r.nextBatch[1].ns, { db: 'app' });
  assert.deepEqual(keys(r.nextBatch[1]), ['_id', 'operationType', 'clusterTime', 'wallTime', 'ns']);
  assert.ok(r.id.isZero());
  const c = await w.more(cluster);
  assert.deepEqual(c.nextBatch.map((e) => e.operationType), ['drop', 'dropDatabase']);
  assert.equal(c.id.isZero(), false);
});

test('stream scopes: collection, database (no system.*), cluster (no admin/config/local)', async () => {
  const w = makeWorld();
  const coll = await w.open('app', 'c');
  const db = await w.open('app', null);
  const cluster = await w.open('admin', null, { allChangesForCluster: true });
  const sys = await w.open('app', null, { showSystemEvents: true });
  w.insert('app', 'c', { _id: 1 });
  w.insert('app', 'd', { _id: 2 });
  w.insert('other', 'c', { _id: 3 });
  w.insert('app', 'system.js', { _id: 4 });
  w.insert('admin', 'c', { _id: 5 });
  w.insert('config', 'c', { _id: 6 });
  w.insert('local', 'c', { _id: 7 });
  const ids = async (cur) => (await w.more(cur)).nextBatch.map((e) => e.documentKey._id);
  assert.deepEqual(await ids(coll), [1]);
  assert.deepEqual(await ids(db), [1, 2]);
  assert.deepEqual(await ids(cluster), [1, 2, 3]);
  assert.deepEqual(await ids(sys), [1, 2, 4]);
  assert.equal(coll.ns, 'app.c');
  assert.equal(db.ns, 'app.$cmd.aggregate');
  assert.equal(cluster.ns, 'admin.$cmd.aggregate');
});

test('showExpandedEvents adds collectionUUID and disambiguatedPaths', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c', { showExpandedEvents: true });
  w.insert('app', 'c', { _id: 1, arr: [1, 2], obj: { 0: 'x' } });
  w.oplog.append([{ op: 'update', ns: { db: 'app', coll: 'c' }, documentKey: { _id: 1 },
    fullDocument: { _id: 1, arr: [1, 5], obj: { 0: 'y' } },
    updateDescription: { updatedFields: { 'arr.1': 5, 'obj.0': 'y' }, removedFields: [], truncatedArrays: [] } }]);
  const { nextBatch } = await w.more(cur);
  const [ins, upd] = nextBatch;
  assert.deepEqual(keys(ins).slice(0, 5), ['_id', 'operationType', 'clusterTime', 'collectionUUID', 'wallTime']);
  assert.ok(Buffer.from(ins.collectionUUID.buffer).equals(Buffer.from(w.store.coll('app', 'c').uuid.buffer)));
  assert.deepEqual(upd.updateDescription.disambiguatedPaths, { 'obj.0': ['obj', '0'] });
  const plain = await w.open('app', 'c');
  w.update('app', 'c', 1, { z: 1 });
  const p = (await w.more(plain)).nextBatch[0];
  assert.equal('collectionUUID' in p, false);
  assert.equal('disambiguatedPaths' in p.updateDescription, false);
});
