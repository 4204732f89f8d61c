// SPDX-License-Identifier: Apache-2.0
// Change streams for the stand-in: `aggregate` with a leading $changeStream,
// `getMore` on its cursors (tailable + awaitData) and `killCursors`.
// The core's dispatcher routes those commands here and wraps the reply with
// ok / $clusterTime / operationTime. See CHANGESTREAMS.md.
//
// Behaviour follows the server (src/mongo/db/pipeline/document_source_change_
// stream*.cpp) and the driver spec (specifications: source/change-streams/
// change-streams.md): resume tokens, postBatchResumeToken on every batch,
// invalidate, history lost, awaitData.
'use strict';
const crypto = require('crypto');
const { Long } = require('bson');
const { MongoError } = require('./errors');
const { ChangeStreamCursor } = require('./changestreams/cursor');
const { parseSpec, resolveScope, assertLegal, parseBatchSize, isPlainDoc, toNumber } =
  require('./changestreams/options');
const { compile } = require('./changestreams/pipeline');

const DEFAULT_AGGREGATE_BATCH = 101; // aggregate's default first batch
const DEFAULT_AWAIT_MS = 1000; // awaitData wait when getMore has no maxTimeMS
const CURSOR_TIMEOUT_MS = 10 * 60 * 1000; // cursorTimeoutMillis default

function randomCursorId() {
  for (;;) {
    const b = crypto.randomBytes(8);
    b[0] &= 0x7f; // positive 63-bit
    const id = Long.fromBigInt(b.readBigInt64BE());
    if (!id.isZero()) return id;
  }
}

function cursorKey(id) {
  if (id === null || id === undefined) return '';
  return typeof id === 'object' ? id.toString() : String(id);
}

class ChangeStreams {
  constructor({ clock, oplog, store, standalone = false, version = '7.0' }) {
    this.clock = clock;
    this.oplog = oplog;
    this.store = store;
    this.standalone = standalone;
    this.version = String(version);
    this.cursors = new Map(); // cursorKey -> ChangeStreamCursor
    this.waiters = new Set(); // wake-up functions of waiting getMores
    this.connWaiters = new WeakMap(); // conn -> Set of wake-ups, for onClose
    this.uuidByNs = new Map(); // last known collection UUID per namespace
    oplog.onAppend((records) => {
      for (const rec of records) this._annotate(rec);
      for (const wake of [...this.waiters]) wake();
    });
  }

  // Tokens carry the collection UUID, as MongoDB's do. The entry may lack it
  // (a drop, after which the store no longer knows the collection): remember
  // the UUID of every namespace written to.
  _annotate(rec) {
    if (rec.op === 'dropDatabase') return;
    const key = `${rec.ns.db}.${rec.ns.coll}`;
    let uuid = rec.uuid || rec.collectionUUID;
    if (!uuid && this.store && this.store.collectionInfo) {
      let info = this.store.collectionInfo(rec.ns.db, rec.ns.coll);
      if (!info && rec.op === 'rename' && rec.to) info = this.store.collectionInfo(rec.to.db, rec.to.coll);
      if (info) uuid = info.uuid;
    }
    if (!uuid) uuid = this.uuidByNs.get(key);
    if (uuid) {
      rec.uuid = uuid;
      this.uuidByNs.set(key, uuid);
      if (rec.op === 'rename') this.uuidByNs.set(`${rec.to.db}.${rec.to.coll}`, uuid);
    }
    if (rec.op === 'drop') this.uuidByNs.delete(key);
  }

  ownsCursor(id) {
    return this.cursors.has(cursorKey(id));
  }

  killCursor(id) {
    const key = cursorKey(id);
    const cursor = this.cursors.get(key);
    if (!cursor) return false;
    cursor.closed = true;
    cursor.killed = true;
    this.cursors.delete(key);
    for (const wake of [...this.waiters]) wake();
    return true;
  }

  // Cursors idle for cursorTimeoutMillis go away, as on a server.
  _reap() {
    const now = Date.now();
    for (const [key, c] of this.cursors) {
      if (!c.busy && now - c.lastUsed > CURSOR_TIMEOUT_MS) this.cursors.delete(key);
    }
  }

  // Prefix MongoDB puts on errors raised while the pipeline runs.
  _executorError(err, phase, nsString) {
    if (!(err instanceof MongoError) || !err.duringExecution) return err;
    let prefix;
    if (phase === 'getMore') prefix = 'Executor error during getMore :: caused by :: ';
    else if (this.version.startsWith('7.')) prefix = 'PlanExecutor error during aggregation :: caused by :: ';
    else prefix = `Executor error during aggregate command on namespace: ${nsString} :: caused by :: `;
    return new MongoError(err.code, err.codeName, prefix + err.message, err.extra);
  }

