// SPDX-License-Identifier: Apache-2.0
// Change-stream cursors: resuming, history lost, postBatchResumeToken,
// awaitData, batch sizes, user stages, command errors. Module-level tests.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Timestamp } = require('bson');
const { makeWorld, fakeConn, rejectsWithCode } = require('./changestreams-helpers');

const ops = (batch) => batch.map((e) => e.operationType);
const ids = (batch) => batch.map((e) => e.documentKey && e.documentKey._id);

test('resumeAfter an event token returns exactly the events after it', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  for (let k = 1; k <= 5; k++) w.insert('app', 'c', { _id: k });
  const { nextBatch } = await w.more(cur);
  const resumed = await w.open('app', 'c', { resumeAfter: nextBatch[1]._id });
  assert.deepEqual(ids(resumed.firstBatch), [3, 4, 5]);
  const started = await w.open('app', 'c', { startAfter: nextBatch[4]._id });
  assert.deepEqual(started.firstBatch, []);
  assert.deepEqual(started.postBatchResumeToken, nextBatch[4]._id);
});

test('resuming inside a transaction continues at the next txnOpIndex', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  w.oplog.append([1, 2, 3].map((k) => ({ op: 'insert', ns: { db: 'app', coll: 'c' }, documentKey: { _id: k }, fullDocument: { _id: k } })),
    { lsid: { id: 'x' }, txnNumber: 1 });
  const { nextBatch } = await w.more(cur);
  const resumed = await w.open('app', 'c', { resumeAfter: nextBatch[0]._id });
  assert.deepEqual(ids(resumed.firstBatch), [2, 3]);
});

test('startAtOperationTime includes events at that time', async () => {
  const w = makeWorld();
  w.insert('app', 'c', { _id: 1 });
  const ts = w.insert('app', 'c', { _id: 2 });
  w.insert('app', 'c', { _id: 3 });
  const cur = await w.open('app', 'c', { startAtOperationTime: ts });
  assert.deepEqual(ids(cur.firstBatch), [2, 3]);
});

test('resumeAfter an invalidate fails with 260; startAfter it continues past the drop', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  w.insert('app', 'c', { _id: 1 });
  w.drop('app', 'c');
  w.insert('app', 'c', { _id: 2 });
  const { nextBatch } = await w.more(cur);
  const inv = nextBatch.at(-1);
  assert.equal(inv.operationType, 'invalidate');
  await rejectsWithCode(w.open('app', 'c', { resumeAfter: inv._id }), 260,
    "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification");
  const after = await w.open('app', 'c', { startAfter: inv._id });
  assert.deepEqual(ops(after.firstBatch), ['insert']);
  assert.deepEqual(ids(after.firstBatch), [2]);
  // Resuming after the drop event itself re-delivers the invalidate.
  const again = await w.open('app', 'c', { resumeAfter: nextBatch[1]._id });
  assert.deepEqual(ops(again.firstBatch), ['invalidate']);
  assert.ok(again.id.isZero());
});

test('a token whose event is not in this stream fails with 280', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'other');
  w.insert('app', 'other', { _id: 1 });
  w.insert('app', 'c', { _id: 2 });
  const tok = (await w.more(cur)).nextBatch[0]._id;
  const err = await rejectsWithCode(w.open('app', 'c', { resumeAfter: tok }), 280,
    `cannot resume stream; the resume token was not found. {_data: "${tok._data}"}`);
  assert.equal(err.codeName, 'ChangeStreamFatalError');
  assert.match(err.message, /^PlanExecutor error during aggregation :: caused by :: /);
});

test('history lost: resuming from a token or time older than the oplog fails with 286', async () => {
  const w = makeWorld({ maxEvents: 3 });
  const firstTs = w.clock.now();
  const cur = await w.open('app', 'c');
  w.insert('app', 'c', { _id: 1 });
  const first = (await w.more(cur)).nextBatch[0]._id;
  for (let k = 2; k <= 3; k++) w.insert('app', 'c', { _id: k });
  // Three records kept: the first event is still there.
  assert.deepEqual(ids((await w.open('app', 'c', { resumeAfter: first })).firstBatch), [2, 3]);
  w.insert('app', 'c', { _id: 4 });
  const err = await rejectsWithCode(w.open('app', 'c', { resumeAfter: first }), 286,
    'Resume of change stream was not possible, as the resume point may no longer be in the oplog.');
  assert.equal(err.codeName, 'ChangeStreamHistoryLost');
  await rejectsWithCode(w.open('app', 'c', { startAtOperationTime: firstTs }), 286);
  await rejectsWithCode(w.open('app', 'c', { startAtOperationTime: new Timestamp({ t: 1, i: 1 }) }), 286);
  // An open cursor that falls behind the oplog fails the same way.
  const slow = await w.open('app', 'c');
  for (let k = 5; k <= 9; k++) w.insert('app', 'c', { _id: k });
  await rejectsWithCode(w.more(slow), 286);
});

