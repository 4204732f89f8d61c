// SPDX-License-Identifier: Apache-2.0
// Logical sessions, multi-document transactions and retryable writes, as the
// transactions and retryable-writes driver specifications and mongod's
// TransactionParticipant describe them:
// - a statement with autocommit:false belongs to the transaction txnNumber
//   of its session; startTransaction opens it; commitTransaction applies all
//   its writes under one timestamp (one oplog append); abortTransaction, a
//   failed statement or a newer txnNumber discards them;
// - a write with txnNumber and no autocommit is a retryable write: a retry
//   with the same lsid+txnNumber returns the saved reply without applying
//   the write again.
'use strict';
const crypto = require('crypto');
const { Binary, Long } = require('bson');
const { MongoError } = require('../errors');
const { tsCompare } = require('../store');

const TXN_LIFETIME_MS = 60 * 1000; // transactionLifetimeLimitSeconds default

// Commands allowed inside a transaction (MongoDB "Operations in Transactions").
const TXN_COMMANDS = new Set([
  'find', 'insert', 'update', 'delete', 'findAndModify', 'findandmodify', 'aggregate', 'getMore',
  'distinct', 'killCursors', 'create', 'createIndexes', 'commitTransaction', 'abortTransaction',
]);

const RETRYABLE_WRITE_COMMANDS = new Set(['insert', 'update', 'delete', 'findAndModify', 'findandmodify', 'commitTransaction', 'abortTransaction']);

function toNumber(v) {
  return v instanceof Long ? v.toNumber() : Number(v);
}

function lsidKey(lsid) {
  const id = lsid && lsid.id;
  if (!id || !id.buffer) throw new MongoError(40414, 'Location40414', "BSON field 'OperationSessionInfo.lsid.id' is missing but a required field");
  return Buffer.from(id.buffer).toString('hex');
}

class Transaction {
  constructor(txnNumber, readTs) {
    this.txnNumber = txnNumber;
    this.readTs = readTs; // snapshot the transaction reads at
    this.startedAt = Date.now();
    this.state = 'inProgress'; // inProgress | committed | aborted
    this.overlay = new Map(); // "db.coll" -> Map(idKey -> doc|null)
    this.changes = []; // [{coll, key, after, entry}] in statement order
    this.failed = null;
  }
}

class Session {
  constructor(lsid) {
    this.lsid = lsid;
    this.txnNumber = -1;
    this.txn = null;
    this.retryReply = null; // {txnNumber, reply} of the last retryable write
  }
}

function noSuchTransaction(msg) {
  return new MongoError(251, 'NoSuchTransaction', msg, { errorLabels: ['TransientTransactionError'] });
}

// A session's uid in MongoDB's session cache: the SHA-256 of its user's
// "name@db", of "" without authentication.
function sessionUid(user) {
  const name = user ? `${user.user}@${user.db}` : '';
  return new Binary(crypto.createHash('sha256').update(name).digest(), 0);
}

class Sessions {
  constructor(ctx) {
    this.ctx = ctx;
    this.map = new Map();
    this.cache = new Map(); // lsid key -> {id, uid, lastUse}: the logical session cache
  }

  // Every command that names a session refreshes it in the cache, as mongod's.
  touch(lsid, user) {
    let key;
    try {
      key = lsidKey(lsid);
    } catch (_) {
      return; // the command itself reports a malformed lsid
    }
    this.cache.set(key, { id: lsid.id, uid: sessionUid(user), lastUse: new Date() });
  }

  // $listLocalSessions: {} (the caller's own), {allUsers: true}, or
  // {users: [{user, db}]}; documents {_id: {id, uid}, lastUse}.
  listLocal(spec, user) {
    let uids = null;
    if (spec.users !== undefined) uids = spec.users.map((u) => sessionUid(u).toString('hex'));
    else if (!spec.allUsers) uids = [sessionUid(user).toString('hex')];
    return [...this.cache.values()]
      .filter((s) => !uids || uids.includes(s.uid.toString('hex')))
      .map((s) => ({ _id: { id: s.id, uid: s.uid }, lastUse: s.lastUse }));
  }

  get(lsid) {
    const key = lsidKey(lsid);
    let s = this.map.get(key);
    if (!s) {
      s = new Session(lsid);
      this.map.set(key, s);
    }
    return s;
  }

  end(lsid) {
    try {
      const key = lsidKey(lsid);
      const s = this.map.get(key);
      if (s && s.txn && s.txn.state === 'inProgress') s.txn.state = 'aborted';
      this.map.delete(key);
      this.cache.delete(key);
    } catch (_) {
      // endSessions ignores malformed ids, as mongod does
    }
  }

