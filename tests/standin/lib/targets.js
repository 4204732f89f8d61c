// SPDX-License-Identifier: Apache-2.0
// Where a command's reads and writes go. A DirectTarget reads the store (or a
// snapshot of it) and applies each write at once, appending it to the oplog;
// a TxnTarget reads through a transaction's overlay and buffers writes until
// commitTransaction applies them all under one timestamp.
//
// A write is described as a change {coll, key, before, after, entry}, where
// `entry` is the oplog entry handed to ctx.oplog.append (see the interface in
// the README: op, ns, documentKey, fullDocument, fullDocumentBeforeChange,
// preAndPostImagesEnabled, updateDescription).
'use strict';
const { MongoError } = require('./errors');
const { tsCompare } = require('./store');

function preImages(coll) {
  const o = coll.options.changeStreamPreAndPostImages;
  return !!(o && o.enabled);
}

function makeEntry(coll, op, key, before, after, updateDescription) {
  const doc = after || before;
  const entry = {
    op,
    ns: { db: coll.db, coll: coll.name },
    documentKey: { _id: doc._id },
    preAndPostImagesEnabled: preImages(coll),
  };
  if (after && op !== 'delete') entry.fullDocument = after;
  if (before && op !== 'insert') entry.fullDocumentBeforeChange = before;
  if (updateDescription) entry.updateDescription = updateDescription;
  return entry;
}

class DirectTarget {
  // `readAt`: a Timestamp for snapshot reads (readConcern snapshot), else null.
  constructor(ctx, readAt = null) {
    this.ctx = ctx;
    this.store = ctx.store;
    this.readAt = readAt;
    this.inTransaction = false;
  }

  collection(db, name) {
    return this.store.getCollection(db, name);
  }

  ensureCollection(db, name) {
    return this.store.ensureCollection(db, name).coll;
  }

  docs(db, name) {
    if (this.readAt) return this.store.docsAt(db, name, this.readAt).values();
    const c = this.store.getCollection(db, name);
    return c ? c.docs.values() : [];
  }

  get(db, name, key) {
    if (this.readAt) return this.store.getAt(db, name, key, this.readAt);
    const c = this.store.getCollection(db, name);
    return c ? c.docs.get(key) : undefined;
  }

  // Applies one document change now: unique indexes checked first, then the
  // oplog entry appended (which assigns the timestamp), then the store.
  write(coll, op, key, before, after, updateDescription) {
    if (after) coll.checkUnique(after, before ? key : null);
    const entry = makeEntry(coll, op, key, before, after, updateDescription);
    const ts = this.ctx.oplog.append([entry], undefined);
    this.store.write(coll, key, after, ts);
    return ts;
  }
}

class TxnTarget {
  constructor(ctx, txn) {
    this.ctx = ctx;
    this.store = ctx.store;
    this.txn = txn;
    this.inTransaction = true;
  }

  overlayOf(db, name) {
    return this.txn.overlay.get(`${db}.${name}`);
  }

  collection(db, name) {
    return this.store.getCollection(db, name);
  }

  // Collections created inside a transaction exist at once (see README).
  ensureCollection(db, name) {
    return this.store.ensureCollection(db, name).coll;
  }

  *docs(db, name) {
    const overlay = this.overlayOf(db, name);
    const base = this.store.docsAt(db, name, this.txn.readTs);
    for (const [key, doc] of base) {
      if (overlay && overlay.has(key)) {
        const mine = overlay.get(key);
        if (mine) yield mine;
      } else {
        yield doc;
      }
    }
    if (overlay) for (const [key, doc] of overlay) if (doc && !base.has(key)) yield doc;
  }

  get(db, name, key) {
    const overlay = this.overlayOf(db, name);
    if (overlay && overlay.has(key)) return overlay.get(key) || undefined;
    return this.store.getAt(db, name, key, this.txn.readTs);
  }

  // Buffers the change. A document written outside the transaction after it
  // started is a WriteConflict, as MongoDB's snapshot isolation reports it.
  write(coll, op, key, before, after, updateDescription) {
    const last = coll.lastWrite.get(key);
    if (last && tsCompare(last, this.txn.readTs) > 0) {
      throw new MongoError(
        112,
        'WriteConflict',
        'Caused by :: Write conflict during plan execution and yielding is disabled. :: Please retry your operation or multi-document transaction.',
        { errorLabels: ['TransientTransactionError'] }
      );
    }
    if (after && !before && this.get(coll.db, coll.name, key)) {
      coll.checkUnique(after, null, new Map([[key, true]]));
    }
    let overlay = this.overlayOf(coll.db, coll.name);
    if (!overlay) {
      overlay = new Map();
      this.txn.overlay.set(`${coll.db}.${coll.name}`, overlay);
    }
    overlay.set(key, after);
    this.txn.changes.push({ coll, key, after, entry: makeEntry(coll, op, key, before, after, updateDescription) });
    return null;
  }
}

module.exports = { DirectTarget, TxnTarget, makeEntry };
