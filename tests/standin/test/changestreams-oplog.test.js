// SPDX-License-Identifier: Apache-2.0
// The oplog ring: timestamps, bounded history, seeking.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Long } = require('bson');
const { ClusterClock } = require('../lib/clock');
const { Oplog } = require('../lib/oplog');

const entry = (k) => ({ op: 'insert', ns: { db: 'd', coll: 'c' }, documentKey: { _id: k }, fullDocument: { _id: k } });

test('each write outside a transaction ticks; a transaction ticks once', () => {
  const clock = new ClusterClock();
  const oplog = new Oplog({ clock });
  const t1 = oplog.append([entry(1), entry(2)]);
  assert.ok(t1.equals(clock.now()));
  assert.ok(oplog.get(0).ts.lessThan(oplog.get(1).ts));
  const t2 = oplog.append([entry(3), entry(4), entry(5)], { lsid: { id: 1 }, txnNumber: 7 });
  assert.ok(t2.greaterThan(t1));
  const recs = [2, 3, 4].map((s) => oplog.get(s));
  assert.ok(recs.every((r) => r.ts.equals(t2)));
  assert.deepEqual(recs.map((r) => r.txnOpIndex), [0, 1, 2]);
  assert.ok(recs.every((r) => r.txnNumber.equals(Long.fromNumber(7))));
  const t3 = oplog.append([]);
  assert.ok(t3.greaterThan(t2), 'an empty append still ticks');
  assert.equal(oplog.length, 5);
});

test('the ring keeps the newest maxEvents records, growing as needed', () => {
  const clock = new ClusterClock();
  const oplog = new Oplog({ clock, maxEvents: 3000 });
  for (let k = 0; k < 7000; k++) oplog.append([entry(k)]);
  assert.equal(oplog.length, 3000);
  assert.equal(oplog.firstSeq, 4000);
  assert.equal(oplog.get(3999), undefined);
  for (const s of [4000, 5555, 6999]) assert.equal(oplog.get(s).documentKey._id, s);
  assert.equal(oplog.get(7000), undefined);
  // The floor is the newest dropped record: history from it is lost.
  const dropped = { ts: oplog.floor.ts, idx: oplog.floor.txnOpIndex };
  assert.equal(oplog.hasHistoryFrom(dropped.ts, dropped.idx, true), false);
  assert.equal(oplog.hasHistoryFrom(oplog.get(4000).ts, 0, true), true);
});

test('seek finds the first record at or after a position', () => {
  const clock = new ClusterClock();
  const oplog = new Oplog({ clock, maxEvents: 50 });
  for (let k = 0; k < 80; k++) oplog.append(k % 10 === 0 ? [entry(k), entry(k + 0.5)] : [entry(k)], k % 10 === 0 ? { lsid: {}, txnNumber: k } : undefined);
  for (let s = oplog.firstSeq; s < oplog.nextSeq; s++) {
    const r = oplog.get(s);
    assert.equal(oplog.seek(r.ts, r.txnOpIndex), s);
  }
  assert.equal(oplog.seek(clock.tick(), 0), oplog.nextSeq);
});

test('listeners hear every append', () => {
  const oplog = new Oplog({ clock: new ClusterClock() });
  const heard = [];
  const off = oplog.onAppend((recs) => heard.push(recs.length));
  oplog.append([entry(1), entry(2)]);
  off();
  oplog.append([entry(3)]);
  assert.deepEqual(heard, [2]);
});
