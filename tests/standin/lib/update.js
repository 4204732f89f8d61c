// SPDX-License-Identifier: Apache-2.0
// Applying an update document to a stored document, and describing what
// changed the way a change event's updateDescription does.
//
// Update operators come from mingo (one operator per call, as its updater
// requires); what mingo lacks or does differently from MongoDB is handled
// here: `$setOnInsert`, the positional `$`, `$currentDate` (mingo stores a
// number, MongoDB a Date or Timestamp), numeric checks of `$inc`/`$mul`, and
// the immutable `_id`. Pipeline updates run as a mingo aggregation.
'use strict';
require('mingo/init/system');
const mingo = require('mingo');
const { Timestamp, ObjectId } = require('bson');
const { MongoError } = require('./errors');
const { clone, valueKey, isPlainObject, getPath, renderDoc } = require('./store');

const ARRAY_OPERATORS = new Set(['$push', '$addToSet', '$pop', '$pull', '$pullAll']);
const PIPELINE_STAGES = new Set(['$addFields', '$set', '$project', '$unset', '$replaceRoot', '$replaceWith']);

function isOperatorUpdate(u) {
  if (!isPlainObject(u)) return false;
  const keys = Object.keys(u);
  return keys.length > 0 && keys[0].startsWith('$');
}

function validateUpdate(u) {
  if (Array.isArray(u)) {
    for (const stage of u) {
      const name = Object.keys(stage)[0];
      if (!PIPELINE_STAGES.has(name)) {
        throw new MongoError(72, 'InvalidOptions', `${name} is not allowed to be used within an update`);
      }
    }
    return;
  }
  if (!isPlainObject(u)) throw new MongoError(14, 'TypeMismatch', 'Update argument must be either an object or an array');
  const keys = Object.keys(u);
  const ops = keys.filter((k) => k.startsWith('$'));
  if (ops.length && ops.length !== keys.length) {
    throw new MongoError(9, 'FailedToParse', `Unknown modifier: ${keys.find((k) => !k.startsWith('$'))}. Expected a valid update modifier or pipeline-style update specified as an array`);
  }
  for (const op of ops) {
    if (!KNOWN_OPERATORS.has(op)) {
      throw new MongoError(9, 'FailedToParse', `Unknown modifier: ${op}. Expected a valid update modifier or pipeline-style update specified as an array`);
    }
    if (!isPlainObject(u[op]) || !Object.keys(u[op]).length) {
      throw new MongoError(9, 'FailedToParse', `'${op}' is empty. You must specify a field like so: {${op}: {<field>: ...}}`);
    }
  }
}

const KNOWN_OPERATORS = new Set([
  '$set', '$unset', '$inc', '$mul', '$min', '$max', '$rename', '$setOnInsert', '$currentDate',
  '$push', '$addToSet', '$pop', '$pull', '$pullAll', '$bit',
]);

function isNumeric(v) {
  return typeof v === 'number' || (v && (v._bsontype === 'Long' || v._bsontype === 'Decimal128' || v._bsontype === 'Int32' || v._bsontype === 'Double'));
}

// The index of the first element of the array at `arrayPath` that satisfies
// the query's condition on that array: what the positional `$` refers to.
function positionalIndex(doc, arrayPath, filter) {
  const arr = getPath(doc, arrayPath);
  if (!Array.isArray(arr)) return -1;
  const conds = {};
  for (const [k, v] of Object.entries(filter || {})) {
    if (k === arrayPath) conds.v = v;
    else if (k.startsWith(arrayPath + '.')) conds['v.' + k.slice(arrayPath.length + 1)] = v;
  }
  if (!Object.keys(conds).length) return -1;
  const q = new mingo.Query(conds);
  return arr.findIndex((e) => q.test({ v: e }));
}

function resolvePositional(doc, path, filter) {
  const parts = path.split('.');
  const i = parts.indexOf('$');
  if (i < 0) return path;
  const idx = positionalIndex(doc, parts.slice(0, i).join('.'), filter);
  if (idx < 0) {
    throw new MongoError(2, 'BadValue', 'The positional operator did not find the match needed from the query.');
  }
  parts[i] = String(idx);
  return parts.join('.');
}

