// SPDX-License-Identifier: Apache-2.0
// Catalog and server commands: databases, collections, indexes, sessions and
// the diagnostics drivers and mongosh send on connect. Reply shapes follow
// the MongoDB 7.0 command reference.
'use strict';
const os = require('os');
const { Long } = require('bson');
const { MongoError } = require('../errors');
const { clone, isPlainObject } = require('../store');
const { compile } = require('../query');
const { parseCollation } = require('../collation');
const { canonicalizer } = require('../collated');
const { buildInfo } = require('../hello');
const { collName, refuseView } = require('./write');

// A replica-set member always has these (admin.system.version,
// config.system.sessions, local.oplog.rs); the stand-in lists them empty.
const SYSTEM_DATABASES = ['admin', 'config', 'local'];

function ping() {
  return {};
}

function listDatabases(req) {
  const { cmd, ctx } = req;
  const names = new Set([...ctx.store.listDatabases(), ...SYSTEM_DATABASES]);
  let dbs = [...names].sort().map((name) => {
    const n = ctx.store.listCollections(name).reduce((s, c) => s + c.docs.size, 0);
    return { name, sizeOnDisk: 8192 * (1 + ctx.store.listCollections(name).length) + 64 * n, empty: false };
  });
  if (cmd.filter) {
    const q = compile(cmd.filter);
    dbs = dbs.filter((d) => q.test(d));
  }
  if (cmd.nameOnly) return { databases: dbs.map((d) => ({ name: d.name })) };
  const totalSize = dbs.reduce((s, d) => s + d.sizeOnDisk, 0);
  return { databases: dbs, totalSize, totalSizeMb: Math.floor(totalSize / (1024 * 1024)) };
}

function collectionEntry(c) {
  return {
    name: c.name,
    type: 'collection',
    options: clone(c.options),
    info: { readOnly: false, uuid: c.uuid },
    idIndex: clone(c.indexes ? c.indexes[0] : { v: 2, key: { _id: 1 }, name: '_id_' }),
  };
}

// A view's entry, and that of system.views, the collection that holds a
// database's views in MongoDB (listed once a view was created).
function viewEntries(catalog) {
  if (!catalog) return [];
  const entries = [collectionEntry({ name: 'system.views', options: {}, uuid: catalog.uuid })];
  for (const [name, view] of catalog.views) {
    const options = { viewOn: view.viewOn, pipeline: clone(view.pipeline) };
    if (view.collation) options.collation = clone(view.collation);
    entries.push({ name, type: 'view', options, info: { readOnly: true } });
  }
  return entries;
}

function listCollections(req) {
  const { cmd, ctx, db } = req;
  let entries = [...ctx.store.listCollections(db).map(collectionEntry), ...viewEntries(ctx.store.viewCatalog(db))];
  if (cmd.filter) {
    const q = compile(cmd.filter);
    entries = entries.filter((e) => q.test(e));
  }
  if (cmd.nameOnly) entries = entries.map((e) => ({ name: e.name, type: e.type }));
  const batchSize = cmd.cursor && cmd.cursor.batchSize;
  return ctx.cursors.open({ ns: `${db}.$cmd.listCollections`, docs: entries, batchSize });
}

const CREATE_OPTIONS = ['capped', 'size', 'max', 'validator', 'validationLevel', 'validationAction', 'changeStreamPreAndPostImages', 'collation', 'storageEngine', 'indexOptionDefaults', 'clusteredIndex', 'expireAfterSeconds', 'timeseries', 'comment'];

// A collation as mongod stores it: every field resolved; none for simple.
function storedCollation(raw, field) {
  const collation = raw === undefined ? null : parseCollation(raw, field);
  return collation ? { ...collation.spec } : undefined;
}

