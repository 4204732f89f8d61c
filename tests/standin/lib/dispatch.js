// SPDX-License-Identifier: Apache-2.0
// The command dispatcher: from a command document to its reply document, in
// the order mongod runs a command (service_entry_point_common.cpp):
// lookup (59 CommandNotFound) -> authentication (13) -> failCommand fail
// point -> session / transaction / retryable write -> read concern ->
// handler -> write concern -> error labels -> $clusterTime and
// operationTime (replica-set members only).
//
// It owns the server context handed to every handler: clock, store, oplog,
// changeStreams, cursors, sessions, failpoints, users, topology, connlog.
'use strict';
const { Double, Timestamp } = require('bson');
const { MongoError } = require('./errors');
const { ClusterClock } = require('./clock');
const { Store, clone, tsCompare } = require('./store');
const { CursorRegistry } = require('./cursors');
const { FailPoints } = require('./failpoints');
const { DirectTarget, TxnTarget } = require('./targets');
const { Topology, helloReply, awaitMs, HELLO_NAMES } = require('./hello');
const { ConnLog } = require('./connlog');
const {
  codeName, RETRYABLE_CODES, TRANSIENT_TXN_CODES, STATE_CHANGE_CODES,
  NON_RESUMABLE_CHANGE_STREAM_CODES, RESUMABLE_CHANGE_STREAM_CODES,
} = require('./codes');
const transactions = require('./commands/transactions');
const auth = require('./commands/auth');

// Commands mongod runs before authentication (requiresAuth() false).
const NO_AUTH = new Set([
  'hello', 'isMaster', 'ismaster', 'saslStart', 'saslContinue', 'authenticate', 'logout',
  'ping', 'buildInfo', 'buildinfo', 'connectionStatus', 'getnonce',
]);

// Commands that take a writeConcern (and so may get a writeConcernError).
const WRITE_CONCERN_COMMANDS = new Set([
  'insert', 'update', 'delete', 'findAndModify', 'findandmodify', 'create', 'drop', 'dropDatabase',
  'createIndexes', 'dropIndexes', 'collMod', 'renameCollection', 'commitTransaction', 'abortTransaction',
]);

// Reads a secondary serves only with a non-primary read preference.
const SECONDARY_READS = new Set(['find', 'aggregate', 'count', 'distinct', 'getMore', 'listCollections', 'listIndexes']);

const SNAPSHOT_COMMANDS = new Set(['find', 'aggregate', 'distinct']);
const READ_CONCERN_LEVELS = new Set(['local', 'majority', 'snapshot', 'available', 'linearizable']);

// Thrown to make the connection close without a reply (failCommand
// closeConnection).
class CloseConnection extends Error {}

// Resolves after `ms`, or as soon as the connection closes.
function sleep(ms, conn) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    const off = conn.onClose(done);
    function done() {
      clearTimeout(timer);
      off();
      resolve();
    }
  });
}

function loadOptional(path) {
  try {
    return require(path);
  } catch (e) {
    if (e.code === 'MODULE_NOT_FOUND' && e.message.includes(path.slice(2))) return null;
    throw e;
  }
}

class Server {
  constructor(opts) {
    this.opts = opts;
    this.host = opts.host;
    this.port = opts.port;
    this.version = opts.version;
    this.standalone = !!opts.standalone;
    this.startedAt = Date.now();
    this.clock = new ClusterClock();
    this.store = new Store({ clock: this.clock });
    this.cursors = new CursorRegistry();
    this.failpoints = new FailPoints();
    this.users = new auth.Users(opts.auth);
    this.auth = this.users.enabled;
    this.sessions = new transactions.Sessions(this);
    this.connlog = new ConnLog(opts.logConnections);
    this.connections = new Set();
    this.connectionsCreated = 0;
    this.topology = null; // set by listen(), once the port is known
    this.oplog = null;
    this.changeStreams = null;
    this.handlers = new Map();
    for (const mod of ['./commands/admin', './commands/read', './commands/write', './commands/transactions', './commands/auth']) {
      for (const [name, fn] of Object.entries(require(mod).commands)) this.handlers.set(name, fn);
    }
    this.handlers.set('hello', (req) => this.hello(req));
    this.handlers.set('isMaster', (req) => this.hello(req));
    this.handlers.set('ismaster', (req) => this.hello(req));
    this.handlers.set('configureFailPoint', (req) => {
      if (req.db !== 'admin') throw new MongoError(13, 'Unauthorized', 'configureFailPoint may only be run against the admin database.');
      return this.failpoints.configure(req.cmd);
    });
    this.handlers.set('waitForFailPoint', (req) => {
      if (req.db !== 'admin') throw new MongoError(13, 'Unauthorized', 'waitForFailPoint may only be run against the admin database.');
      return this.failpoints.waitFor(req.cmd);
    });
  }

