// SPDX-License-Identifier: Apache-2.0
// Multi-document transactions and retryable writes.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { MongoClient, Long, UUID } = require('mongodb');
const { startStandin } = require('../../lib/harness');
const { RawClient } = require('../../lib/rawwire');

async function setup(t) {
  const s = await startStandin();
  t.after(() => s.stop());
  const client = await new MongoClient(s.uri).connect();
  t.after(() => client.close());
  return { s, client };
}

test('a committed transaction applies all its writes at once', async (t) => {
  const { client } = await setup(t);
  const c = client.db('tx').collection('acct');
  await c.insertMany([{ _id: 'a', bal: 100 }, { _id: 'b', bal: 0 }]);
  const session = client.startSession();
  t.after(() => session.endSession());
  session.startTransaction({ readConcern: { level: 'snapshot' }, writeConcern: { w: 'majority' } });
  await c.updateOne({ _id: 'a' }, { $inc: { bal: -30 } }, { session });
  await c.updateOne({ _id: 'b' }, { $inc: { bal: 30 } }, { session });
  await c.insertOne({ _id: 'log', note: 'moved 30' }, { session });
  assert.deepEqual(await c.findOne({ _id: 'a' }, { session }), { _id: 'a', bal: 70 }, 'the transaction reads its own writes');
  assert.deepEqual(await c.findOne({ _id: 'a' }), { _id: 'a', bal: 100 }, 'others do not see them yet');
  assert.equal(await c.findOne({ _id: 'log' }), null);
  await session.commitTransaction();
  assert.deepEqual(await c.find().sort({ _id: 1 }).toArray(), [{ _id: 'a', bal: 70 }, { _id: 'b', bal: 30 }, { _id: 'log', note: 'moved 30' }]);
});

test('an aborted transaction leaves no trace', async (t) => {
  const { client } = await setup(t);
  const c = client.db('tx').collection('ab');
  await c.insertOne({ _id: 1, v: 1 });
  const session = client.startSession();
  t.after(() => session.endSession());
  session.startTransaction();
  await c.insertOne({ _id: 2 }, { session });
  await c.deleteOne({ _id: 1 }, { session });
  await session.abortTransaction();
  assert.deepEqual(await c.find().toArray(), [{ _id: 1, v: 1 }]);
});

test('a statement of an unknown transaction fails with NoSuchTransaction and TransientTransactionError', async (t) => {
  const { s } = await setup(t);
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const lsid = { id: new UUID() };
  const r = (await c.command({ find: 'x', lsid, txnNumber: Long.fromNumber(5), autocommit: false, $db: 'tx' })).doc;
  assert.equal(r.ok, 0);
  assert.equal(r.code, 251);
  assert.equal(r.codeName, 'NoSuchTransaction');
  assert.deepEqual(r.errorLabels, ['TransientTransactionError']);
  const start = (await c.command({ insert: 'x', documents: [{ _id: 1 }], lsid, txnNumber: Long.fromNumber(6), autocommit: false, startTransaction: true, $db: 'tx' })).doc;
  assert.equal(start.ok, 1);
  const abort = (await c.command({ abortTransaction: 1, lsid, txnNumber: Long.fromNumber(6), autocommit: false, $db: 'admin' })).doc;
  assert.equal(abort.ok, 1);
  const commit = (await c.command({ commitTransaction: 1, lsid, txnNumber: Long.fromNumber(6), autocommit: false, $db: 'admin' })).doc;
  assert.equal(commit.code, 251);
  const old = (await c.command({ insert: 'x', documents: [{}], lsid, txnNumber: Long.fromNumber(2), autocommit: false, startTransaction: true, $db: 'tx' })).doc;
  assert.equal(old.code, 225);
  assert.equal(old.codeName, 'TransactionTooOld');
});

test('a write conflicting with a transaction is a transient WriteConflict', async (t) => {
  const { client } = await setup(t);
  const c = client.db('tx').collection('wc');
  await c.insertOne({ _id: 1, v: 0 });
  const session = client.startSession();
  t.after(() => session.endSession());
  session.startTransaction();
  await c.findOne({ _id: 1 }, { session });
  await c.updateOne({ _id: 1 }, { $set: { v: 'outside' } });
  await assert.rejects(c.updateOne({ _id: 1 }, { $set: { v: 'inside' } }, { session }), (e) => {
    assert.equal(e.code, 112);
    assert.ok(e.hasErrorLabel('TransientTransactionError'));
    return true;
  });
  await session.abortTransaction().catch(() => {});
  assert.equal((await c.findOne({ _id: 1 })).v, 'outside');
});

test('withTransaction from the driver commits', async (t) => {
  const { client } = await setup(t);
  const c = client.db('tx').collection('wt');
  const session = client.startSession();
  t.after(() => session.endSession());
  await session.withTransaction(async () => {
    await c.insertOne({ _id: 1 }, { session });
    await c.insertOne({ _id: 2 }, { session });
  });
  assert.equal(await c.countDocuments(), 2);
});

test('a retried write with the same lsid and txnNumber is not applied twice', async (t) => {
  const { s } = await setup(t);
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const lsid = { id: new UUID() };
  const cmd = { update: 'r', updates: [{ q: { _id: 1 }, u: { $inc: { n: 1 } }, upsert: true }], lsid, txnNumber: Long.fromNumber(1), $db: 'tx' };
  const first = (await c.command(cmd)).doc;
  const again = (await c.command(cmd)).doc;
  assert.equal(first.n, 1);
  assert.equal(again.n, 1);
  assert.deepEqual(again.upserted, first.upserted);
  const next = (await c.command({ ...cmd, txnNumber: Long.fromNumber(2) })).doc;
  assert.equal(next.nModified, 1);
  const found = (await c.command({ find: 'r', $db: 'tx' })).doc.cursor.firstBatch;
  assert.deepEqual(found, [{ _id: 1, n: 2 }], 'txnNumber 1 applied once, txnNumber 2 once');
  const stale = (await c.command({ ...cmd, txnNumber: Long.fromNumber(1) })).doc;
  assert.equal(stale.code, 225);
});
