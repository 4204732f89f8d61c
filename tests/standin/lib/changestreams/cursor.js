// SPDX-License-Identifier: Apache-2.0
// One open change stream: where it is in the oplog, what it shows, and the
// filling of one batch. Waiting (awaitData) is the caller's business.
//
// Position: `nextSeq` is the next oplog record to look at. `mustFind` holds a
// resume token whose event must be the first thing found (MongoDB's
// DocumentSourceChangeStreamEnsureResumeTokenPresent); `pendingInvalidate`
// an invalidating record whose invalidate did not fit in the last batch.
'use strict';
const { Timestamp, calculateObjectSize } = require('bson');
const { MongoError } = require('../errors');
const events = require('./events');
const { makeHighWaterMarkToken } = require('./token');

const MAX_BATCH_BYTES = 16 * 1024 * 1024; // a reply holds at most 16 MB of documents

function historyLost() {
  return new MongoError(286, 'ChangeStreamHistoryLost',
    'Resume of change stream was not possible, as the resume point may no longer be in the oplog.');
}

function fatal(msg) {
  const err = new MongoError(280, 'ChangeStreamFatalError', msg);
  err.duringExecution = true;
  return err;
}

function tokenString(tok) {
  return `{_data: "${tok._data}"}`;
}

function sameToken(a, b) {
  if (!a || typeof a !== 'object' || a._data !== b._data) return false;
  return Object.keys(a).every((k) => k === '_data' || k === '_typeBits');
}

// The high-water mark just past `ts`: what a new stream starts from
// (getStartTimeForNewStream: "one tick beyond the most recent operation").
function nextTick(ts) {
  return new Timestamp({ t: ts.t, i: ts.i + 1 });
}

class ChangeStreamCursor {
  constructor({ id, scope, spec, token, pipeline, oplog, clock, store }) {
    this.id = id;
    this.scope = scope;
    this.spec = spec;
    this.pipeline = pipeline; // apply(event) -> event | null, or null
    this.oplog = oplog;
    this.clock = clock;
    this.store = store;
    this.closed = false;
    this.busy = false;
    this.lastUsed = Date.now();
    this.mustFind = null;
    this.pendingInvalidate = null;
    this._position(token);
  }

  // Where the stream starts; throws 286 if that history is gone.
  _position(token) {
    const { oplog, spec } = this;
    if (token && !token.isHighWaterMark) {
      const ts = new Timestamp({ t: token.t, i: token.i });
      if (!oplog.hasHistoryFrom(ts, token.txnOpIndex, true)) throw historyLost();
      this.nextSeq = oplog.seek(ts, token.txnOpIndex);
      this.mustFind = token;
      this.pbrt = { _data: token.hex };
      return;
    }
    let start;
    if (token) start = new Timestamp({ t: token.t, i: token.i });
    else if (spec.startAtOperationTime) start = spec.startAtOperationTime;
    if (start) {
      if (!oplog.hasHistoryFrom(start, -1, false)) throw historyLost();
      this.nextSeq = oplog.seek(start, 0);
      this.pbrt = token ? { _data: token.hex } : makeHighWaterMarkToken(start);
      return;
    }
    this.nextSeq = oplog.nextSeq;
    this.pbrt = makeHighWaterMarkToken(nextTick(this.clock.now()));
  }

  // The resume point must be the first record this stream sees there, with
  // the very same token; else MongoDB fails with "resume token was not found".
  _checkResumePoint(rec) {
    const want = this.mustFind;
    const atPoint = rec.ts.t === want.t && rec.ts.i === want.i && rec.txnOpIndex === want.txnOpIndex;
    if (atPoint && events.sees(this.scope, rec)) {
      if (!want.fromInvalidate && events.tokenFor(rec)._data === want.hex) {
        this.mustFind = null;
        if (events.invalidates(this.scope, rec)) this.pendingInvalidate = rec;
        return;
      }
      if (want.fromInvalidate && events.invalidates(this.scope, rec) &&
          events.invalidateTokenFor(rec)._data === want.hex) {
        this.mustFind = null;
        return;
      }
    }
    throw fatal(`cannot resume stream; the resume token was not found. {_data: "${want.hex}"}`);
  }

  // Runs the user's stages; the resume token must come out untouched.
  _applyPipeline(ev) {
    if (!this.pipeline) return ev;
    const out = this.pipeline(ev);
    if (out && !sameToken(out._id, ev._id)) {
      throw fatal(
        'Encountered an event whose _id field, which contains the resume token, was modified by the ' +
        'pipeline. Modifying the _id field of an event makes it impossible to resume the stream from ' +
        'that point. Only transformations that retain the unmodified _id field are allowed. ' +
        `Expected: ${tokenString(ev._id)} but found: ${out._id === undefined ? 'missing' : JSON.stringify(out._id)}`);
    }
    return out;
  }

  // Fills one batch of at most `limit` events (null: no limit) from what the
  // oplog holds now. Sets this.pbrt; closes the cursor after an invalidate.
  fill(limit) {
    const batch = [];
    let bytes = 0;
    const full = () => (limit !== null && batch.length >= limit) || bytes >= MAX_BATCH_BYTES;
    const push = (ev) => {
      batch.push(ev);
      bytes += calculateObjectSize(ev);
      this.pbrt = ev._id;
    };
    const invalidate = (rec) => {
      // The invalidate is not subject to the user's stages: the server hands
      // it over past them (ChangeStreamInvalidated exception).
      push(events.buildInvalidate(rec));
      this.pendingInvalidate = null;
      this.closed = true;
    };

    if (this.pendingInvalidate) {
      if (limit === 0) return batch;
      invalidate(this.pendingInvalidate);
      return batch;
    }
    if (this.nextSeq < this.oplog.firstSeq) throw historyLost();
    while (!full() && this.nextSeq < this.oplog.nextSeq) {
      const rec = this.oplog.get(this.nextSeq);
      if (this.mustFind) {
        this._checkResumePoint(rec);
        this.nextSeq++;
        if (this.pendingInvalidate) {
          invalidate(this.pendingInvalidate);
          return batch;
        }
        continue;
      }
      this.nextSeq++;
      if (!events.sees(this.scope, rec)) continue;
      const ev = this._applyPipeline(events.buildEvent(rec, this.spec, this.store));
      if (ev) push(ev);
      if (events.invalidates(this.scope, rec)) {
        if (full()) {
          this.pendingInvalidate = rec;
          return batch;
        }
        invalidate(rec);
        return batch;
      }
    }
    // Everything written so far has been looked at: the resume point may move
    // up to the current cluster time even if nothing was returned (a
    // high-water-mark token sorts before any event of its clusterTime).
    if (!this.mustFind && this.nextSeq >= this.oplog.nextSeq) {
      const hwm = makeHighWaterMarkToken(this.clock.now());
      if (hwm._data > this.pbrt._data) this.pbrt = hwm;
    }
    return batch;
  }
}

module.exports = { ChangeStreamCursor };
