// SPDX-License-Identifier: Apache-2.0
// The writing stages of aggregate, $out and $merge (MongoDB 7.0 reference),
// applied to what the rest of the pipeline produced. Their change events are
// the ones MongoDB emits: $out inserts into a temporary collection
// `tmp.agg_out.<UUID>` of the target database (database and cluster streams
// see those inserts), then renames it over the target in one rename
// (dropTarget when it replaced a collection), which invalidates a stream on
// the target; $merge writes each document as the insert, update or replace
// its modes name, one event each, and nothing for a document it keeps.
'use strict';
const crypto = require('crypto');
const { MongoError } = require('../errors');
const { isPlainObject, valueKey, getPath, bsonTypeName } = require('../store');
const { matchDocs, aggregate } = require('../query');
const { insertOne, updateStatement, prepareInsert, refuseView } = require('./write');
const { renameOver } = require('./admin');

const WHEN_MATCHED = new Set(['replace', 'keepExisting', 'merge', 'fail']);
const WHEN_NOT_MATCHED = new Set(['insert', 'discard', 'fail']);

function checkTarget(stage, target) {
  if (target.coll.startsWith('system.')) {
    throw new MongoError(stage === '$out' ? 17385 : 31320, stage === '$out' ? 'Location17385' : 'Location31320',
      `Can't ${stage} to special collection: ${target.db}.${target.coll}`);
  }
  return target;
}

function outTarget(spec, db) {
  if (typeof spec === 'string') return checkTarget('$out', { db, coll: spec });
  if (!isPlainObject(spec)) {
    throw new MongoError(16990, 'Location16990', `$out only supports a string or object argument, but found ${bsonTypeName(spec)}`);
  }
  if (typeof spec.coll !== 'string') {
    throw new MongoError(40414, 'Location40414', "BSON field '$out.coll' is missing but a required field");
  }
  return checkTarget('$out', { db: typeof spec.db === 'string' ? spec.db : db, coll: spec.coll });
}

function mergeSpec(spec, db) {
  const parsed = { on: ['_id'], whenMatched: 'merge', whenNotMatched: 'insert' };
  if (typeof spec === 'string') return { ...parsed, target: checkTarget('$merge', { db, coll: spec }) };
  if (!isPlainObject(spec)) {
    throw new MongoError(51182, 'Location51182', `$merge only supports a string or object argument, not ${bsonTypeName(spec)}`);
  }
  if (spec.into === undefined) {
    throw new MongoError(40414, 'Location40414', "BSON field '$merge.into' is missing but a required field");
  }
  if (typeof spec.into === 'string') parsed.target = { db, coll: spec.into };
  else if (isPlainObject(spec.into) && typeof spec.into.coll === 'string') {
    parsed.target = { db: typeof spec.into.db === 'string' ? spec.into.db : db, coll: spec.into.coll };
  } else {
    throw new MongoError(51178, 'Location51178', `$merge 'into' field must be either a string or an object, but found ${bsonTypeName(spec.into)}`);
  }
  checkTarget('$merge', parsed.target);
  if (spec.on !== undefined) {
    const on = typeof spec.on === 'string' ? [spec.on] : spec.on;
    if (!Array.isArray(on) || !on.length || on.some((f) => typeof f !== 'string')) {
      throw new MongoError(51186, 'Location51186', "$merge 'on' field must be either a string or an array of strings");
    }
    parsed.on = on;
  }
  if (spec.let !== undefined && !isPlainObject(spec.let)) {
    throw new MongoError(14, 'TypeMismatch', `BSON field '$merge.let' is the wrong type '${bsonTypeName(spec.let)}', expected type 'object'`);
  }
  parsed.let = spec.let || {};
  if (spec.whenMatched !== undefined) {
    if (Array.isArray(spec.whenMatched)) {
      parsed.whenMatched = 'pipeline';
      parsed.pipeline = spec.whenMatched;
    } else if (!WHEN_MATCHED.has(spec.whenMatched)) {
      throw new MongoError(2, 'BadValue', `Enumeration value '${spec.whenMatched}' for field '$merge.whenMatched' is not a valid value.`);
    } else {
      parsed.whenMatched = spec.whenMatched;
    }
  }
  if (spec.whenNotMatched !== undefined) {
    if (!WHEN_NOT_MATCHED.has(spec.whenNotMatched)) {
      throw new MongoError(2, 'BadValue', `Enumeration value '${spec.whenNotMatched}' for field '$merge.whenNotMatched' is not a valid value.`);
    }
    parsed.whenNotMatched = spec.whenNotMatched;
  }
  return parsed;
}

// The stage that ends `pipeline`, if it writes; a writing stage anywhere
// else is MongoDB's error 40601.
function writingStage(pipeline) {
  pipeline.forEach((stage, i) => {
    const name = Object.keys(stage)[0];
    if ((name === '$out' || name === '$merge') && i !== pipeline.length - 1) {
      throw new MongoError(40601, 'Location40601', `${name} can only be the final stage in the pipeline`);
    }
  });
  const last = pipeline.length ? Object.keys(pipeline[pipeline.length - 1])[0] : undefined;
  return last === '$out' || last === '$merge' ? last : null;
}

