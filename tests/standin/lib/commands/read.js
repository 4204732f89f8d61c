// SPDX-License-Identifier: Apache-2.0
// find, count, distinct, aggregate (non-$changeStream pipelines), getMore and
// killCursors. Cursor replies follow the find/getMore command docs:
// {cursor: {firstBatch|nextBatch, id, ns[, atClusterTime]}}.
'use strict';
const { Long } = require('bson');
const { MongoError } = require('../errors');
const { project, checkFilter } = require('../query');
const { matchIn, sortBy, aggregateBy, distinctCollated, unsupported } = require('../collated');
const { operationCollation, defaultCollation, parseCollation } = require('../collation');
const { valueKey, isPlainObject } = require('../store');
const { collName, refuseView } = require('./write');
const { writingStage, runWritingStage } = require('./stage_writes');

function intOption(cmd, field, { min = 0 } = {}) {
  const v = cmd[field];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n)) throw new MongoError(14, 'TypeMismatch', `BSON field '${field}' is the wrong type`);
  if (n < min) throw new MongoError(51024, 'Location51024', `BSON field '${field}' value must be >= ${min}, actual value '${n}'`);
  return n;
}

// A view's documents: its pipeline over what it is defined on (a view on a
// view resolves down to a collection), computed per read as MongoDB does.
const MAX_VIEW_DEPTH = 20;

function viewDocs(req, db, name, depth = 0) {
  const view = req.ctx.store.getView(db, name);
  if (!view) return null;
  if (depth >= MAX_VIEW_DEPTH) {
    throw new MongoError(274, 'ViewDepthLimitExceeded', `View depth too deep or view cycle detected; maximum depth is ${MAX_VIEW_DEPTH}`);
  }
  const base = viewDocs(req, db, view.viewOn, depth + 1) || [...req.target.docs(db, view.viewOn)];
  return aggregateBy(base, view.pipeline, (other) => sourceDocs(req, db, other), defaultCollation(req.ctx.store, db, name));
}

// What a read names: a collection's documents, or a view's.
function sourceDocs(req, db, name) {
  return viewDocs(req, db, name) || [...req.target.docs(db, name)];
}

// The documents matching `filter` in a collection or a view.
function matching(req, db, name, filter, collation) {
  const view = viewDocs(req, db, name);
  if (!view) return matchIn(req.target, db, name, filter, { collation });
  if (!filter || !Object.keys(filter).length) return view;
  return aggregateBy(view, [{ $match: filter }], (other) => sourceDocs(req, db, other), collation);
}

function cursorExtra(req) {
  return req.readAt ? { atClusterTime: req.readAt } : {};
}

function find(req) {
  const { cmd, db } = req;
  const name = collName(cmd, 'find');
  const filter = checkFilter(cmd.filter);
  const skip = intOption(cmd, 'skip') || 0;
  let limit = cmd.limit;
  let singleBatch = !!cmd.singleBatch;
  if (typeof limit === 'number' && limit < 0) {
    // Legacy negative limit: one batch of |limit| (find command docs).
    limit = -limit;
    singleBatch = true;
  }
  limit = limit || 0;
  const batchSize = intOption(cmd, 'batchSize');
  const collation = operationCollation(req, db, name, cmd.collation, 'find.collation');
  let docs = matching(req, db, name, filter, collation);
  docs = sortBy(docs, cmd.sort, collation);
  if (skip) docs = docs.slice(skip);
  if (limit) docs = docs.slice(0, limit);
  docs = project(docs, cmd.projection);
  return req.ctx.cursors.open({
    ns: `${db}.${name}`, docs, batchSize: batchSize === undefined ? undefined : limit ? Math.min(batchSize || limit, limit) : batchSize,
    singleBatch, extra: cursorExtra(req), lsid: req.lsid,
  });
}

function count(req) {
  const { cmd, db } = req;
  const name = collName(cmd, 'count');
  const filter = checkFilter(cmd.query, 'query');
  let n = matching(req, db, name, filter, operationCollation(req, db, name, cmd.collation, 'count.collation')).length;
  const skip = intOption(cmd, 'skip') || 0;
  n = Math.max(0, n - skip);
  const limit = Math.abs(cmd.limit || 0);
  if (limit) n = Math.min(n, limit);
  return { n };
}

