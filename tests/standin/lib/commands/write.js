// SPDX-License-Identifier: Apache-2.0
// insert, update, delete and findAndModify, with the reply shapes of the
// "Write Commands" spec and mongod: {n, nModified, upserted, writeErrors}.
// Each document written is one oplog entry (its own change event).
'use strict';
const { ObjectId } = require('bson');
const { MongoError } = require('../errors');
const { clone, valueKey, isPlainObject } = require('../store');
const { project, checkFilter } = require('../query');
const { matchIn, sortBy, unsupported } = require('../collated');
const { operationCollation } = require('../collation');
const { applyUpdate, validateUpdate, upsertSeed, describeUpdate, deepEqual, isOperatorUpdate } = require('../update');

function collName(cmd, field) {
  const name = cmd[field];
  if (typeof name !== 'string') {
    throw new MongoError(2, 'BadValue', `collection name has invalid type ${Array.isArray(name) ? 'array' : typeof name}`);
  }
  if (!name.length) throw new MongoError(73, 'InvalidNamespace', `Invalid namespace specified '${cmd.$db}.'`);
  return name;
}

// Views are read-only: a write names a collection.
function refuseView(ctx, db, name) {
  if (ctx.store.getView(db, name)) {
    throw new MongoError(166, 'CommandNotSupportedOnView', `Namespace ${db}.${name} is a view, not a collection`);
  }
}

// The collection a write command names.
function writtenName(req, field) {
  const name = collName(req.cmd, field);
  refuseView(req.ctx, req.db, name);
  return name;
}

function requireArray(cmd, field, command) {
  const v = cmd[field];
  if (!Array.isArray(v)) {
    throw new MongoError(40414, 'Location40414', `BSON field '${command}.${field}' is missing but a required field`);
  }
  return v;
}

function writeError(index, e) {
  const out = { index, code: e.code };
  for (const [k, v] of Object.entries(e.extra || {})) if (k !== 'errorLabels') out[k] = v;
  out.errmsg = e.message;
  return out;
}

// Runs statements in order; a MongoError in one becomes a writeError and,
// when ordered, stops the batch (Write Commands spec).
function runStatements(statements, ordered, fn) {
  const writeErrors = [];
  statements.forEach((s, i) => {
    if (ordered && writeErrors.length) return;
    try {
      fn(s, i);
    } catch (e) {
      // A WriteConflict (inside a transaction) fails the whole command with
      // its TransientTransactionError label, as mongod reports it.
      if (!(e instanceof MongoError) || e.code === 112) throw e;
      writeErrors.push(writeError(i, e));
    }
  });
  return writeErrors;
}

function prepareInsert(doc) {
  if (!isPlainObject(doc)) throw new MongoError(2, 'BadValue', 'document to insert must be an object');
  // mongod stores _id as the first field, generating it when missing.
  const out = { _id: doc._id === undefined ? new ObjectId() : doc._id, ...clone(doc) };
  if (Array.isArray(out._id)) throw new MongoError(53, 'InvalidIdField', "The '_id' value cannot be of type array");
  if (out._id instanceof RegExp) throw new MongoError(53, 'InvalidIdField', "The '_id' value cannot be of type regex");
  return out;
}

function insertOne(req, name, doc) {
  const coll = req.target.ensureCollection(req.db, name);
  const key = valueKey(doc._id);
  if (req.target.get(req.db, name, key)) coll.checkUnique(doc, null, new Map([[key, true]]));
  req.target.write(coll, 'insert', key, null, doc);
}

function insert(req) {
  const name = writtenName(req, 'insert');
  const docs = requireArray(req.cmd, 'documents', 'insert');
  let n = 0;
  const writeErrors = runStatements(docs, req.cmd.ordered !== false, (doc) => {
    insertOne(req, name, prepareInsert(doc));
    n++;
  });
  return finish({ n }, writeErrors, req);
}

function finish(reply, writeErrors, req) {
  if (writeErrors.length) {
    reply.writeErrors = writeErrors;
    // Any failed statement aborts a multi-document transaction.
    if (req.txn) req.txn.failed = writeErrors[0];
  }
  return reply;
}

// Update operators that compare values, which mongod does under the
// statement's collation and mingo cannot.
const COMPARING_UPDATES = ['$addToSet', '$pull', '$pullAll', '$min', '$max'];

function updateCollation(req, name, stmt, field) {
  const collation = operationCollation(req, req.db, name, stmt.collation, field);
  if (collation) {
    const op = isPlainObject(stmt.u) && COMPARING_UPDATES.find((o) => o in stmt.u);
    if (op) throw unsupported(`the update operator ${op}`);
    if (stmt.arrayFilters !== undefined) throw unsupported('arrayFilters');
  }
  return collation;
}