  // Called once the listening port is known: the hello `me` needs it.
  start(port) {
    this.port = port;
    this.topology = new Topology({ host: this.host, port, setName: this.opts.replset, standalone: this.standalone });
    const oplogModule = loadOptional('./oplog');
    if (oplogModule) {
      this.oplog = new oplogModule.Oplog({ clock: this.clock, maxEvents: this.opts.oplogSize });
    } else {
      // Without the change-stream engineer's oplog, writes still need a
      // timestamp each.
      this.oplog = { append: () => this.clock.tick() };
    }
    const csModule = oplogModule && loadOptional('./changestreams');
    if (csModule) {
      this.changeStreams = new csModule.ChangeStreams({
        clock: this.clock, oplog: this.oplog, store: this.store, standalone: this.standalone, version: this.version,
      });
    }
  }

  async hello(req) {
    const { cmd, conn, name } = req;
    if (cmd.client !== undefined) {
      if (conn.helloSeen) {
        throw new MongoError(186, 'ClientMetadataCannotBeMutated', 'The client metadata document may only be sent in the first hello');
      }
      const app = cmd.client && cmd.client.application;
      conn.appName = app && typeof app.name === 'string' ? app.name : '';
    }
    if (!conn.helloSeen) {
      conn.helloSeen = true;
      this.connlog.handshake(conn);
    }
    if (req.exhaust && cmd.maxAwaitTimeMS === undefined) {
      throw new MongoError(51756, 'Location51756', "An isMaster or hello request with exhaust must specify 'maxAwaitTimeMS'");
    }
    const waitMs = awaitMs(this.topology, cmd);
    if (waitMs > 0) await this.topology.waitForChange(waitMs, conn);
    const extras = {};
    if (typeof cmd.saslSupportedMechs === 'string') {
      const mechs = this.users.mechanismsFor(cmd.saslSupportedMechs);
      if (mechs) extras.saslSupportedMechs = mechs;
    }
    if (cmd.speculativeAuthenticate && this.auth) {
      const r = auth.speculativeSaslStart(req, cmd.speculativeAuthenticate);
      if (r) extras.speculativeAuthenticate = r;
    }
    return helloReply(this, conn, cmd, name, extras);
  }

  // Runs one command; returns the reply document. Throws CloseConnection
  // when the connection must close without a reply.
  async run(conn, cmd, { exhaust = false } = {}) {
    const name = Object.keys(cmd)[0];
    const db = cmd.$db;
    const req = { ctx: this, conn, db, name, cmd, exhaust, lsid: cmd.lsid, target: null, txn: null, txnContext: null, readAt: null, retry: null };
    if (cmd.lsid) this.sessions.touch(cmd.lsid, conn.user);
    // An aggregate that opens a change stream (a getMore of one is marked
    // by its handler, once it has found the cursor).
    req.changeStream = name === 'aggregate' && Array.isArray(cmd.pipeline) && !!cmd.pipeline[0] &&
      typeof cmd.pipeline[0] === 'object' && '$changeStream' in cmd.pipeline[0];
    let failData = null;
    try {
      if (typeof db !== 'string' || !db.length) {
        throw new MongoError(40571, 'Location40571', 'OP_MSG requests require a $db argument');
      }
      const handler = this.handlers.get(name);
      if (!handler) throw new MongoError(59, 'CommandNotFound', `no such command: '${name}'`);
      if (this.auth && !conn.user && !NO_AUTH.has(name)) {
        throw new MongoError(13, 'Unauthorized', `Command ${name} requires authentication`);
      }
      const ns = typeof cmd[name] === 'string' ? `${db}.${cmd[name]}` : `${db}.$cmd`;
      this.checkPrimary(name, cmd);
      failData = this.failpoints.before(name, conn, ns);
      if (failData) await this.applyFailPoint(failData, conn);

      const saved = this.enterSession(req);
      if (saved) return this.finish(req, clone(saved));
      this.applyReadConcern(req);
      if (!req.target) req.target = new DirectTarget(this, req.readAt);

      let body = await handler(req);
      if (req.txn && req.txn.failed && name !== 'commitTransaction') req.txn.state = 'aborted';
      body = body || {};
      const labels = [];
      if (WRITE_CONCERN_COMMANDS.has(name)) this.applyWriteConcern(req, body, ns, labels);
      if (req.retry && !body.writeConcernError) {
        req.retry.session.retryReply = { txnNumber: transactions.toNumber(cmd.txnNumber), reply: clone(body) };
      }
      return this.finish(req, body, labels);
    } catch (e) {
      if (e instanceof CloseConnection) throw e;
      if (req.txn && req.txn.state === 'inProgress') req.txn.state = 'aborted';
      return this.finishError(req, e, failData);
    }
  }