function distinct(req) {
  const { cmd, db } = req;
  const name = collName(cmd, 'distinct');
  if (typeof cmd.key !== 'string') {
    throw new MongoError(40414, 'Location40414', "BSON field 'distinct.key' is missing but a required field");
  }
  const filter = checkFilter(cmd.query, 'query');
  const collation = operationCollation(req, db, name, cmd.collation, 'distinct.collation');
  const seen = new Map();
  const add = (v) => {
    if (v === undefined) return;
    const k = valueKey(v);
    if (!seen.has(k)) seen.set(k, v);
  };
  // Values along a dotted path, arrays unwound at each level, as distinct does.
  const collect = (v, parts) => {
    if (!parts.length) {
      if (Array.isArray(v)) v.forEach(add);
      else add(v);
      return;
    }
    if (Array.isArray(v)) return v.forEach((e) => collect(e, parts));
    if (v === null || typeof v !== 'object') return;
    collect(v[parts[0]], parts.slice(1));
  };
  const parts = cmd.key.split('.');
  for (const doc of matching(req, db, name, filter, collation)) collect(doc, parts);
  const values = [...seen.values()];
  return { values: collation ? distinctCollated(values, collation) : values };
}

const UNSUPPORTED_STAGES = new Set(['$collStats', '$indexStats', '$currentOp', '$listSessions', '$planCacheStats', '$search', '$vectorSearch']);

// The sessions of the server's session cache ($listLocalSessions, MongoDB
// 7.0 reference): the first stage of {aggregate: 1} on admin.
function listLocalSessions(req, spec) {
  if (req.cmd.aggregate !== 1 || req.db !== 'admin') {
    throw new MongoError(73, 'InvalidNamespace', "$listLocalSessions must be run against the 'admin' database with {aggregate: 1}");
  }
  if (!isPlainObject(spec)) {
    throw new MongoError(14, 'TypeMismatch', `$listLocalSessions options must be specified in an object, but found: ${Array.isArray(spec) ? 'array' : typeof spec}`);
  }
  if (spec.users !== undefined && (!Array.isArray(spec.users) ||
      spec.users.some((u) => !isPlainObject(u) || typeof u.user !== 'string' || typeof u.db !== 'string'))) {
    throw new MongoError(14, 'TypeMismatch', "BSON field '$listLocalSessions.users' is the wrong type, expected an array of {user, db}");
  }
  return req.ctx.sessions.listLocal(spec, req.conn.user);
}

