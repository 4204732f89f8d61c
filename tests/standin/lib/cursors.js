// SPDX-License-Identifier: Apache-2.0
// Open query cursors: results computed when the cursor opens, handed out in
// batches by getMore. Ids are random positive 63-bit Longs, as mongod's are
// (and as the change-stream module's are, so both can share one id space).
// Idle cursors time out after 10 minutes (mongod's cursorTimeoutMillis).
'use strict';
const crypto = require('crypto');
const { Long, calculateObjectSize } = require('bson');

const DEFAULT_FIRST_BATCH = 101; // find/aggregate default (find command docs)
const MAX_BATCH_BYTES = 16 * 1024 * 1024; // a reply batch stays under 16 MiB
const IDLE_TIMEOUT_MS = 10 * 60 * 1000;

function randomCursorId() {
  for (;;) {
    const b = crypto.randomBytes(8);
    b[7] &= 0x7f; // positive
    const id = Long.fromBytesLE([...b]);
    if (!id.isZero()) return id;
  }
}

// Takes up to `count` documents from `docs` starting at `pos`, stopping early
// so the batch stays under the reply size limit.
function takeBatch(docs, pos, count) {
  const batch = [];
  let bytes = 0;
  // count null: no count limit (getMore without batchSize); 0: none at all.
  const end = count === null || count === undefined ? docs.length : Math.min(docs.length, pos + count);
  for (let i = pos; i < end; i++) {
    if (batch.length) {
      bytes += calculateObjectSize(docs[i]);
      if (bytes > MAX_BATCH_BYTES) break;
    } else {
      bytes = calculateObjectSize(docs[i]);
    }
    batch.push(docs[i]);
  }
  return batch;
}

class CursorRegistry {
  constructor() {
    this.cursors = new Map(); // id.toString() -> cursor
    this.sweeper = setInterval(() => this.sweep(), 60 * 1000);
    this.sweeper.unref();
  }

  // Returns the first-batch reply for `docs` and registers a cursor when
  // documents remain (cursor id 0 otherwise, as mongod does).
  open({ ns, docs, batchSize, singleBatch = false, extra = {}, lsid = null }) {
    const first = takeBatch(docs, 0, batchSize === undefined || batchSize === null ? DEFAULT_FIRST_BATCH : batchSize);
    let id = Long.ZERO;
    if (first.length < docs.length && !singleBatch) {
      id = randomCursorId();
      this.cursors.set(id.toString(), { id, ns, docs, pos: first.length, lsid, lastUsed: Date.now() });
    }
    return { cursor: { firstBatch: first, id, ns, ...extra } };
  }

  get(id) {
    return this.cursors.get(Long.fromValue(id).toString()) || null;
  }

  next(cursor, batchSize) {
    const batch = takeBatch(cursor.docs, cursor.pos, batchSize || null);
    cursor.pos += batch.length;
    cursor.lastUsed = Date.now();
    let id = cursor.id;
    if (cursor.pos >= cursor.docs.length) {
      this.cursors.delete(cursor.id.toString());
      id = Long.ZERO;
    }
    return { cursor: { nextBatch: batch, id, ns: cursor.ns } };
  }

  kill(id) {
    return this.cursors.delete(Long.fromValue(id).toString());
  }

  sweep() {
    const now = Date.now();
    for (const [k, c] of this.cursors) if (now - c.lastUsed > IDLE_TIMEOUT_MS) this.cursors.delete(k);
  }

  close() {
    clearInterval(this.sweeper);
  }
}

module.exports = { CursorRegistry, randomCursorId, DEFAULT_FIRST_BATCH };