test('a token from before this stand-in started is history lost', async () => {
  const a = makeWorld();
  const cur = await a.open('app', 'c');
  a.insert('app', 'c', { _id: 1 });
  const tok = (await a.more(cur)).nextBatch[0]._id;
  await new Promise((r) => setTimeout(r, 1100)); // the next stand-in's clock is a second later
  const b = makeWorld();
  await rejectsWithCode(b.open('app', 'c', { resumeAfter: tok }), 286);
});

test('postBatchResumeToken: initial high-water mark, last event, then advancing while empty', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  const initial = cur.postBatchResumeToken;
  assert.match(initial._data, /^82[0-9A-F]{16}2B0429296E1404$/);
  w.insert('app', 'c', { _id: 1 });
  const a = await w.more(cur);
  assert.deepEqual(a.postBatchResumeToken, a.nextBatch[0]._id);
  const empty1 = await w.more(cur, { maxTimeMS: 10 });
  assert.deepEqual(empty1.nextBatch, []);
  assert.deepEqual(empty1.postBatchResumeToken, a.nextBatch[0]._id, 'nothing new: unchanged');
  w.insert('app', 'elsewhere', { _id: 1 });
  const empty2 = await w.more(cur, { maxTimeMS: 10 });
  assert.deepEqual(empty2.nextBatch, []);
  assert.ok(empty2.postBatchResumeToken._data > a.nextBatch[0]._id._data, 'advanced past other writes');
  assert.match(empty2.postBatchResumeToken._data, /2B0429296E1404$/);
  // Resuming from that high-water mark skips what was seen, keeps what follows.
  w.insert('app', 'c', { _id: 2 });
  const resumed = await w.open('app', 'c', { resumeAfter: empty2.postBatchResumeToken });
  assert.deepEqual(ids(resumed.firstBatch), [2]);
});

test('postBatchResumeToken of a first batch with events is the last event', async () => {
  const w = makeWorld();
  const ts = w.insert('app', 'c', { _id: 1 });
  w.insert('app', 'c', { _id: 2 });
  const cur = await w.open('app', 'c', { startAtOperationTime: ts }, { batchSize: 1 });
  assert.deepEqual(ids(cur.firstBatch), [1]);
  assert.deepEqual(cur.postBatchResumeToken, cur.firstBatch[0]._id);
  const zero = await w.open('app', 'c', { startAtOperationTime: ts }, { batchSize: 0 });
  assert.deepEqual(zero.firstBatch, []);
  const rest = await w.more(zero, { batchSize: 5 });
  assert.deepEqual(ids(rest.nextBatch), [1, 2]);
});

test('getMore waits for an event and answers as soon as one is written', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  const started = Date.now();
  setTimeout(() => w.insert('app', 'c', { _id: 1 }), 100);
  const r = await w.more(cur, { maxTimeMS: 5000 });
  const took = Date.now() - started;
  assert.deepEqual(ids(r.nextBatch), [1]);
  // Answered by the write, before maxTimeMS ran out (bounds are loose on purpose:
  // shared machines are slow at times; speed belongs to the benchmarks).
  assert.ok(took >= 90 && took < 5000, `answered after ${took} ms`);
});

test('getMore without events answers empty after maxTimeMS (1 s by default)', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  let started = Date.now();
  const r = await w.more(cur, { maxTimeMS: 200 });
  let took = Date.now() - started;
  assert.deepEqual(r.nextBatch, []);
  assert.ok(took >= 190 && took < 3000, `waited ${took} ms`);
  started = Date.now();
  await w.cs.getMore('app', { getMore: cur.id, collection: 'c' }, w.conn);
  took = Date.now() - started;
  assert.ok(took >= 950 && took < 5000, `default wait ${took} ms`);
});

test('writes that the stream filters out do not end the wait early', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c', {}, { stages: [{ $match: { 'fullDocument.keep': true } }] });
  const started = Date.now();
  setTimeout(() => w.insert('app', 'c', { _id: 1 }), 20);
  setTimeout(() => w.insert('app', 'c', { _id: 2, keep: true }), 150);
  const r = await w.more(cur, { maxTimeMS: 3000 });
  assert.deepEqual(ids(r.nextBatch), [2]);
  assert.ok(Date.now() - started >= 140);
});