function createOptions(cmd) {
  const options = {};
  for (const k of CREATE_OPTIONS) if (cmd[k] !== undefined && k !== 'comment') options[k] = clone(cmd[k]);
  const collation = storedCollation(cmd.collation, 'create.collation');
  if (collation) options.collation = collation;
  else delete options.collation;
  return options;
}

function viewExists(db, name) {
  return new MongoError(48, 'NamespaceExists', `Namespace ${db}.${name} already exists`);
}

// create with viewOn (and pipeline): a read-only view (MongoDB 7.0 "Views").
function createView(req, name) {
  const { cmd, ctx, db } = req;
  if (typeof cmd.viewOn !== 'string') {
    if (cmd.viewOn === undefined) throw new MongoError(2, 'BadValue', "'pipeline' requires 'viewOn' to also be specified");
    throw new MongoError(14, 'TypeMismatch', "BSON field 'create.viewOn' is the wrong type, expected type 'string'");
  }
  const pipeline = cmd.pipeline === undefined ? [] : cmd.pipeline;
  if (!Array.isArray(pipeline)) {
    throw new MongoError(14, 'TypeMismatch', "BSON field 'create.pipeline' is the wrong type, expected type 'array'");
  }
  pipeline.forEach((stage, i) => {
    const stageName = isPlainObject(stage) ? Object.keys(stage)[0] : undefined;
    if (stageName === '$out' || stageName === '$merge' || stageName === '$changeStream') {
      throw new MongoError(167, 'OptionNotSupportedOnView', stageName === '$changeStream'
        ? '$changeStream cannot be used in a view definition'
        : `The aggregation stage ${stageName} in location ${i} of the pipeline cannot be used in the view definition because it writes to disk`);
    }
  });
  const collation = storedCollation(cmd.collation, 'create.collation');
  if (ctx.store.getCollection(db, name) || ctx.store.getView(db, name)) throw viewExists(db, name);
  ctx.store.createView(db, name, cmd.viewOn, clone(pipeline), collation);
  ctx.clock.tick(); // the view's definition is a write to system.views
  return {};
}

function create(req) {
  const { cmd, ctx, db } = req;
  const name = collName(cmd, 'create');
  if (cmd.viewOn !== undefined || cmd.pipeline !== undefined) return createView(req, name);
  if (ctx.store.getView(db, name)) throw viewExists(db, name);
  const options = createOptions(cmd);
  const existing = ctx.store.getCollection(db, name);
  if (existing) {
    // 7.0: create with the options the collection already has succeeds.
    if (JSON.stringify(existing.options) === JSON.stringify(options)) return {};
    throw new MongoError(48, 'NamespaceExists', `Collection ${db}.${name} already exists.`);
  }
  const coll = ctx.store.createCollection(db, name, options);
  if (options.collation) coll.collateIds(canonicalizer(parseCollation(options.collation)));
  ctx.clock.tick(); // a create is an oplog entry, though not a change event
  return {};
}

function collMod(req) {
  const { cmd, ctx, db } = req;
  const name = collName(cmd, 'collMod');
  const c = ctx.store.getCollection(db, name);
  if (!c) throw new MongoError(26, 'NamespaceNotFound', `ns does not exist: ${db}.${name}`);
  for (const k of ['changeStreamPreAndPostImages', 'validator', 'validationLevel', 'validationAction', 'expireAfterSeconds']) {
    if (cmd[k] !== undefined) c.options[k] = clone(cmd[k]);
  }
  if (c.options.changeStreamPreAndPostImages && !c.options.changeStreamPreAndPostImages.enabled) {
    delete c.options.changeStreamPreAndPostImages;
  }
  ctx.clock.tick();
  return {};
}