  // Resolves the transaction a statement with autocommit:false belongs to.
  // Throws the errors mongod gives for stale or unknown transaction numbers.
  enterTransaction(req) {
    const { cmd, name } = req;
    if (this.ctx.standalone) {
      throw new MongoError(20, 'IllegalOperation', 'Transaction numbers are only allowed on a replica set member or mongos');
    }
    if (cmd.txnNumber === undefined) {
      throw new MongoError(50768, 'Location50768', "'autocommit' field requires a transaction number to also be specified");
    }
    if (cmd.autocommit !== false) {
      throw new MongoError(50768, 'Location50768', "autocommit field must be false when specified");
    }
    const session = this.get(cmd.lsid);
    const txnNumber = toNumber(cmd.txnNumber);
    if (txnNumber < session.txnNumber) {
      throw new MongoError(225, 'TransactionTooOld', `Cannot start transaction ${txnNumber} on session ${lsidKey(cmd.lsid)} because a newer transaction ${session.txnNumber} has already started.`);
    }
    if (cmd.startTransaction) {
      if (txnNumber === session.txnNumber) {
        throw new MongoError(251, 'NoSuchTransaction', `Given transaction number ${txnNumber} does not match any in-progress transactions. The active transaction number is ${session.txnNumber}`, { errorLabels: ['TransientTransactionError'] });
      }
      this.abortOpen(session);
      const rc = cmd.readConcern || {};
      let readTs = this.ctx.clock.now();
      if (rc.atClusterTime) {
        if (tsCompare(rc.atClusterTime, readTs) > 0) {
          throw new MongoError(72, 'InvalidOptions', 'readConcern atClusterTime value must not be greater than the current clusterTime');
        }
        readTs = rc.atClusterTime;
      }
      session.txnNumber = txnNumber;
      session.txn = new Transaction(txnNumber, readTs);
      session.retryReply = null;
    } else if (txnNumber > session.txnNumber || !session.txn || session.txn.txnNumber !== txnNumber) {
      throw noSuchTransaction(`Given transaction number ${txnNumber} does not match any in-progress transactions. The active transaction number is ${session.txnNumber}`);
    }
    const txn = session.txn;
    if (txn.state === 'inProgress' && Date.now() - txn.startedAt > TXN_LIFETIME_MS) txn.state = 'aborted';
    if (txn.state === 'aborted') {
      throw noSuchTransaction(`Transaction with { txnNumber: ${txnNumber} } has been aborted.`);
    }
    if (txn.state === 'committed' && name !== 'commitTransaction') {
      throw new MongoError(256, 'TransactionCommitted', `Transaction with { txnNumber: ${txnNumber} } has been committed.`);
    }
    if (!TXN_COMMANDS.has(name)) {
      txn.state = 'aborted';
      throw new MongoError(263, 'OperationNotSupportedInTransaction', `Cannot run '${name}' in a multi-document transaction.`);
    }
    return { session, txn };
  }

  // A retryable write: returns the saved reply of an earlier execution with
  // the same lsid+txnNumber, or null when the write must run.
  beginRetryableWrite(req) {
    const { cmd, name } = req;
    if (this.ctx.standalone) {
      throw new MongoError(20, 'IllegalOperation', 'Transaction numbers are only allowed on a replica set member or mongos');
    }
    if (!RETRYABLE_WRITE_COMMANDS.has(name)) {
      throw new MongoError(50768, 'Location50768', `txnNumber may only be provided for multi-document transactions and retryable write commands. autocommit:false was not provided, and ${name} is not a retryable write command.`);
    }
    const session = this.get(cmd.lsid);
    const txnNumber = toNumber(cmd.txnNumber);
    if (txnNumber < session.txnNumber) {
      throw new MongoError(225, 'TransactionTooOld', `Retryable write with txnNumber ${txnNumber} is prohibited on session ${lsidKey(cmd.lsid)} because a newer retryable write with txnNumber ${session.txnNumber} has already started on this session.`);
    }
    if (txnNumber === session.txnNumber && session.retryReply && session.retryReply.txnNumber === txnNumber) {
      return { session, saved: session.retryReply.reply };
    }
    if (txnNumber > session.txnNumber) {
      this.abortOpen(session);
      session.txnNumber = txnNumber;
      session.txn = null;
      session.retryReply = null;
    }
    return { session, saved: null };
  }

  abortOpen(session) {
    if (session.txn && session.txn.state === 'inProgress') session.txn.state = 'aborted';
  }
}

// Applies a transaction's buffered writes atomically: all or none (a unique
// index violation rolls back what was applied), then one oplog append.
function commit(ctx, session) {
  const txn = session.txn;
  const applied = [];
  try {
    for (const c of txn.changes) {
      const before = c.coll.docs.get(c.key) || null;
      if (c.after) c.coll.checkUnique(c.after, before ? c.key : null);
      c.coll.put(c.key, c.after, null);
      applied.push({ c, before });
    }
  } catch (e) {
    for (const { c, before } of applied.reverse()) c.coll.put(c.key, before, null);
    txn.state = 'aborted';
    throw e;
  }
  if (txn.changes.length) {
    const ts = ctx.oplog.append(txn.changes.map((c) => c.entry), {
      lsid: session.lsid,
      txnNumber: Long.fromNumber(txn.txnNumber),
    });
    for (const { c, before } of applied) {
      ctx.store.recordHistory(ts, c.coll.db, c.coll.name, c.key, before);
      c.coll.lastWrite.set(c.key, ts);
    }
  }
  txn.state = 'committed';
}

function commitTransaction(req) {
  const { session, txn } = req.txnContext;
  if (txn.state === 'committed') return {}; // a retried commit succeeds again
  commit(req.ctx, session);
  return {};
}

function abortTransaction(req) {
  const { txn } = req.txnContext;
  txn.state = 'aborted';
  return {};
}

module.exports = {
  Sessions, Transaction, TXN_COMMANDS, RETRYABLE_WRITE_COMMANDS, lsidKey, toNumber,
  commands: { commitTransaction, abortTransaction },
};
