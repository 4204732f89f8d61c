// SPDX-License-Identifier: Apache-2.0
// The stand-in's oplog: a bounded ring of write records that change streams
// read. One record per written document (or per drop / rename /
// dropDatabase), in clusterTime order. Like a replica set's capped oplog it
// forgets its oldest records once `maxEvents` is reached; a change stream
// that needs them then fails with ChangeStreamHistoryLost (286).
//
// Timestamps follow MongoDB: every record of one committed transaction shares
// the transaction's clusterTime and is told apart by `txnOpIndex` (its index
// in the transaction's applyOps); outside a transaction every document write
// gets its own tick, as each is its own oplog entry in MongoDB.
'use strict';
const { Long } = require('bson');

const DEFAULT_MAX_EVENTS = 100000;

function tsCompare(a, b) {
  if (a.t !== b.t) return a.t < b.t ? -1 : 1;
  if (a.i !== b.i) return a.i < b.i ? -1 : 1;
  return 0;
}

// (ts, txnOpIndex) order: the order of the records, and of their tokens.
function positionCompare(aTs, aIdx, bTs, bIdx) {
  return tsCompare(aTs, bTs) || (aIdx === bIdx ? 0 : aIdx < bIdx ? -1 : 1);
}

class Oplog {
  constructor({ clock, maxEvents = DEFAULT_MAX_EVENTS } = {}) {
    if (!clock) throw new Error('Oplog needs the cluster clock');
    this.clock = clock;
    this.capacity = Math.max(1, Math.floor(Number(maxEvents) || DEFAULT_MAX_EVENTS));
    this.ring = new Array(Math.min(this.capacity, 1024));
    this.firstSeq = 0; // seq of the oldest retained record
    this.nextSeq = 0; // seq the next record gets
    // History before this point is not available: at start, everything before
    // the stand-in existed; later, the newest record that was dropped.
    this.floor = { ts: clock.now(), txnOpIndex: -1, evicted: false };
    this.listeners = new Set();
  }

  get length() {
    return this.nextSeq - this.firstSeq;
  }

  // Records one write statement or one committed transaction. `entries` as
  // documented in CHANGESTREAMS.md; `txn` is {lsid, txnNumber} or undefined.
  // Returns the (last) clusterTime used.
  append(entries, txn) {
    const wallTime = new Date();
    const list = Array.isArray(entries) ? entries : [entries];
    const added = [];
    if (txn) {
      const ts = this.clock.tick();
      const txnNumber = Long.isLong(txn.txnNumber) ? txn.txnNumber : Long.fromNumber(Number(txn.txnNumber));
      list.forEach((entry, k) => {
        added.push(this._push({ ...entry, ts, txnOpIndex: k, wallTime, lsid: txn.lsid, txnNumber }));
      });
      this._notify(added);
      return ts;
    }
    let ts = null;
    for (const entry of list) {
      ts = this.clock.tick();
      added.push(this._push({ ...entry, ts, txnOpIndex: 0, wallTime }));
    }
    if (ts === null) ts = this.clock.tick(); // the interface promises one tick
    this._notify(added);
    return ts;
  }

  _push(record) {
    record.seq = this.nextSeq++;
    if (this.nextSeq - this.firstSeq > this.capacity) {
      const old = this.get(this.firstSeq);
      this.floor = { ts: old.ts, txnOpIndex: old.txnOpIndex, evicted: true };
      this.ring[this.firstSeq % this.ring.length] = undefined;
      this.firstSeq++;
    }
    if (this.nextSeq - this.firstSeq > this.ring.length) this._grow();
    this.ring[record.seq % this.ring.length] = record;
    return record;
  }

  // The ring starts small and doubles up to `capacity`, so a large
  // --oplog-size costs nothing until it is used.
  _grow() {
    const size = Math.min(this.capacity, this.ring.length * 2);
    const ring = new Array(size);
    for (let s = this.firstSeq; s < this.nextSeq - 1; s++) ring[s % size] = this.ring[s % this.ring.length];
    this.ring = ring;
  }

  _notify(records) {
    for (const fn of [...this.listeners]) fn(records);
  }

  // The record with sequence number `seq`, or undefined if dropped / future.
  get(seq) {
    if (seq < this.firstSeq || seq >= this.nextSeq) return undefined;
    return this.ring[seq % this.ring.length];
  }

  // Sequence number of the first record at or after position (ts, txnOpIndex)
  // (binary search; nextSeq if none).
  seek(ts, txnOpIndex = 0) {
    let lo = this.firstSeq;
    let hi = this.nextSeq;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const r = this.get(mid);
      if (positionCompare(r.ts, r.txnOpIndex, ts, txnOpIndex) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // Whether every record after position (ts, txnOpIndex) is still here.
  // `inclusive`: the record at that exact position is needed too (resuming
  // after an event must find that event, as MongoDB's oplog must still hold
  // the resume point).
  hasHistoryFrom(ts, txnOpIndex, inclusive) {
    const c = positionCompare(ts, txnOpIndex, this.floor.ts, this.floor.txnOpIndex);
    if (c > 0) return true;
    if (c < 0) return false;
    return !(inclusive && this.floor.evicted);
  }

  // fn(records) is called synchronously after each append.
  onAppend(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

module.exports = { Oplog, tsCompare, positionCompare, DEFAULT_MAX_EVENTS };