function drop(req) {
  const { cmd, ctx, db } = req;
  const name = collName(cmd, 'drop');
  if (ctx.store.getView(db, name)) {
    ctx.store.dropView(db, name);
    ctx.clock.tick();
    return { ns: `${db}.${name}` };
  }
  const c = ctx.store.getCollection(db, name);
  // 7.0: dropping a collection that does not exist succeeds.
  if (!c) return {};
  const ts = ctx.oplog.append([{ op: 'drop', ns: { db, coll: name } }], undefined);
  ctx.store.dropCollection(db, name, ts);
  return { nIndexesWas: c.indexes.length, ns: `${db}.${name}` };
}

function dropDatabase(req) {
  const { ctx, db } = req;
  const colls = ctx.store.listCollections(db);
  const entries = colls.map((c) => ({ op: 'drop', ns: { db, coll: c.name } }));
  entries.push({ op: 'dropDatabase', ns: { db } });
  const ts = ctx.oplog.append(entries, undefined);
  for (const c of colls) ctx.store.dropCollection(db, c.name, ts);
  ctx.store.dropViews(db);
  return { dropped: db };
}

function renameCollection(req) {
  const { cmd, ctx, db } = req;
  if (db !== 'admin') throw new MongoError(13, 'Unauthorized', 'renameCollection may only be run against the admin database.');
  const parse = (ns, field) => {
    if (typeof ns !== 'string' || ns.indexOf('.') <= 0) throw new MongoError(73, 'InvalidNamespace', `Invalid ${field} namespace: ${ns}`);
    const i = ns.indexOf('.');
    return { db: ns.slice(0, i), coll: ns.slice(i + 1) };
  };
  const from = parse(cmd.renameCollection, 'source');
  const to = parse(cmd.to, 'target');
  const source = ctx.store.getCollection(from.db, from.coll);
  if (!source) throw new MongoError(26, 'NamespaceNotFound', `Source collection ${cmd.renameCollection} does not exist`);
  if (ctx.store.getCollection(to.db, to.coll) && !cmd.dropTarget) {
    throw new MongoError(48, 'NamespaceExists', 'target namespace exists');
  }
  renameOver(ctx, from, to);
  return {};
}

// Renames `from` to `to`, replacing what `to` held. One oplog entry, as
// MongoDB writes it: the replaced collection's UUID rides on the rename
// (dropTarget), and change streams see the rename alone, no drop of the
// target (SERVER-53478); a stream on either side is invalidated.
function renameOver(ctx, from, to) {
  const target = ctx.store.getCollection(to.db, to.coll);
  const entry = { op: 'rename', ns: from, to };
  if (target) entry.dropTarget = target.uuid;
  const ts = ctx.oplog.append([entry], undefined);
  if (target) ctx.store.dropCollection(to.db, to.coll, ts);
  ctx.store.renameCollection(from.db, from.coll, to.db, to.coll);
}

function indexName(key) {
  return Object.entries(key).map(([k, v]) => `${k}_${v}`).join('_');
}

