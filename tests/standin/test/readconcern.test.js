// SPDX-License-Identifier: Apache-2.0
// readConcern (local, majority, snapshot with atClusterTime) and
// writeConcern (w:1, w:"majority", unsatisfiable w).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { MongoClient, Timestamp } = require('mongodb');
const { startStandin } = require('../../lib/harness');

async function setup(t) {
  const s = await startStandin();
  t.after(() => s.stop());
  const client = await new MongoClient(s.uri).connect();
  t.after(() => client.close());
  return client.db('rc');
}

test('a snapshot find answers with atClusterTime', async (t) => {
  const db = await setup(t);
  await db.collection('c').insertOne({ _id: 1 });
  const r = await db.command({ find: 'c', readConcern: { level: 'snapshot' } });
  assert.ok(r.cursor.atClusterTime instanceof Timestamp);
  assert.equal(r.cursor.firstBatch.length, 1);
  const agg = await db.command({ aggregate: 'c', pipeline: [], cursor: {}, readConcern: { level: 'snapshot' } });
  assert.ok(agg.cursor.atClusterTime instanceof Timestamp);
});

test('atClusterTime reads the documents as they were then', async (t) => {
  const db = await setup(t);
  const c = db.collection('h');
  const w1 = await db.command({ insert: 'h', documents: [{ _id: 1, v: 'old' }] });
  const t1 = w1.operationTime;
  await c.updateOne({ _id: 1 }, { $set: { v: 'new' } });
  await c.insertOne({ _id: 2 });
  await c.deleteOne({ _id: 1 });
  const then = await db.command({ find: 'h', readConcern: { level: 'snapshot', atClusterTime: t1 } });
  assert.deepEqual(then.cursor.firstBatch, [{ _id: 1, v: 'old' }]);
  assert.equal(then.cursor.atClusterTime.toString(), t1.toString());
  const now = await db.command({ find: 'h', readConcern: { level: 'snapshot' } });
  assert.deepEqual(now.cursor.firstBatch, [{ _id: 2 }]);
  const distinct = await db.command({ distinct: 'h', key: 'v', readConcern: { level: 'snapshot', atClusterTime: t1 } });
  assert.deepEqual(distinct.values, ['old']);
  await assert.rejects(db.command({ count: 'h', readConcern: { level: 'snapshot' } }), (e) => e.code === 72);
  const future = new Timestamp({ t: t1.high + 100000, i: 1 });
  await assert.rejects(db.command({ find: 'h', readConcern: { level: 'snapshot', atClusterTime: future } }), (e) => e.code === 72);
});

test('local and majority read concerns and w:1 / w:majority are accepted', async (t) => {
  const db = await setup(t);
  const r = await db.command({ insert: 'w', documents: [{ _id: 1 }], writeConcern: { w: 'majority', wtimeout: 1000 } });
  assert.equal(r.n, 1);
  assert.equal(r.writeConcernError, undefined);
  assert.equal((await db.command({ insert: 'w', documents: [{ _id: 2 }], writeConcern: { w: 1 } })).n, 1);
  for (const level of ['local', 'majority']) {
    const f = await db.command({ find: 'w', readConcern: { level } });
    assert.equal(f.cursor.firstBatch.length, 2);
    assert.equal(f.cursor.atClusterTime, undefined);
  }
  await assert.rejects(db.command({ insert: 'w', documents: [{ _id: 3 }], writeConcern: { w: 3 } }), (e) => {
    assert.equal(e.code, 100, 'UnsatisfiableWriteConcern on a one-member set');
    assert.equal(e.result.n, 1, 'the write itself was applied');
    return true;
  });
});