// A request that writes to `db` (the helpers of write.js take req.db).
function writerIn(req, db) {
  return { ...req, db };
}

function dropQuietly(ctx, db, coll) {
  if (!ctx.store.getCollection(db, coll)) return;
  const ts = ctx.oplog.append([{ op: 'drop', ns: { db, coll } }], undefined);
  ctx.store.dropCollection(db, coll, ts);
}

function runOut(req, spec, docs) {
  const { ctx } = req;
  const target = outTarget(spec, req.db);
  refuseView(ctx, target.db, target.coll);
  const tempName = `tmp.agg_out.${crypto.randomUUID()}`;
  const existing = ctx.store.getCollection(target.db, target.coll);
  // The temporary collection takes the target's options and indexes, so the
  // renamed result keeps them (and unique indexes hold while it is filled).
  const temp = ctx.store.createCollection(target.db, tempName, existing ? { ...existing.options } : {});
  ctx.clock.tick();
  if (existing) for (const spec of existing.indexes.slice(1)) temp.addIndex({ ...spec });
  const writer = writerIn(req, target.db);
  try {
    for (const doc of docs) insertOne(writer, tempName, prepareInsert(doc));
  } catch (e) {
    dropQuietly(ctx, target.db, tempName);
    throw e;
  }
  renameOver(ctx, { db: target.db, coll: tempName }, target);
}

function runMerge(req, spec, docs) {
  const { ctx } = req;
  const { target, on, whenMatched, whenNotMatched, pipeline, let: letSpec } = mergeSpec(spec, req.db);
  refuseView(ctx, target.db, target.coll);
  if (!(on.length === 1 && on[0] === '_id')) {
    const coll = ctx.store.getCollection(target.db, target.coll);
    const fields = [...on].sort().join(',');
    const unique = coll && coll.indexes.some((ix) => ix.unique && Object.keys(ix.key).sort().join(',') === fields);
    if (!unique) {
      throw new MongoError(51183, 'Location51183', 'Cannot find index to verify that join fields will be unique');
    }
  }
  const writer = writerIn(req, target.db);
  for (const raw of docs) {
    const doc = prepareInsert(raw);
    const filter = {};
    for (const field of on) {
      const value = getPath(doc, field);
      if (value === undefined || value === null || Array.isArray(value)) {
        throw new MongoError(51132, 'Location51132', `$merge write error: 'on' field '${field}' cannot be missing, null, undefined or an array`);
      }
      filter[field] = value;
    }
    const matched = ctx.store.getCollection(target.db, target.coll)
      ? matchDocs(req.target, target.db, target.coll, filter, 1)[0]
      : undefined;
    if (!matched) {
      if (whenNotMatched === 'insert') insertOne(writer, target.coll, doc);
      else if (whenNotMatched === 'fail') {
        throw new MongoError(13113, 'MergeStageNoMatchingDocument',
          '$merge could not find a matching document in the target collection for at least one document in the source collection');
      }
      continue;
    }
    if (whenMatched === 'keepExisting') continue;
    if (whenMatched === 'fail') {
      insertOne(writer, target.coll, doc); // the duplicate key error MongoDB reports
      continue;
    }
    if (valueKey(matched._id) !== valueKey(doc._id) && raw._id !== undefined) {
      throw new MongoError(66, 'ImmutableField', "$merge failed to update the matching document, did you attempt to modify the _id or the shard key? :: caused by :: Performing an update on the path '_id' would modify the immutable field '_id'");
    }
    if (whenMatched === 'pipeline') {
      // The pipeline reads the incoming document as $$new (reserved: a
      // `let` cannot redefine it), and `let`'s variables, evaluated on it.
      const variables = { ...letValues(letSpec, doc), new: doc };
      updateStatement(writer, target.coll, { q: { _id: matched._id }, u: pipeline, upsert: false, variables });
      continue;
    }
    const { _id, ...fields } = doc;
    if (whenMatched === 'merge' && !Object.keys(fields).length) continue; // nothing to set
    const update = whenMatched === 'replace' ? { _id: matched._id, ...fields } : { $set: fields };
    updateStatement(writer, target.coll, { q: { _id: matched._id }, u: update, upsert: false });
  }
}

function letValues(letSpec, doc) {
  if (!Object.keys(letSpec).length) return {};
  return aggregate([doc], [{ $replaceWith: letSpec }], () => [])[0] || {};
}

// Runs the writing stage on `docs`; the aggregate's cursor is then empty.
function runWritingStage(req, stageName, spec, docs) {
  if (req.txn) {
    throw new MongoError(263, 'OperationNotSupportedInTransaction', `${stageName} cannot be used in a transaction`);
  }
  if (stageName === '$out') runOut(req, spec, docs);
  else runMerge(req, spec, docs);
}

module.exports = { writingStage, runWritingStage };