function sameKey(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function createIndexes(req) {
  const { cmd, ctx, db } = req;
  const name = collName(cmd, 'createIndexes');
  refuseView(ctx, db, name);
  if (!Array.isArray(cmd.indexes) || !cmd.indexes.length) {
    throw new MongoError(2, 'BadValue', 'Must specify at least one index to create');
  }
  const { coll, created } = ctx.store.ensureCollection(db, name);
  const before = coll.indexes.length;
  let added = 0;
  for (const raw of cmd.indexes) {
    if (!isPlainObject(raw) || !isPlainObject(raw.key) || !Object.keys(raw.key).length) {
      throw new MongoError(9, 'FailedToParse', "The 'key' field is a required property of an index specification");
    }
    const spec = { v: 2, key: clone(raw.key), name: raw.name || indexName(raw.key) };
    for (const [k, v] of Object.entries(raw)) if (!['key', 'name', 'v', 'collation'].includes(k)) spec[k] = clone(v);
    // An index without a collation of its own takes the collection's.
    const collation = raw.collation === undefined ? coll.options.collation : storedCollation(raw.collation, 'createIndexes.indexes.collation');
    if (collation) spec.collation = clone(collation);
    const byName = coll.indexes.find((i) => i.name === spec.name);
    const byKey = coll.indexes.find((i) => sameKey(i.key, spec.key));
    if (byName && !sameKey(byName.key, spec.key)) {
      throw new MongoError(86, 'IndexKeySpecsConflict', `An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(byName)}`);
    }
    if (byKey && byKey.name !== spec.name) {
      throw new MongoError(85, 'IndexOptionsConflict', `Index already exists with a different name: ${byKey.name}`);
    }
    if (byName) continue;
    coll.addIndex(spec, canonicalizer(spec.collation ? parseCollation(spec.collation) : null));
    added++;
  }
  if (added || created) ctx.clock.tick();
  const reply = { numIndexesBefore: before, numIndexesAfter: coll.indexes.length, createdCollectionAutomatically: created };
  if (!added) reply.note = 'all indexes already exist';
  if (!ctx.standalone && added) reply.commitQuorum = 'votingMembers';
  return reply;
}

function listIndexes(req) {
  const { cmd, ctx, db } = req;
  const name = collName(cmd, 'listIndexes');
  const c = ctx.store.getCollection(db, name);
  if (!c) throw new MongoError(26, 'NamespaceNotFound', `ns does not exist: ${db}.${name}`);
  const batchSize = cmd.cursor && cmd.cursor.batchSize;
  return ctx.cursors.open({ ns: `${db}.${name}`, docs: c.indexes.map(clone), batchSize });
}

function dropIndexes(req) {
  const { cmd, ctx, db } = req;
  const name = collName(cmd, 'dropIndexes');
  const c = ctx.store.getCollection(db, name);
  if (!c) throw new MongoError(26, 'NamespaceNotFound', `ns not found ${db}.${name}`);
  const was = c.indexes.length;
  const which = cmd.index;
  const names = which === '*' ? c.indexes.filter((i) => i.name !== '_id_').map((i) => i.name)
    : Array.isArray(which) ? which
      : isPlainObject(which) ? c.indexes.filter((i) => sameKey(i.key, which)).map((i) => i.name) : [which];
  for (const n of names) {
    if (n === '_id_') throw new MongoError(72, 'InvalidOptions', 'cannot drop _id index');
    if (!c.indexes.some((i) => i.name === n)) {
      throw new MongoError(27, 'IndexNotFound', typeof which === 'string' ? `index not found with name [${n}]` : `can't find index with key: ${JSON.stringify(which)}`);
    }
    c.dropIndex(n);
  }
  ctx.clock.tick();
  return { nIndexesWas: was };
}

function endSessions(req) {
  for (const lsid of Array.isArray(req.cmd.endSessions) ? req.cmd.endSessions : []) req.ctx.sessions.end(lsid);
  return {};
}

function noop() {
  return {};
}

function getParameter(req) {
  const { cmd, ctx } = req;
  const all = {
    featureCompatibilityVersion: { version: ctx.version },
    authenticationMechanisms: ['SCRAM-SHA-1', 'SCRAM-SHA-256'],
    logLevel: 0,
    transactionLifetimeLimitSeconds: 60,
    minSnapshotHistoryWindowInSeconds: 300,
    enableTestCommands: 1,
  };
  if (cmd.getParameter === '*') return all;
  const out = {};
  for (const k of Object.keys(cmd)) if (k in all) out[k] = all[k];
  if (!Object.keys(out).length) throw new MongoError(72, 'InvalidOptions', 'no option found to get');
  return out;
}

function getCmdLineOpts(req) {
  const { ctx } = req;
  const argv = ['mongod', '--port', String(ctx.port), '--bind_ip', ctx.host];
  const parsed = { net: { bindIp: ctx.host, port: ctx.port } };
  if (!ctx.standalone) {
    argv.push('--replSet', ctx.topology.setName);
    parsed.replication = { replSet: ctx.topology.setName };
  }
  if (ctx.auth) {
    argv.push('--auth');
    parsed.security = { authorization: 'enabled' };
  }
  return { argv, parsed };
}

function getLog(req) {
  const which = req.cmd.getLog;
  if (which === '*') return { names: ['global', 'startupWarnings'] };
  if (which !== 'global' && which !== 'startupWarnings') {
    throw new MongoError(72, 'InvalidOptions', `No log named '${which}'`);
  }
  return { totalLinesWritten: 0, log: [] };
}

function connectionStatus(req) {
  const user = req.conn.user;
  return {
    authInfo: {
      authenticatedUsers: user ? [{ user: user.user, db: user.db }] : [],
      authenticatedUserRoles: user ? [{ role: 'root', db: 'admin' }] : [],
    },
  };
}

function hostInfo() {
  const arch = process.arch === 'x64' ? 'x86_64' : process.arch;
  return {
    system: {
      currentTime: new Date(),
      hostname: os.hostname(),
      cpuAddrSize: 64,
      memSizeMB: Long.fromNumber(Math.floor(os.totalmem() / 1048576)),
      memLimitMB: Long.fromNumber(Math.floor(os.totalmem() / 1048576)),
      numCores: os.cpus().length,
      cpuArch: arch,
      numaEnabled: false,
    },
    os: { type: 'Linux', name: 'Linux', version: os.release() },
    extra: { versionString: os.version(), kernelVersion: os.release() },
  };
}

function whatsmyuri(req) {
  return { you: `${req.conn.remoteAddress}:${req.conn.remotePort}` };
}

function serverStatus(req) {
  const { ctx } = req;
  const uptimeMs = Date.now() - ctx.startedAt;
  return {
    host: os.hostname(),
    version: buildInfo(ctx).version,
    process: 'mongod',
    pid: Long.fromNumber(process.pid),
    uptime: Math.floor(uptimeMs / 1000),
    uptimeMillis: Long.fromNumber(uptimeMs),
    uptimeEstimate: Long.fromNumber(Math.floor(uptimeMs / 1000)),
    localTime: new Date(),
    connections: { current: ctx.connections.size, available: 838860 - ctx.connections.size, totalCreated: ctx.connectionsCreated },
  };
}

// replSetStepDown (admin): with one member there is no electable secondary,
// so MongoDB refuses unless force is true; forced, the member is SECONDARY
// for the given seconds and then elects itself again.
function replSetStepDown(req) {
  const { ctx, cmd, db } = req;
  if (db !== 'admin') throw new MongoError(13, 'Unauthorized', 'replSetStepDown may only be run against the admin database.');
  if (ctx.standalone) throw new MongoError(76, 'NoReplicationEnabled', 'not running with --replSet');
  if (!ctx.topology.primary) throw new MongoError(10107, 'NotWritablePrimary', 'not primary so can\'t step down');
  const seconds = Number(cmd.replSetStepDown);
  if (!(seconds >= 1)) throw new MongoError(2, 'BadValue', 'stepdown period must be a positive integer');
  if (!cmd.force) {
    throw new MongoError(262, 'ExceededTimeLimit', 'No electable secondaries caught up as of ' + new Date().toISOString() + '. Please use the replSetStepDown command with the argument {force: true} to force node to step down.');
  }
  ctx.topology.stepDown(seconds);
  return {};
}

module.exports = {
  commands: {
    replSetStepDown,
    ping, buildInfo: (req) => buildInfo(req.ctx), buildinfo: (req) => buildInfo(req.ctx),
    listDatabases, listCollections, create, collMod, drop, dropDatabase, renameCollection,
    createIndexes, listIndexes, dropIndexes,
    endSessions, killSessions: noop, refreshSessions: noop,
    getParameter, getCmdLineOpts, getLog, connectionStatus, hostInfo, whatsmyuri, serverStatus,
  },
  renameOver,
};