test('a waiting getMore stops when its connection closes', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  const conn = fakeConn(2);
  const started = Date.now();
  setTimeout(() => conn.close(), 50);
  await w.more(cur, { maxTimeMS: 5000, connection: conn });
  assert.ok(Date.now() - started < 5000, 'stopped before maxTimeMS');
  assert.ok(w.cs.ownsCursor(cur.id), 'the cursor outlives the connection, as on a server');
});

test('batchSize is honoured by aggregate and getMore', async () => {
  const w = makeWorld();
  const ts = w.clock.now();
  for (let k = 1; k <= 10; k++) w.insert('app', 'c', { _id: k });
  const cur = await w.open('app', 'c', { startAtOperationTime: ts }, { batchSize: 3 });
  assert.deepEqual(ids(cur.firstBatch), [1, 2, 3]);
  assert.deepEqual(ids((await w.more(cur, { batchSize: 4 })).nextBatch), [4, 5, 6, 7]);
  assert.deepEqual(ids((await w.more(cur)).nextBatch), [8, 9, 10]);
  const dflt = await w.open('app', 'c', { startAtOperationTime: ts });
  assert.equal(dflt.firstBatch.length, 10);
});

test('$match and $project apply to events; invalidate passes them by', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c', {}, {
    stages: [{ $match: { operationType: { $in: ['insert', 'drop'] }, 'fullDocument.n': { $ne: 2 } } },
      { $project: { operationType: 1, 'fullDocument.n': 1 } }],
  });
  w.insert('app', 'c', { _id: 1, n: 1, other: 'x' });
  w.insert('app', 'c', { _id: 2, n: 2 });
  w.update('app', 'c', 1, { n: 5 });
  w.drop('app', 'c');
  const r = await w.more(cur);
  assert.deepEqual(ops(r.nextBatch), ['insert', 'drop', 'invalidate']);
  assert.deepEqual(Object.keys(r.nextBatch[0]), ['_id', 'operationType', 'fullDocument']);
  assert.deepEqual(r.nextBatch[0].fullDocument, { n: 1 });
  assert.deepEqual(Object.keys(r.nextBatch[2]), ['_id', 'operationType', 'clusterTime', 'wallTime']);
});

test('$match compares 64-bit integers by value', async () => {
  const { Long } = require('bson');
  const w = makeWorld();
  const cur = await w.open('app', 'c', {}, { stages: [{ $match: { 'fullDocument.n': { $gt: 10 } } }] });
  w.insert('app', 'c', { _id: 1, n: Long.fromNumber(5) });
  w.insert('app', 'c', { _id: 2, n: Long.fromNumber(50) });
  assert.deepEqual(ids((await w.more(cur)).nextBatch), [2]);
});

test('a pipeline that changes _id fails the stream with 280', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c', {}, { stages: [{ $project: { _id: 0 } }] });
  w.insert('app', 'c', { _id: 1 });
  await rejectsWithCode(w.more(cur), 280, 'Encountered an event whose _id field, which contains the resume token, was modified by the pipeline.');
});

test('stages other than MongoDB allows are refused', async () => {
  const w = makeWorld();
  await rejectsWithCode(w.open('app', 'c', {}, { stages: [{ $group: { _id: null } }] }), 20,
    '$group is not permitted in a $changeStream pipeline');
  await rejectsWithCode(w.open('app', 'c', {}, { stages: [{ $bogus: {} }] }), 40324);
  await rejectsWithCode(w.open('app', 'c', {}, { stages: [{ $changeStream: {} }] }), 40602);
  await rejectsWithCode(w.open('app', 'c', {}, { stages: [{ $match: { a: { $nope: 1 } } }] }), 2);
});

test('$changeStream option errors have the server codes and messages', async () => {
  const w = makeWorld();
  const tok = w.cs && (await w.open('app', 'c')).postBatchResumeToken;
  const cases = [
    [{ bogus: 1 }, 40415, "BSON field '$changeStream.bogus' is an unknown field."],
    [{ fullDocument: 'sometimes' }, 2, "Enumeration value 'sometimes' for field '$changeStream.fullDocument' is not a valid value."],
    [{ fullDocumentBeforeChange: 1 }, 14, "BSON field '$changeStream.fullDocumentBeforeChange' is the wrong type 'int', expected type 'string'"],
    [{ resumeAfter: 'x' }, 14, "BSON field '$changeStream.resumeAfter' is the wrong type 'string', expected type 'object'"],
    [{ startAtOperationTime: 5 }, 14, "expected type 'timestamp'"],
    [{ resumeAfter: tok, startAfter: tok }, 50865, "Do not specify both 'resumeAfter' and 'startAfter' in a $changeStream stage"],
    [{ resumeAfter: tok, startAtOperationTime: new Timestamp({ t: 1, i: 1 }) }, 40674, 'Only one type of resume option is allowed, but multiple were found'],
    [{ resumeAfter: { _data: 'xyz' } }, 9, 'resume token string was not a valid hex string'],
    [{ allChangesForCluster: 'yes' }, 14, "expected type 'bool'"],
  ];
  for (const [opts, code, msg] of cases) await rejectsWithCode(w.open('app', 'c', opts), code, msg);
  await rejectsWithCode(w.cs.aggregate('app', { aggregate: 'c', pipeline: [{ $changeStream: 1 }], cursor: {} }, w.conn),
    50808, '$changeStream stage expects a document as argument');
  await rejectsWithCode(w.cs.aggregate('app', { aggregate: 'c', pipeline: [{ $changeStream: {} }] }, w.conn), 9,
    "The 'cursor' option is required");
});