async function aggregateCommand(req) {
  const { cmd, db, ctx } = req;
  let pipeline = cmd.pipeline;
  if (!Array.isArray(pipeline)) {
    throw new MongoError(14, 'TypeMismatch', "BSON field 'aggregate.pipeline' is the wrong type, expected type 'array'");
  }
  if (!isPlainObject(cmd.cursor) && !cmd.explain) {
    throw new MongoError(9, 'FailedToParse', "The 'cursor' option is required, except for aggregate with the explain argument");
  }
  const first = pipeline[0] && Object.keys(pipeline[0])[0];
  const named = typeof cmd.aggregate === 'string' && cmd.aggregate.length > 0;
  const collation = named ? operationCollation(req, db, cmd.aggregate, cmd.collation, 'aggregate.collation')
    : cmd.collation === undefined ? null : parseCollation(cmd.collation, 'aggregate.collation');
  if (first === '$changeStream') {
    if (typeof cmd.aggregate === 'string') refuseView(ctx, db, cmd.aggregate);
    if (collation && pipeline.length > 1) throw unsupported('a change stream pipeline');
    if (!ctx.changeStreams) {
      throw new MongoError(115, 'CommandNotSupported', 'the stand-in was started without its change-stream module (tests/standin/lib/changestreams.js is missing)');
    }
    return ctx.changeStreams.aggregate(db, cmd, req.conn);
  }
  for (const stage of pipeline) {
    const stageName = Object.keys(stage)[0];
    if ((stageName === '$changeStream' || stageName === '$listLocalSessions') && stage !== pipeline[0]) {
      throw new MongoError(40602, 'Location40602', `${stageName} is only valid as the first stage in a pipeline`);
    }
    if (UNSUPPORTED_STAGES.has(stageName)) {
      throw new MongoError(40324, 'Location40324', `Unrecognized pipeline stage name: '${stageName}' (not implemented by the stand-in)`);
    }
  }
  let source = [];
  let ns;
  if (first === '$listLocalSessions') {
    source = listLocalSessions(req, pipeline[0].$listLocalSessions);
    pipeline = pipeline.slice(1);
    ns = `${db}.$cmd.aggregate`;
  } else if (cmd.aggregate === 1) {
    // Collection-less aggregate: only $documents makes sense here.
    if (first !== '$documents') {
      throw new MongoError(73, 'InvalidNamespace', `{aggregate: 1} is not valid for '${first}'; a collection name is required`);
    }
    ns = `${db}.$cmd.aggregate`;
  } else {
    const name = collName(cmd, 'aggregate');
    source = sourceDocs(req, db, name);
    ns = `${db}.${name}`;
  }
  const resolver = (other) => sourceDocs(req, db, other);
  const writer = writingStage(pipeline);
  if (writer) {
    const last = pipeline[pipeline.length - 1];
    if (collation && writer === '$merge') throw unsupported('$merge');
    runWritingStage(req, writer, last[writer], aggregateBy(source, pipeline.slice(0, -1), resolver, collation));
    return ctx.cursors.open({ ns, docs: [], extra: cursorExtra(req), lsid: req.lsid });
  }
  const docs = aggregateBy(source, pipeline, resolver, collation);
  const batchSize = cmd.cursor ? cmd.cursor.batchSize : undefined;
  return ctx.cursors.open({ ns, docs, batchSize, extra: cursorExtra(req), lsid: req.lsid });
}

async function getMore(req) {
  const { cmd, db, ctx } = req;
  const id = cmd.getMore;
  if (!(id instanceof Long) && typeof id !== 'number') {
    throw new MongoError(14, 'TypeMismatch', `BSON field 'getMore.getMore' is the wrong type '${typeof id}', expected type 'long'`);
  }
  if (typeof cmd.collection !== 'string') {
    throw new MongoError(40414, 'Location40414', "BSON field 'getMore.collection' is missing but a required field");
  }
  const ns = `${db}.${cmd.collection}`;
  if (ctx.changeStreams && ctx.changeStreams.ownsCursor(Long.fromValue(id))) {
    req.changeStream = true; // its errors get the change-stream labels
    return ctx.changeStreams.getMore(db, cmd, req.conn, () => ctx.failpoints.afterCursorCheckout(req.conn, ns));
  }
  const cursor = ctx.cursors.get(id);
  if (!cursor) throw new MongoError(43, 'CursorNotFound', `cursor id ${Long.fromValue(id).toString()} not found`);
  if (cursor.ns !== ns && !cursor.ns.endsWith('.$cmd.aggregate')) {
    throw new MongoError(13, 'Unauthorized', `Requested getMore on namespace '${ns}', but cursor belongs to a different namespace ${cursor.ns}`);
  }
  try {
    ctx.failpoints.afterCursorCheckout(req.conn, ns);
  } catch (e) {
    ctx.cursors.kill(id); // a getMore that fails after checkout deletes its cursor
    throw e;
  }
  const batchSize = intOption(cmd, 'batchSize');
  return ctx.cursors.next(cursor, batchSize);
}

function killCursors(req) {
  const { cmd, ctx } = req;
  collName(cmd, 'killCursors');
  const ids = Array.isArray(cmd.cursors) ? cmd.cursors : [];
  const reply = { cursorsKilled: [], cursorsNotFound: [], cursorsAlive: [], cursorsUnknown: [] };
  for (const raw of ids) {
    const id = Long.fromValue(raw);
    let killed = false;
    if (ctx.changeStreams && ctx.changeStreams.ownsCursor(id)) {
      ctx.changeStreams.killCursor(id);
      killed = true;
    } else {
      killed = ctx.cursors.kill(id);
    }
    (killed ? reply.cursorsKilled : reply.cursorsNotFound).push(id);
  }
  return reply;
}

module.exports = {
  commands: { find, count, distinct, aggregate: aggregateCommand, getMore, killCursors },
};
