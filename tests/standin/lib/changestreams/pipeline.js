// SPDX-License-Identifier: Apache-2.0
// The stages a user may put after $changeStream, run on each event with
// mingo (MongoDB's query language in JS). Only the stages MongoDB allows in a
// change-stream pipeline are accepted (pipeline.cpp: "... is not permitted in
// a $changeStream pipeline"; DocumentSource constraints isAllowedInChangeStream).
'use strict';
require('mingo/init/system'); // registers every operator ($addFields, $redact, ...)
const { Aggregator, Query } = require('mingo');
const { MongoError } = require('../errors');
const { isPlainDoc } = require('./options');

const ALLOWED = new Set([
  '$match', '$project', '$addFields', '$set', '$unset', '$replaceRoot', '$replaceWith', '$redact',
  '$changeStreamSplitLargeEvent',
]);
const KNOWN_OTHER = new Set([
  '$bucket', '$bucketAuto', '$collStats', '$count', '$densify', '$documents', '$facet', '$fill',
  '$geoNear', '$graphLookup', '$group', '$indexStats', '$limit', '$listSessions', '$lookup', '$merge',
  '$out', '$sample', '$search', '$searchMeta', '$setWindowFields', '$skip', '$sort', '$sortByCount',
  '$unionWith', '$unwind', '$vectorSearch', '$currentOp', '$listLocalSessions', '$planCacheStats',
]);

// Shallow-typed deep copy: plain objects and arrays are copied, BSON values
// shared. Stages other than $match may mutate what they are given.
function copy(v) {
  if (Array.isArray(v)) return v.map(copy);
  if (isPlainDoc(v)) {
    const o = {};
    for (const k of Object.keys(v)) o[k] = copy(v[k]);
    return o;
  }
  return v;
}

// mingo compares JS numbers; the stand-in keeps 64-bit integers as bson Long.
// $match therefore looks at a copy where numeric wrappers are plain numbers.
function numericView(v) {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(numericView);
  if (v._bsontype === 'Long') return v.toNumber();
  if (v._bsontype === 'Int32' || v._bsontype === 'Double') return Number(v.valueOf());
  if (!isPlainDoc(v)) return v;
  const o = {};
  for (const k of Object.keys(v)) o[k] = numericView(v[k]);
  return o;
}

// MongoDB's inclusion $project keeps the input's field order (so `_id`
// stays first); mingo appends `_id` last. Put fields back in input order.
function reorderLike(out, input) {
  if (!isPlainDoc(out) || !isPlainDoc(input)) return out;
  const o = {};
  for (const k of Object.keys(input)) if (k in out) o[k] = reorderLike(out[k], input[k]);
  for (const k of Object.keys(out)) if (!(k in o)) o[k] = out[k];
  return o;
}

function fromMingo(e) {
  return new MongoError(2, 'BadValue', String(e && e.message ? e.message : e));
}

// Validates the stages after $changeStream and returns apply(event) ->
// event | null. Throws MongoDB's errors for malformed or forbidden stages.
function compile(stages) {
  const steps = [];
  for (const stage of stages) {
    if (!isPlainDoc(stage)) {
      throw new MongoError(14, 'TypeMismatch', "Each element of the 'pipeline' array must be an object");
    }
    const keys = Object.keys(stage);
    if (keys.length !== 1) {
      throw new MongoError(40323, 'Location40323', 'A pipeline stage specification object must contain exactly one field.');
    }
    const name = keys[0];
    if (name === '$changeStream') {
      throw new MongoError(40602, 'Location40602', '$changeStream is only valid as the first stage in a pipeline');
    }
    if (!ALLOWED.has(name)) {
      if (!KNOWN_OTHER.has(name)) {
        throw new MongoError(40324, 'Location40324', `Unrecognized pipeline stage name: '${name}'`);
      }
      throw new MongoError(20, 'IllegalOperation', `${name} is not permitted in a $changeStream pipeline`);
    }
    steps.push(compileStage(name, stage[name]));
  }
  if (steps.length === 0) return null;
  return (event) => {
    let doc = event;
    let copied = false;
    for (const step of steps) {
      if (step.match) {
        if (!step.match(doc)) return null;
        continue;
      }
      if (!copied) {
        doc = copy(doc);
        copied = true;
      }
      doc = step.transform(doc);
      if (!doc) return null;
    }
    return doc;
  };
}

function compileStage(name, arg) {
  if (name === '$changeStreamSplitLargeEvent') return { transform: (d) => d }; // no event nears 16 MB here
  if (name === '$match') {
    if (!isPlainDoc(arg)) throw new MongoError(15959, 'Location15959', 'the match filter must be an expression in an object');
    let query;
    try {
      query = new Query(arg);
    } catch (e) {
      throw fromMingo(e);
    }
    return { match: (doc) => query.test(numericView(doc)) };
  }
  const agg = new Aggregator([{ [name]: arg }]);
  return {
    transform(doc) {
      let out;
      try {
        out = agg.run([doc]);
      } catch (e) {
        const err = fromMingo(e);
        err.duringExecution = true;
        throw err;
      }
      if (!out.length) return null;
      return name === '$project' ? reorderLike(out[0], doc) : out[0];
    },
  };
}

module.exports = { compile };