function checkNumericOperator(doc, op, spec) {
  const verb = op === '$inc' ? 'increment' : 'multiply';
  for (const [path, arg] of Object.entries(spec)) {
    if (!isNumeric(arg)) {
      throw new MongoError(14, 'TypeMismatch', `Cannot ${verb} with non-numeric argument: {${path}: ${JSON.stringify(arg)}}`);
    }
    const cur = getPath(doc, path);
    if (cur !== undefined && cur !== null && !isNumeric(cur)) {
      throw new MongoError(14, 'TypeMismatch', `Cannot apply ${op} to a value of non-numeric type. {_id: ${JSON.stringify(doc._id)}} has the field '${path.split('.').pop()}' of non-numeric type ${typeof cur}`);
    }
  }
}

// The document a replacement leaves (ObjectReplaceExecutor): the old _id,
// unless the replacement carries the same one; another _id is 66.
function replaceDocument(before, replacement) {
  const after = { _id: before._id, ...replacement };
  if (replacement._id !== undefined) after._id = replacement._id;
  if (before._id !== undefined && valueKey(after._id) !== valueKey(before._id)) {
    throw new MongoError(66, 'ImmutableField', `After applying the update, the (immutable) field '_id' was found to have been altered to _id: ${renderDocValue(after._id)}`);
  }
  if (after._id === undefined) delete after._id;
  return after;
}

// Applies `u` to a copy of `before` (or to a new document on upsert) and
// returns {after, paths}: paths are the top-level-ish paths the operators
// touched, used to shape updateDescription as MongoDB's v2 oplog diffs do.
// `variables`: values a pipeline update reads as $$name ($merge's $$new).
function applyUpdate(before, u, { arrayFilters = [], filter = {}, isInsert = false, clock = null, variables } = {}) {
  if (Array.isArray(u)) {
    // mongod's PipelineExecutor hands the pipeline's output to the same
    // replacement as a replacement-style update: the _id stays (first) when
    // the output has none, and may not change.
    const [output] = mingo.aggregate([clone(before)], clone(u), variables ? { variables } : undefined);
    return { after: replaceDocument(before, output || {}), paths: null, pipeline: true };
  }
  if (!isOperatorUpdate(u)) {
    return { after: replaceDocument(before, clone(u)), paths: null, replacement: true };
  }
  const doc = clone(before);
  const paths = [];
  for (const [op, rawSpec] of Object.entries(u)) {
    if (op === '$setOnInsert' && !isInsert) continue;
    const spec = {};
    for (const [path, arg] of Object.entries(rawSpec)) {
      const p = resolvePositional(doc, path, filter);
      if (p === '_id' || p.startsWith('_id.')) {
        if (!isInsert || op !== '$set' && op !== '$setOnInsert') {
          throw new MongoError(66, 'ImmutableField', "Performing an update on the path '_id' would modify the immutable field '_id'");
        }
      }
      spec[p] = arg;
      paths.push({ op, path: p });
      if (op === '$rename') paths.push({ op, path: String(arg) });
    }
    if (op === '$currentDate') {
      for (const [path, arg] of Object.entries(spec)) {
        const ts = isPlainObject(arg) && arg.$type === 'timestamp';
        mingo.update(doc, { $set: { [path]: ts ? (clock ? clock.now() : new Timestamp({ t: Math.floor(Date.now() / 1000), i: 1 })) : new Date() } });
      }
      continue;
    }
    if (op === '$inc' || op === '$mul') checkNumericOperator(doc, op, spec);
    const mingoOp = op === '$setOnInsert' ? '$set' : op;
    mingo.update(doc, { [mingoOp]: clone(spec) }, clone(arrayFilters));
  }
  if (!isInsert && valueKey(doc._id) !== valueKey(before._id)) {
    throw new MongoError(66, 'ImmutableField', "Performing an update on the path '_id' would modify the immutable field '_id'");
  }
  return { after: doc, paths };
}

function renderDocValue(v) {
  return isPlainObject(v) ? renderDoc(v) : JSON.stringify(v);
}