  async aggregate(dbName, cmd, conn) {
    this._reap();
    const pipeline = cmd.pipeline;
    if (!Array.isArray(pipeline) || !isPlainDoc(pipeline[0]) || !('$changeStream' in pipeline[0])) {
      throw new MongoError(2, 'BadValue', 'expected a pipeline whose first stage is $changeStream');
    }
    if (!isPlainDoc(cmd.cursor) && !cmd.explain) {
      throw new MongoError(9, 'FailedToParse',
        "The 'cursor' option is required, except for aggregate with the explain argument");
    }
    if (Object.keys(pipeline[0]).length !== 1) {
      throw new MongoError(40323, 'Location40323', 'A pipeline stage specification object must contain exactly one field.');
    }
    const scope = resolveScope(dbName, cmd.aggregate);
    // Server order: the $changeStream stage is parsed and checked (40573
    // first) before the stages after it.
    const spec = parseSpec(pipeline[0].$changeStream);
    const token = assertLegal(scope, spec, this.standalone);
    const userStages = compile(pipeline.slice(1));
    scope.showSystemEvents = spec.showSystemEvents;
    const batchSize = parseBatchSize(cmd.cursor && cmd.cursor.batchSize, 'batchSize');

    const cursor = new ChangeStreamCursor({
      id: randomCursorId(), scope, spec, token, pipeline: userStages,
      oplog: this.oplog, clock: this.clock, store: this.store,
    });
    let batch;
    try {
      batch = cursor.fill(batchSize === null ? DEFAULT_AGGREGATE_BATCH : batchSize);
    } catch (err) {
      throw this._executorError(err, 'aggregate', scope.nsString);
    }
    if (!cursor.closed && !(conn && conn.closed)) this.cursors.set(cursorKey(cursor.id), cursor);
    return this._reply('firstBatch', cursor, batch);
  }

  _reply(field, cursor, batch) {
    return {
      cursor: {
        [field]: batch,
        postBatchResumeToken: cursor.pbrt,
        id: cursor.closed ? Long.ZERO : cursor.id,
        ns: cursor.scope.nsString,
      },
    };
  }

  // `checkedOut` runs once the cursor is checked out (the
  // failGetMoreAfterCursorCheckout fail point); if it throws, the cursor is
  // gone, as mongod deletes a cursor whose getMore failed.
  async getMore(dbName, cmd, conn, checkedOut = () => {}) {
    this._reap();
    const key = cursorKey(cmd.getMore);
    const cursor = this.cursors.get(key);
    if (!cursor) throw new MongoError(43, 'CursorNotFound', `cursor id ${key} not found`);
    const wanted = `${dbName}.${cmd.collection}`;
    if (wanted !== cursor.scope.nsString) {
      throw new MongoError(13, 'Unauthorized',
        `Requested getMore on namespace '${wanted}', but cursor belongs to a different namespace ${cursor.scope.nsString}`);
    }
    if (cursor.busy) throw new MongoError(292, 'CursorInUse', `cursor id ${key} is already in use`);
    try {
      checkedOut();
    } catch (err) {
      this.cursors.delete(key);
      cursor.closed = true;
      throw err;
    }
    const limit = parseBatchSize(cmd.batchSize, 'batchSize');
    const maxTime = toNumber(cmd.maxTimeMS);
    const awaitMs = maxTime > 0 ? maxTime : DEFAULT_AWAIT_MS;
    const deadline = Date.now() + awaitMs;

    cursor.busy = true;
    try {
      for (;;) {
        let batch;
        try {
          batch = cursor.fill(limit === 0 ? null : limit);
        } catch (err) {
          this.cursors.delete(key);
          cursor.closed = true;
          throw this._executorError(err, 'getMore', cursor.scope.nsString);
        }
        if (cursor.killed) throw new MongoError(237, 'CursorKilled', `cursor id ${key} was killed`);
        if (batch.length || cursor.closed || Date.now() >= deadline || (conn && conn.closed)) {
          if (cursor.closed) this.cursors.delete(key);
          return this._reply('nextBatch', cursor, batch);
        }
        await this._waitForWrite(deadline, conn);
      }
    } finally {
      cursor.busy = false;
      cursor.lastUsed = Date.now();
    }
  }

  // Resolves at the next oplog append, at the deadline, or when the client's
  // connection closes, whichever is first.
  _waitForWrite(deadline, conn) {
    return new Promise((resolve) => {
      let timer = null;
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        if (conn) {
          const set = this.connWaiters.get(conn);
          if (set) set.delete(wake);
        }
        resolve();
      };
      timer = setTimeout(wake, Math.max(0, deadline - Date.now()));
      this.waiters.add(wake);
      if (conn && typeof conn.onClose === 'function') {
        let set = this.connWaiters.get(conn);
        if (!set) {
          set = new Set();
          this.connWaiters.set(conn, set);
          conn.onClose(() => {
            for (const fn of [...set]) fn();
          });
        }
        set.add(wake);
      }
    });
  }
}

module.exports = { ChangeStreams };