  // While stepped down the stand-in is a secondary: writes fail with
  // NotWritablePrimary, primary reads with NotPrimaryNoSecondaryOk, as mongod.
  checkPrimary(name, cmd) {
    if (!this.topology || this.topology.primary || this.standalone) return;
    if (WRITE_CONCERN_COMMANDS.has(name)) throw new MongoError(10107, 'NotWritablePrimary', 'not primary');
    const mode = cmd.$readPreference && cmd.$readPreference.mode;
    if (SECONDARY_READS.has(name) && (!mode || mode === 'primary')) {
      throw new MongoError(13435, 'NotPrimaryNoSecondaryOk', 'not primary and secondaryOk=false');
    }
  }

  async applyFailPoint(data, conn) {
    if (data.blockConnection) {
      const ms = Number(data.blockTimeMS);
      if (!(ms >= 0)) throw new MongoError(72, 'InvalidOptions', "must specify 'blockTimeMS' when 'blockConnection' is true");
      await sleep(ms, conn);
    }
    if (data.closeConnection) throw new CloseConnection();
    if (data.errorCode !== undefined) {
      const code = Number(data.errorCode);
      const extra = data.errorExtraInfo && typeof data.errorExtraInfo === 'object' ? clone(data.errorExtraInfo) : {};
      throw new MongoError(code, codeName(code), "Failing command via 'failCommand' failpoint", extra);
    }
  }

  // Transactions (autocommit:false) and retryable writes (txnNumber alone).
  // Returns a saved reply when a retryable write is retried.
  enterSession(req) {
    const { cmd, name } = req;
    if (cmd.autocommit !== undefined || cmd.startTransaction !== undefined) {
      req.txnContext = this.sessions.enterTransaction(req);
      req.txn = req.txnContext.txn;
      req.target = new TxnTarget(this, req.txn);
      if ((name === 'commitTransaction' || name === 'abortTransaction') && req.db !== 'admin') {
        throw new MongoError(13, 'Unauthorized', `${name} may only be run against the admin database.`);
      }
      return null;
    }
    if (name === 'commitTransaction' || name === 'abortTransaction') {
      throw new MongoError(72, 'InvalidOptions', `${name} must be run within a transaction`);
    }
    if (cmd.txnNumber !== undefined) {
      if (!cmd.lsid) throw new MongoError(72, 'InvalidOptions', 'Transaction number requires a session ID to also be specified');
      const r = this.sessions.beginRetryableWrite(req);
      if (r.saved) return r.saved;
      req.retry = r;
    }
    return null;
  }

  applyReadConcern(req) {
    const rc = req.cmd.readConcern;
    if (!rc || req.txn) return;
    if (rc.level !== undefined && !READ_CONCERN_LEVELS.has(rc.level)) {
      throw new MongoError(2, 'BadValue', `Enumeration value '${rc.level}' for field 'readConcern.level' is not a valid value.`);
    }
    if (rc.level === 'snapshot') {
      if (!SNAPSHOT_COMMANDS.has(req.name)) {
        throw new MongoError(72, 'InvalidOptions', `readConcern level snapshot is only valid in multi-statement transactions or for find, aggregate, distinct; not for ${req.name}`);
      }
      const now = this.clock.now();
      if (rc.atClusterTime !== undefined) {
        if (!(rc.atClusterTime instanceof Timestamp)) throw new MongoError(14, 'TypeMismatch', "BSON field 'atClusterTime' is the wrong type, expected type 'timestamp'");
        if (tsCompare(rc.atClusterTime, now) > 0) {
          throw new MongoError(72, 'InvalidOptions', 'readConcern atClusterTime value must not be greater than the current clusterTime');
        }
        req.readAt = rc.atClusterTime;
      } else {
        req.readAt = now;
      }
    } else if (rc.atClusterTime !== undefined) {
      throw new MongoError(72, 'InvalidOptions', 'readConcern atClusterTime is only valid with snapshot read concern');
    }
  }