// --- upsert seed ------------------------------------------------------------

// The document an upsert starts from: the equality conditions of the query
// (top-level fields, $eq and $and members), as MongoDB seeds it.
function upsertSeed(filter) {
  const doc = {};
  const add = (f) => {
    for (const [k, v] of Object.entries(f || {})) {
      if (k === '$and' && Array.isArray(v)) v.forEach(add);
      else if (k.startsWith('$')) continue;
      else if (isPlainObject(v) && Object.keys(v).length && Object.keys(v)[0].startsWith('$')) {
        if ('$eq' in v) mingo.update(doc, { $set: { [k]: clone(v.$eq) } });
      } else if (!(v instanceof RegExp)) {
        mingo.update(doc, { $set: { [k]: clone(v) } });
      }
    }
  };
  add(filter);
  return doc;
}

// --- updateDescription ------------------------------------------------------

function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') {
    return typeof a === 'number' && typeof b === 'number' ? a === b : false;
  }
  if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && deepEqual(a[k], b[k]));
  }
  if (a._bsontype && a._bsontype === b._bsontype) return valueKey(a) === valueKey(b);
  return false;
}

// Structural diff, the way MongoDB's doc_diff reports pipeline updates:
// nested documents and arrays are walked, changed leaves reported by path,
// shrunk arrays as truncatedArrays.
function structuralDiff(before, after, prefix, out) {
  for (const k of Object.keys(before)) if (!(k in after)) out.removedFields.push(prefix + k);
  for (const k of Object.keys(after)) {
    const path = prefix + k;
    if (!(k in before)) out.updatedFields[path] = after[k];
    else if (deepEqual(before[k], after[k])) continue;
    else if (isPlainObject(before[k]) && isPlainObject(after[k])) structuralDiff(before[k], after[k], path + '.', out);
    else if (Array.isArray(before[k]) && Array.isArray(after[k])) arrayDiff(before[k], after[k], path, out);
    else out.updatedFields[path] = after[k];
  }
}

function arrayDiff(a, b, path, out) {
  if (b.length < a.length) out.truncatedArrays.push({ field: path, newSize: b.length });
  for (let i = 0; i < b.length; i++) {
    if (i < a.length && deepEqual(a[i], b[i])) continue;
    if (i < a.length && isPlainObject(a[i]) && isPlainObject(b[i])) structuralDiff(a[i], b[i], `${path}.${i}.`, out);
    else out.updatedFields[`${path}.${i}`] = b[i];
  }
}

// The deepest prefix of `path` whose parent exists in `before`: setting
// `a.b.c` where `a` is missing is reported as `a: {b: {c: ...}}`.
function reportPath(before, path) {
  const parts = path.split('.');
  let cur = before;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = cur === null || typeof cur !== 'object' ? undefined : cur[parts[i]];
    if (next === null || typeof next !== 'object') return parts.slice(0, i + 1).join('.');
    cur = next;
  }
  return path;
}

function describeUpdate(before, after, paths) {
  const out = { updatedFields: {}, removedFields: [], truncatedArrays: [] };
  if (!paths) {
    structuralDiff(before, after, '', out);
    return out;
  }
  const seen = new Set();
  for (const { op, path: rawPath } of paths) {
    // `arr.$[e].x` (arrayFilters) and `arr.$[]`: diff the whole array.
    const parts = rawPath.split('.');
    const cut = parts.findIndex((s) => s.startsWith('$'));
    const path = cut >= 0 ? parts.slice(0, cut).join('.') : rawPath;
    const p = reportPath(before, path);
    if (seen.has(p)) continue;
    seen.add(p);
    const b = getPath(before, p);
    const a = getPath(after, p);
    if (deepEqual(a, b)) continue;
    if (a === undefined) out.removedFields.push(p);
    else if ((ARRAY_OPERATORS.has(op) || cut >= 0) && Array.isArray(a) && Array.isArray(b)) arrayDiff(b, a, p, out);
    else out.updatedFields[p] = a;
  }
  return out;
}

module.exports = { applyUpdate, validateUpdate, upsertSeed, describeUpdate, isOperatorUpdate, deepEqual };