test('namespaces: internal databases refused, cluster streams need admin and allChangesForCluster', async () => {
  const w = makeWorld();
  await rejectsWithCode(w.open('admin', null), 73, '$changeStream may not be opened on the internal admin database');
  await rejectsWithCode(w.open('config', null), 73, '$changeStream may not be opened on the internal config database');
  await rejectsWithCode(w.open('local', 'oplog.rs'), 73, '$changeStream may not be opened on the internal local database');
  await rejectsWithCode(w.open('admin', 'c'), 73);
  await rejectsWithCode(w.open('app', null, { allChangesForCluster: true }), 72,
    "A $changeStream with 'allChangesForCluster:true' may only be opened on the 'admin' database, and with no collection name; found app.$cmd.aggregate");
  await rejectsWithCode(w.open('app', 'system.views'), 73, '$changeStream may not be opened on the internal app.system.views collection');
});

test('standalone mode refuses $changeStream with 40573', async () => {
  const w = makeWorld({ standalone: true });
  const err = await rejectsWithCode(w.open('app', 'c'), 40573, 'The $changeStream stage is only supported on replica sets');
  assert.equal(err.codeName, 'Location40573');
});

test('getMore checks the namespace; killed cursors are gone', async () => {
  const w = makeWorld();
  const cur = await w.open('app', 'c');
  await rejectsWithCode(w.cs.getMore('app', { getMore: cur.id, collection: 'd' }, w.conn), 13,
    "Requested getMore on namespace 'app.d', but cursor belongs to a different namespace app.c");
  assert.ok(w.cs.ownsCursor(cur.id));
  assert.ok(w.cs.ownsCursor(cur.id.toString()), 'ids compare by value');
  assert.equal(w.cs.killCursor(cur.id), true);
  assert.equal(w.cs.ownsCursor(cur.id), false);
  assert.equal(w.cs.killCursor(cur.id), false);
  await rejectsWithCode(w.more(cur), 43);
});

test('cursor ids are random positive 63-bit Longs', async () => {
  const w = makeWorld();
  const a = await w.open('app', 'c');
  const b = await w.open('app', 'c');
  for (const c of [a, b]) {
    assert.equal(c.id._bsontype, 'Long');
    assert.ok(c.id.greaterThan(0));
  }
  assert.ok(!a.id.equals(b.id));
});

// Speed is measured by the benchmarks, never asserted here (shared, noisy machines).
test('5,000 inserts with a stream open all arrive, in order', async () => {
  const w = makeWorld({ maxEvents: 100000 });
  const cur = await w.open('app', 'c', {}, { stages: [{ $match: { operationType: 'insert' } }] });
  const ids = [];
  const reader = (async () => {
    while (ids.length < 5000) {
      for (const event of (await w.more(cur, { maxTimeMS: 2000 })).nextBatch) ids.push(event.documentKey._id);
    }
  })();
  for (let k = 0; k < 5000; k++) {
    w.insert('app', 'c', { _id: k, payload: 'x'.repeat(100) });
    if (k % 100 === 0) await new Promise((r) => setImmediate(r));
  }
  await reader;
  assert.deepEqual(ids, Array.from({ length: 5000 }, (_, k) => k));
});

test('version 8.0 prefixes aggregate execution errors with the namespace', async () => {
  const w = makeWorld({ version: '8.0' });
  const cur = await w.open('app', 'x');
  w.insert('app', 'x', { _id: 1 });
  const tok = (await w.more(cur)).nextBatch[0]._id;
  await rejectsWithCode(w.open('app', 'c', { resumeAfter: tok }), 280,
    'Executor error during aggregate command on namespace: app.c :: caused by :: cannot resume stream');
});
