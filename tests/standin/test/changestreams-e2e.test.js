// SPDX-License-Identifier: Apache-2.0
// Change streams end to end: the official Node driver against the stand-in
// server (node tests/standin/server.js --port 0), each test with its own.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('child_process');
const path = require('path');
const { MongoClient, Timestamp } = require('mongodb');

const SERVER = path.join(__dirname, '..', 'server.js');
// getMore's awaitData wait for most streams here (the server default, 1 s,
// is kept by the plain `coll.watch()` tests).
const FAST = { maxAwaitTimeMS: 100 };

// Starts a stand-in on a free port; resolves to {port, uri, stop()}.
function startStandin(args = []) {
  const child = spawn(process.execPath, [SERVER, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`stand-in did not start:\n${output}`));
    }, 10000);
    const onData = (chunk) => {
      output += chunk;
      const m = /standin ready port=(\d+)/.exec(output);
      if (!m) return;
      clearTimeout(timer);
      const port = Number(m[1]);
      resolve({
        port,
        uri: args.includes('--standalone')
          ? `mongodb://127.0.0.1:${port}/?directConnection=true`
          : `mongodb://127.0.0.1:${port}/?replicaSet=rs0`,
        async stop() {
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(t);
        },
      });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (c) => { output += c; });
    child.once('exit', (code) => reject(new Error(`stand-in exited (${code}):\n${output}`)));
  });
}

// One stand-in and one client for the test body; both closed afterwards.
async function withStandin(args, fn) {
  const standin = await startStandin(args);
  const client = new MongoClient(standin.uri, { serverSelectionTimeoutMS: 5000 });
  try {
    await client.connect();
    await fn({ standin, client, db: client.db('app') });
  } finally {
    await client.close(true);
    await standin.stop();
  }
}

