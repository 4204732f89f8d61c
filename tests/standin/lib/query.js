// SPDX-License-Identifier: Apache-2.0
// Query matching, projection, sorting and aggregation through mingo, with
// an `_id` equality fast path (a Map lookup, as an _id index point lookup
// would be) and mingo's errors turned into MongoDB-shaped ones.
'use strict';
require('mingo/init/system');
const mingo = require('mingo');
const { ObjectId, Long } = require('bson');
const { MongoError } = require('./errors');
const { valueKey, isPlainObject, clone } = require('./store');

// mingo throws its own errors for invalid queries; MongoDB answers BadValue
// (code 2) for an unknown operator or a malformed expression.
function wrapMingo(fn) {
  try {
    return fn();
  } catch (e) {
    if (e instanceof MongoError) throw e;
    throw new MongoError(2, 'BadValue', e.message);
  }
}

function checkFilter(filter, field = 'filter') {
  if (filter !== undefined && filter !== null && !isPlainObject(filter)) {
    throw new MongoError(14, 'TypeMismatch', `BSON field '${field}' is the wrong type '${Array.isArray(filter) ? 'array' : typeof filter}', expected type 'object'`);
  }
  return filter || {};
}

function compile(filter) {
  return wrapMingo(() => new mingo.Query(filter || {}));
}

// The `_id` value of a filter that pins exactly one document, else undefined.
function pinnedId(filter) {
  if (!filter || !('_id' in filter)) return undefined;
  const v = filter._id;
  if (v === null || typeof v === 'string' || typeof v === 'number' || v instanceof ObjectId || v instanceof Long) return v;
  if (isPlainObject(v)) {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === '$eq') return pinnedId({ _id: v.$eq });
  }
  return undefined;
}

// Documents of `target` in db.coll matching `filter`, in storage order.
function matchDocs(target, db, coll, filter, limit = 0) {
  const query = compile(filter);
  const id = pinnedId(filter);
  const out = [];
  if (id !== undefined) {
    const doc = target.get(db, coll, valueKey(id));
    if (doc && wrapMingo(() => query.test(doc))) out.push(doc);
    return out;
  }
  for (const doc of target.docs(db, coll)) {
    if (wrapMingo(() => query.test(doc))) {
      out.push(doc);
      if (limit && out.length >= limit) break;
    }
  }
  return out;
}

function sortDocs(docs, sort) {
  if (!sort || !Object.keys(sort).length) return docs;
  return wrapMingo(() => mingo.find(docs, {}).sort(sort).all());
}

// mingo's projection and pipeline stages may write into their input
// documents ($set, $unset, $addFields on nested paths); stored documents are
// shared and must never change, so those run on copies.
function project(docs, projection) {
  if (!projection || !Object.keys(projection).length) return docs;
  const out = wrapMingo(() => mingo.find(docs.map(clone), {}, projection).all());
  return out.map((d, i) => reorderLike(d, docs[i]));
}

// mongod's projection keeps the stored field order for the fields it keeps
// (so `_id` stays first) and appends computed fields; mingo appends `_id`
// last. Puts the fields back in the input's order.
function reorderLike(out, input) {
  if (!isPlainObject(out) || !isPlainObject(input)) return out;
  const o = {};
  for (const k of Object.keys(input)) if (k in out) o[k] = reorderLike(out[k], input[k]);
  for (const k of Object.keys(out)) if (!(k in o)) o[k] = out[k];
  return o;
}

const NEW_ROOT_STAGES = new Set(['$replaceRoot', '$replaceWith']);

// mingo's $project ignores an expression for _id ({$project: {_id:
// "$customer"}} keeps the old _id); mongod computes it. Such a stage becomes
// one that computes it under another name, then puts it first as _id.
const COMPUTED_ID = '__standin_computed_id';

function isProjectionFlag(v) {
  return v === 0 || v === 1 || v === true || v === false;
}

function rewriteStage(stage) {
  const spec = isPlainObject(stage) && stage.$project;
  if (!isPlainObject(spec) || !('_id' in spec) || isProjectionFlag(spec._id)) return [stage];
  const { _id, ...rest } = spec;
  return [
    { $project: { ...rest, _id: 0, [COMPUTED_ID]: _id } },
    { $replaceWith: { $mergeObjects: [{ _id: `$${COMPUTED_ID}` }, '$$ROOT'] } },
    { $unset: COMPUTED_ID },
  ];
}

function aggregate(docs, pipeline, resolver) {
  const copies = (name) => resolver(name).map(clone);
  const stages = clone(pipeline).flatMap(rewriteStage);
  const out = wrapMingo(() => mingo.aggregate(docs.map(clone), stages, { collectionResolver: copies }));
  // Stages keep `_id` first in mongod ($project, $addFields, $group); mingo
  // may move it last. Not after a stage that makes a new root document.
  if (pipeline.some((st) => NEW_ROOT_STAGES.has(Object.keys(st)[0]))) return out;
  return out.map((d) => (isPlainObject(d) && '_id' in d && Object.keys(d)[0] !== '_id' ? { _id: d._id, ...d } : d));
}

module.exports = { matchDocs, sortDocs, project, aggregate, compile, checkFilter, wrapMingo, pinnedId };