// Applies one update statement; returns {n, nModified, upsertedId, doc}.
function updateStatement(req, name, stmt, { returnNew = false, collationField = 'update.updates.collation' } = {}) {
  const filter = checkFilter(stmt.q, 'q');
  validateUpdate(stmt.u);
  const collation = updateCollation(req, name, stmt, collationField);
  const coll = req.target.collection(req.db, name);
  let matches = coll ? matchIn(req.target, req.db, name, filter, { limit: stmt.multi || stmt.sort ? 0 : 1, collation }) : [];
  if (stmt.sort) matches = sortBy(matches, stmt.sort, collation);
  if (!stmt.multi) matches = matches.slice(0, 1);
  if (!matches.length) {
    if (!stmt.upsert) return { n: 0, nModified: 0 };
    const isReplacement = !Array.isArray(stmt.u) && !isOperatorUpdate(stmt.u);
    const seed = upsertSeed(filter);
    const base = isReplacement ? (seed._id !== undefined ? { _id: seed._id } : {}) : seed;
    let { after } = applyUpdate(base, stmt.u, { arrayFilters: stmt.arrayFilters, filter, isInsert: true, clock: req.ctx.clock });
    // _id comes first in an inserted document, generated if still missing.
    after = { _id: after._id === undefined ? new ObjectId() : after._id, ...after };
    insertOne(req, name, after);
    return { n: 1, nModified: 0, upsertedId: after._id, doc: after };
  }
  let nModified = 0;
  let last = null;
  for (const before of matches) {
    const { after, paths, replacement } = applyUpdate(before, stmt.u, {
      arrayFilters: stmt.arrayFilters, filter, clock: req.ctx.clock, variables: stmt.variables,
    });
    last = returnNew ? after : before;
    // A no-op update writes nothing and emits no event, as mongod.
    if (deepEqual(before, after)) continue;
    const key = valueKey(before._id);
    if (replacement) req.target.write(coll, 'replace', key, before, after);
    else req.target.write(coll, 'update', key, before, after, describeUpdate(before, after, paths));
    nModified++;
  }
  return { n: matches.length, nModified, doc: last };
}

function update(req) {
  const name = writtenName(req, 'update');
  const stmts = requireArray(req.cmd, 'updates', 'update');
  let n = 0;
  let nModified = 0;
  const upserted = [];
  const writeErrors = runStatements(stmts, req.cmd.ordered !== false, (stmt, index) => {
    const r = updateStatement(req, name, stmt);
    n += r.n;
    nModified += r.nModified;
    if (r.upsertedId !== undefined) upserted.push({ index, _id: r.upsertedId });
  });
  const reply = { n, nModified };
  if (upserted.length) reply.upserted = upserted;
  return finish(reply, writeErrors, req);
}

function deleteStatement(req, name, stmt) {
  const filter = checkFilter(stmt.q, 'q');
  if (stmt.limit !== 0 && stmt.limit !== 1) {
    throw new MongoError(9, 'FailedToParse', `The limit field in delete objects must be 0 or 1. Got ${stmt.limit}`);
  }
  const collation = operationCollation(req, req.db, name, stmt.collation, 'delete.deletes.collation');
  const coll = req.target.collection(req.db, name);
  if (!coll) return 0;
  const matches = matchIn(req.target, req.db, name, filter, { limit: stmt.limit, collation });
  for (const doc of matches) req.target.write(coll, 'delete', valueKey(doc._id), doc, null);
  return matches.length;
}

function del(req) {
  const name = writtenName(req, 'delete');
  const stmts = requireArray(req.cmd, 'deletes', 'delete');
  let n = 0;
  const writeErrors = runStatements(stmts, req.cmd.ordered !== false, (stmt) => {
    n += deleteStatement(req, name, stmt);
  });
  return finish({ n }, writeErrors, req);
}

// findAndModify: {lastErrorObject: {n, updatedExisting[, upserted]}, value}.
function findAndModify(req) {
  const cmd = req.cmd;
  const name = writtenName(req, cmd.findAndModify !== undefined ? 'findAndModify' : 'findandmodify');
  const filter = checkFilter(cmd.query, 'query');
  if (cmd.remove && cmd.update !== undefined) {
    throw new MongoError(9, 'FailedToParse', 'Cannot specify both an update and remove=true');
  }
  if (!cmd.remove && cmd.update === undefined) {
    throw new MongoError(9, 'FailedToParse', 'Either an update or remove=true must be specified');
  }
  if (cmd.remove && cmd.upsert) throw new MongoError(9, 'FailedToParse', 'Cannot specify both upsert=true and remove=true');
  const coll = req.target.collection(req.db, name);
  if (cmd.remove) {
    const collation = operationCollation(req, req.db, name, cmd.collation, 'findAndModify.collation');
    let matches = coll ? matchIn(req.target, req.db, name, filter, { limit: cmd.sort ? 0 : 1, collation }) : [];
    matches = sortBy(matches, cmd.sort, collation).slice(0, 1);
    if (matches.length) req.target.write(coll, 'delete', valueKey(matches[0]._id), matches[0], null);
    return { lastErrorObject: { n: matches.length }, value: matches.length ? projectOne(matches[0], cmd.fields) : null };
  }
  const r = updateStatement(req, name, {
    q: filter, u: cmd.update, upsert: !!cmd.upsert, multi: false, sort: cmd.sort, arrayFilters: cmd.arrayFilters,
    collation: cmd.collation,
  }, { returnNew: !!cmd.new, collationField: 'findAndModify.collation' });
  const lastErrorObject = { n: r.n, updatedExisting: r.n > 0 && r.upsertedId === undefined };
  if (r.upsertedId !== undefined) lastErrorObject.upserted = r.upsertedId;
  let value = r.doc || null;
  if (r.upsertedId !== undefined && !cmd.new) value = null;
  return { lastErrorObject, value: value ? projectOne(value, cmd.fields) : null };
}

function projectOne(doc, fields) {
  return fields ? project([doc], fields)[0] : doc;
}

module.exports = {
  commands: { insert, update, delete: del, findAndModify, findandmodify: findAndModify },
  collName, refuseView, prepareInsert, insertOne, updateStatement,
};