  applyWriteConcern(req, body, ns, labels) {
    const wc = req.cmd.writeConcern;
    if (wc && typeof wc.w === 'number' && wc.w > 1) {
      body.writeConcernError = { code: 100, codeName: 'UnsatisfiableWriteConcern', errmsg: 'Not enough data-bearing nodes' };
    } else if (wc && typeof wc.w === 'string' && wc.w !== 'majority') {
      body.writeConcernError = { code: 79, codeName: 'UnknownReplWriteConcern', errmsg: `Unrecognized write concern mode: ${wc.w}` };
    }
    const fp = this.failpoints.after(req.name, req.conn, ns);
    if (fp) {
      body.writeConcernError = clone(fp.writeConcernError);
      if (Array.isArray(fp.errorLabels)) labels.push(...fp.errorLabels);
      else if (this.isRetryContext(req) && RETRYABLE_CODES.has(fp.writeConcernError.code)) labels.push('RetryableWriteError');
    }
  }

  // Retryable writes spec: the server labels retryable errors of retryable
  // writes (txnNumber without autocommit) and of commit/abortTransaction.
  isRetryContext(req) {
    const { cmd, name } = req;
    if (name === 'commitTransaction' || name === 'abortTransaction') return true;
    return cmd.txnNumber !== undefined && cmd.autocommit === undefined && transactions.RETRYABLE_WRITE_COMMANDS.has(name);
  }

  finish(req, body, labels = []) {
    const reply = { ...body, ok: new Double(1) };
    if (labels.length) reply.errorLabels = labels;
    return this.stamp(reply);
  }

  finishError(req, e, failData) {
    if (!(e instanceof MongoError)) {
      process.stderr.write(`level=error event=handler_exception command=${req.name} error=${JSON.stringify(String(e && e.stack))}\n`);
      e = new MongoError(1, 'InternalError', String(e && e.message));
    }
    const reply = e.toReply();
    reply.ok = new Double(0);
    let labels;
    if (failData && Array.isArray(failData.errorLabels)) {
      labels = [...failData.errorLabels];
    } else {
      const set = new Set(e.extra.errorLabels || []);
      const inTxn = req.cmd.autocommit === false && req.name !== 'commitTransaction' && req.name !== 'abortTransaction';
      if (inTxn && TRANSIENT_TXN_CODES.has(e.code)) set.add('TransientTransactionError');
      if (this.isRetryContext(req) && RETRYABLE_CODES.has(e.code)) set.add('RetryableWriteError');
      // error_labels.cpp: Resumable only without those two, else NonResumable.
      const retryLabelled = set.has('RetryableWriteError') || set.has('TransientTransactionError');
      if (req.changeStream && !retryLabelled && RESUMABLE_CHANGE_STREAM_CODES.has(e.code)) {
        set.add('ResumableChangeStreamError');
      } else if (NON_RESUMABLE_CHANGE_STREAM_CODES.has(e.code)) {
        set.add('NonResumableChangeStreamError');
      }
      labels = [...set];
    }
    delete reply.errorLabels;
    if (labels.length) reply.errorLabels = labels;
    if (STATE_CHANGE_CODES.has(e.code) && this.topology) reply.topologyVersion = this.topology.topologyVersion();
    return this.stamp(reply);
  }

  // Replica-set members gossip the cluster time on every reply (sessions
  // spec, "Gossipping the cluster time"); a standalone sends neither field.
  stamp(reply) {
    if (!this.standalone) {
      reply.$clusterTime = this.clock.clusterTimeDocument();
      reply.operationTime = this.clock.now();
    }
    return reply;
  }

  isHello(name) {
    return HELLO_NAMES.has(name);
  }

  close() {
    this.cursors.close();
    return this.connlog.end();
  }
}

module.exports = { Server, CloseConnection, sleep };