// Next event of a driver change stream, failing after `ms`.
async function nextWithin(stream, ms = 5000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no change event within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([stream.next(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

test('watch() delivers insert, update, replace and delete events', () => withStandin([], async ({ db }) => {
  const coll = db.collection('c');
  const stream = coll.watch([], { fullDocument: 'updateLookup', ...FAST });
  await stream.tryNext(); // the aggregate is sent; events written from now on are seen
  await coll.insertOne({ _id: 1, a: 1 });
  await coll.updateOne({ _id: 1 }, { $set: { a: 2 }, $unset: { gone: '' } });
  await coll.replaceOne({ _id: 1 }, { _id: 1, b: 1 });
  await coll.deleteOne({ _id: 1 });
  const ins = await nextWithin(stream);
  const upd = await nextWithin(stream);
  const rep = await nextWithin(stream);
  const del = await nextWithin(stream);
  assert.deepEqual([ins, upd, rep, del].map((e) => e.operationType), ['insert', 'update', 'replace', 'delete']);
  assert.deepEqual(Object.keys(ins), ['_id', 'operationType', 'clusterTime', 'wallTime', 'fullDocument', 'ns', 'documentKey']);
  assert.deepEqual(ins.fullDocument, { _id: 1, a: 1 });
  assert.deepEqual(ins.ns, { db: 'app', coll: 'c' });
  assert.deepEqual(upd.updateDescription.updatedFields, { a: 2 });
  assert.ok(upd.clusterTime instanceof Timestamp);
  assert.ok(upd.wallTime instanceof Date);
  assert.deepEqual(rep.fullDocument, { _id: 1, b: 1 });
  assert.deepEqual(del.documentKey, { _id: 1 });
  assert.ok(ins._id._data < upd._id._data && upd._id._data < rep._id._data && rep._id._data < del._id._data);
  await stream.close();
}));

test('pre- and post-images follow changeStreamPreAndPostImages', () => withStandin([], async ({ db }) => {
  await db.createCollection('imaged', { changeStreamPreAndPostImages: { enabled: true } });
  const on = db.collection('imaged');
  const stream = on.watch([], { fullDocument: 'required', fullDocumentBeforeChange: 'required', ...FAST });
  await stream.tryNext();
  await on.insertOne({ _id: 1, v: 1 });
  await on.updateOne({ _id: 1 }, { $inc: { v: 1 } });
  await on.deleteOne({ _id: 1 });
  await nextWithin(stream);
  const upd = await nextWithin(stream);
  assert.deepEqual(upd.fullDocument, { _id: 1, v: 2 });
  assert.deepEqual(upd.fullDocumentBeforeChange, { _id: 1, v: 1 });
  const del = await nextWithin(stream);
  assert.deepEqual(del.fullDocumentBeforeChange, { _id: 1, v: 2 });
  await stream.close();

  const plain = db.collection('plain');
  const strict = plain.watch([], { fullDocumentBeforeChange: 'required', ...FAST });
  await strict.tryNext();
  await plain.insertOne({ _id: 1 });
  await nextWithin(strict);
  await plain.deleteOne({ _id: 1 });
  await assert.rejects(nextWithin(strict), (err) => err.code === 47 &&
    /the pre-image was not found for event: \{operationType: "delete", ns: \{db: "app", coll: "plain"\}/.test(err.message));
  await strict.close();
}));

test('a transaction\'s events share clusterTime and carry lsid and txnNumber', () => withStandin([], async ({ client, db }) => {
  await db.createCollection('a');
  await db.createCollection('b');
  const stream = db.watch([], FAST);
  await stream.tryNext();
  const session = client.startSession();
  try {
    await session.withTransaction(async () => {
      await db.collection('a').insertOne({ _id: 1 }, { session });
      await db.collection('b').insertOne({ _id: 2 }, { session });
    });
  } finally {
    await session.endSession();
  }
  const e1 = await nextWithin(stream);
  const e2 = await nextWithin(stream);
  assert.deepEqual([e1.ns.coll, e2.ns.coll], ['a', 'b']);
  assert.ok(e1.clusterTime.equals(e2.clusterTime));
  assert.ok(e1._id._data < e2._id._data);
  for (const e of [e1, e2]) {
    assert.deepEqual(Object.keys(e).slice(0, 3), ['txnNumber', 'lsid', '_id']);
    assert.ok(e.lsid.id.buffer.length === 16);
    assert.equal(e.txnNumber, e1.txnNumber); // an int64; the driver gives it as a number
    assert.ok(e.txnNumber >= 1);
  }
  await stream.close();
}));

test('a new client resumes from a saved token and gets what was written meanwhile', () => withStandin([], async ({ standin, client, db }) => {
  const coll = db.collection('c');
  const stream = coll.watch();
  await stream.tryNext();
  await coll.insertOne({ _id: 1 });
  const saved = (await nextWithin(stream))._id;
  await stream.close();
  await client.close();
  // While "changecast" is down:
  const writer = new MongoClient(standin.uri);
  await writer.db('app').collection('c').insertMany([{ _id: 2 }, { _id: 3 }]);
  await writer.close();
  const again = new MongoClient(standin.uri);
  try {
    const resumed = again.db('app').collection('c').watch([], { resumeAfter: saved });
    assert.equal((await nextWithin(resumed)).documentKey._id, 2);
    assert.equal((await nextWithin(resumed)).documentKey._id, 3);
    await resumed.close();
  } finally {
    await again.close();
  }
}));

test('resuming from a token that fell out of the oplog fails with 286', () => withStandin(['--oplog-size', '5'], async ({ db }) => {
  const coll = db.collection('c');
  const stream = coll.watch();
  await stream.tryNext();
  await coll.insertOne({ _id: 0 });
  const old = (await nextWithin(stream))._id;
  await stream.close();
  for (let k = 1; k <= 10; k++) await coll.insertOne({ _id: k });
  const lost = coll.watch([], { resumeAfter: old });
  await assert.rejects(lost.tryNext(), (err) => err.code === 286 && err.codeName === 'ChangeStreamHistoryLost' &&
    err.message === 'Resume of change stream was not possible, as the resume point may no longer be in the oplog.' &&
    err.hasErrorLabel('NonResumableChangeStreamError'));
  await lost.close();
}));

test('a getMore failing with 280 (a $project that removes _id) carries NonResumableChangeStreamError; the driver does not resume', () => withStandin([], async ({ standin, db }) => {
  const watcher = new MongoClient(standin.uri, { monitorCommands: true, serverSelectionTimeoutMS: 5000 });
  const aggregates = [];
  watcher.on('commandStarted', (e) => { if (e.commandName === 'aggregate') aggregates.push(e); });
  const coll = watcher.db('app').collection('c');
  const stream = coll.watch([{ $project: { _id: 0 } }], FAST);
  await stream.tryNext();
  await db.collection('c').insertOne({ _id: 1 });
  const err = await stream.next().then(() => null, (e) => e);
  assert.ok(err, 'the stream fails');
  assert.equal(err.code, 280);
  assert.equal(err.codeName, 'ChangeStreamFatalError');
  assert.deepEqual(err.errorLabels, ['NonResumableChangeStreamError']);
  assert.equal(aggregates.length, 1, 'no second aggregate: the driver did not resume');
  await stream.close();
  await watcher.close(true);
}));

// The change-streams spec's resumable codes (wire version 9+: the server
// labels them ResumableChangeStreamError).
const RESUMABLE = [6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 150, 234, 133];

test('failGetMoreAfterCursorCheckout: the Node driver resumes after each resumable code (labelled ResumableChangeStreamError), not after others or after failCommand', () => withStandin([], async ({ standin, client, db }) => {
  const watcher = new MongoClient(standin.uri, { monitorCommands: true, serverSelectionTimeoutMS: 5000 });
  const aggregates = [];
  const failures = [];
  watcher.on('commandStarted', (e) => { if (e.commandName === 'aggregate') aggregates.push(e); });
  watcher.on('commandFailed', (e) => { if (e.commandName === 'getMore') failures.push(e.failure); });
  const admin = client.db('admin');
  const coll = watcher.db('app').collection('r');
  let id = 0;
  // Arms the fail point, opens a stream, writes one document and returns
  // what next() gave (the event, or the error) with the aggregates it took.
  async function attempt(failPoint, data) {
    const before = aggregates.length;
    const stream = coll.watch([], FAST);
    await stream.tryNext();
    await admin.command({ configureFailPoint: failPoint, mode: { times: 1 }, data });
    id += 1;
    await db.collection('r').insertOne({ _id: id });
    const outcome = await stream.next().then((e) => e, (e) => e);
    await stream.close();
    return { outcome, aggregates: aggregates.length - before };
  }
  try {
    for (const code of RESUMABLE) {
      const { outcome, aggregates: opened } = await attempt('failGetMoreAfterCursorCheckout', { errorCode: code });
      assert.equal(outcome.documentKey?._id, id, `code ${code}: the event after resuming (${outcome.message || ''})`);
      assert.equal(opened, 2, `code ${code}: one more aggregate, the resume`);
      const failure = failures.at(-1);
      assert.equal(failure.code, code);
      assert.equal(failure.message, "Hit the 'failGetMoreAfterCursorCheckout' failpoint");
      assert.deepEqual(failure.errorLabels, ['ResumableChangeStreamError'], `code ${code}`);
    }
    const other = await attempt('failGetMoreAfterCursorCheckout', { errorCode: 2 });
    assert.equal(other.outcome.code, 2, 'BadValue is not resumable: next() fails');
    assert.equal(other.aggregates, 1);
    // failCommand fails a getMore before its cursor is known: no change-stream
    // label, so no resume (why drivers' tests use the other fail point).
    const early = await attempt('failCommand', { failCommands: ['getMore'], errorCode: 6 });
    assert.equal(early.outcome.code, 6);
    assert.deepEqual(early.outcome.errorLabels || [], []);
    assert.equal(early.aggregates, 1);
  } finally {
    await watcher.close(true);
  }
}));

test('dropping the collection invalidates its stream; startAfter the invalidate goes on', () => withStandin([], async ({ db }) => {
  const coll = db.collection('c');
  await coll.insertOne({ _id: 0 });
  const stream = coll.watch();
  await stream.tryNext();
  await coll.drop();
  await coll.insertOne({ _id: 1 });
  assert.equal((await nextWithin(stream)).operationType, 'drop');
  const inv = await nextWithin(stream);
  assert.equal(inv.operationType, 'invalidate');
  await assert.rejects(coll.watch([], { resumeAfter: inv._id }).tryNext(), (err) => err.code === 260);
  const after = coll.watch([], { startAfter: inv._id });
  const next = await nextWithin(after);
  assert.equal(next.operationType, 'insert');
  assert.equal(next.documentKey._id, 1);
  await after.close();
}));

test('getMore: empty batches advance postBatchResumeToken; awaitData answers on the first event', () => withStandin([], async ({ standin, db }) => {
  const opened = await db.command({ aggregate: 'c', pipeline: [{ $changeStream: {} }], cursor: {} });
  const id = opened.cursor.id;
  assert.equal(opened.cursor.ns, 'app.c');
  const pbrt0 = opened.cursor.postBatchResumeToken._data;
  // The first write lands exactly on the stream's start time (one tick past
  // the cluster time at open), as on a server; the second moves past it.
  await db.collection('other').insertOne({ _id: 1 });
  await db.collection('other').insertOne({ _id: 2 });
  const empty = await db.command({ getMore: id, collection: 'c', maxTimeMS: 100 });
  assert.deepEqual(empty.cursor.nextBatch, []);
  assert.ok(empty.cursor.postBatchResumeToken._data > pbrt0, 'advanced without events');

  const writer = new MongoClient(standin.uri);
  try {
    await writer.connect();
    const started = Date.now();
    setTimeout(() => writer.db('app').collection('c').insertOne({ _id: 9 }), 150);
    const got = await db.command({ getMore: id, collection: 'c', maxTimeMS: 10000 });
    const took = Date.now() - started;
    assert.equal(got.cursor.nextBatch.length, 1);
    assert.ok(took < 10000, `answered by the write, before maxTimeMS: ${took} ms`);
    assert.deepEqual(got.cursor.postBatchResumeToken, got.cursor.nextBatch[0]._id);
  } finally {
    await writer.close();
  }
  await db.command({ killCursors: 'c', cursors: [id] });
}));

test('a cluster stream on admin sees every user database', () => withStandin([], async ({ client }) => {
  const stream = client.watch([], FAST);
  await stream.tryNext();
  await client.db('one').collection('x').insertOne({ _id: 1 });
  await client.db('two').collection('y').insertOne({ _id: 2 });
  assert.deepEqual((await nextWithin(stream)).ns, { db: 'one', coll: 'x' });
  assert.deepEqual((await nextWithin(stream)).ns, { db: 'two', coll: 'y' });
  await stream.close();
  await assert.rejects(client.db('admin').command({ aggregate: 1, pipeline: [{ $changeStream: {} }], cursor: {} }),
    (err) => err.code === 73);
}));

test('$match and $project in watch() apply on the server', () => withStandin([], async ({ db }) => {
  const coll = db.collection('c');
  const stream = coll.watch([{ $match: { 'fullDocument.keep': true } }, { $project: { 'fullDocument.keep': 1 } }], FAST);
  await stream.tryNext();
  await coll.insertMany([{ _id: 1 }, { _id: 2, keep: true, x: 1 }]);
  const e = await nextWithin(stream);
  assert.deepEqual(Object.keys(e), ['_id', 'fullDocument']);
  assert.deepEqual(e.fullDocument, { keep: true });
  await stream.close();
}));

test('standalone mode refuses change streams with 40573', () => withStandin(['--standalone'], async ({ db }) => {
  await assert.rejects(db.collection('c').watch().tryNext(), (err) => err.code === 40573 &&
    err.message === 'The $changeStream stage is only supported on replica sets');
}));

test('the driver resumes by itself when the getMore connection is closed', () => withStandin([], async ({ client, db }) => {
  const coll = db.collection('c');
  const stream = coll.watch();
  await stream.tryNext();
  await coll.insertOne({ _id: 1 });
  assert.equal((await nextWithin(stream)).documentKey._id, 1);
  await client.db('admin').command({
    configureFailPoint: 'failCommand', mode: { times: 1 },
    data: { failCommands: ['getMore'], closeConnection: true },
  });
  await coll.insertOne({ _id: 2 });
  await coll.insertOne({ _id: 3 });
  assert.equal((await nextWithin(stream)).documentKey._id, 2);
  assert.equal((await nextWithin(stream)).documentKey._id, 3);
  await stream.close();
}));
