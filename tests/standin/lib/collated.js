// SPDX-License-Identifier: Apache-2.0
// Queries, sorts, groups and distinct values under a collation, through
// mingo. Every string an operation compares is replaced by a key, its rank
// among all those strings in the collation's order, so mingo's own binary
// comparisons give the collated answer (what mongod does with ICU sort keys);
// the documents returned are the originals. Conditions on a string's text
// rather than its order ($regex, $text, $jsonSchema) run on the original
// document, as mongod runs them without the collation.
'use strict';
const { MongoError } = require('./errors');
const { isPlainObject, valueKey, renderDoc } = require('./store');
const { compile, aggregate, wrapMingo, matchDocs, sortDocs, pinnedId } = require('./query');
const mingo = require('mingo');

function unsupported(what) {
  return new MongoError(115, 'CommandNotSupported', `${what} under a non-simple collation is not implemented by the stand-in`);
}

// Operator arguments that are not values to compare (a type name is a string).
const NOT_COMPARED = new Set(['$type', '$exists', '$size', '$mod', '$regex', '$options', '$bitsAllSet', '$bitsAnySet',
  '$bitsAllClear', '$bitsAnyClear', '$comment', '$geoWithin', '$geoIntersects', '$near', '$nearSphere']);
const ON_ORIGINAL = new Set(['$text', '$jsonSchema', '$comment']);
const LOGICAL = new Set(['$and', '$or', '$nor']);
const REFUSED = new Set(['$expr', '$where', '$function']);

function isRegex(v) {
  return v instanceof RegExp || (v && v._bsontype === 'BSONRegExp');
}

// Whether a filter part holds something that must see the original text.
function needsOriginal(v) {
  if (isRegex(v)) return true;
  if (Array.isArray(v)) return v.some(needsOriginal);
  if (!isPlainObject(v)) return false;
  return Object.entries(v).some(([k, x]) => k === '$regex' || ON_ORIGINAL.has(k) || needsOriginal(x));
}

function checkRefused(v) {
  if (Array.isArray(v)) return v.forEach(checkRefused);
  if (!isPlainObject(v)) return;
  for (const [k, x] of Object.entries(v)) {
    if (REFUSED.has(k)) throw unsupported(k);
    checkRefused(x);
  }
}

// Maps every compared string of a filter value through `fn`.
function mapFilterStrings(v, fn) {
  if (typeof v === 'string') return fn(v);
  if (Array.isArray(v)) return v.map((e) => mapFilterStrings(e, fn));
  if (!isPlainObject(v)) return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = NOT_COMPARED.has(k) ? x : mapFilterStrings(x, fn);
  return out;
}

// Maps every string of a stored value through `fn`.
function mapStrings(v, fn) {
  if (typeof v === 'string') return fn(v);
  if (Array.isArray(v)) return v.map((e) => mapStrings(e, fn));
  if (!isPlainObject(v)) return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = mapStrings(x, fn);
  return out;
}

function collect(strings) {
  return (s) => {
    strings.add(s);
    return s;
  };
}

// Rank keys for a set of strings: equal under the collation, equal keys;
// the keys' binary order is the collation's order.
function rankKeys(strings, collation) {
  const sorted = [...strings].sort((a, b) => collation.compare(a, b));
  const keys = new Map();
  let rank = 0;
  sorted.forEach((s, i) => {
    if (i && collation.compare(sorted[i - 1], s) !== 0) rank++;
    keys.set(s, rank.toString(36).padStart(8, '0'));
  });
  return (s) => keys.get(s);
}

// A filter compiled for a collation: its compared strings, and `bind(key)`
// giving a test of (document, keyed copy) once every key is known.
function compileFilter(filter) {
  const onOriginal = {};
  const onKeyed = {};
  const logical = [];
  for (const [k, v] of Object.entries(filter)) {
    checkRefused({ [k]: v });
    if (LOGICAL.has(k) && Array.isArray(v) && needsOriginal(v)) {
      logical.push([k, v.map((f) => compileFilter(isPlainObject(f) ? f : {}))]);
    } else if (ON_ORIGINAL.has(k) || (!k.startsWith('$') && isRegex(v))) {
      onOriginal[k] = v;
    } else if (!k.startsWith('$') && isPlainObject(v) && Object.keys(v)[0]?.startsWith('$')) {
      for (const [op, arg] of Object.entries(v)) {
        const textual = op === '$regex' || op === '$options' || (op === '$not' && needsOriginal(arg));
        if (!textual && needsOriginal(arg)) throw unsupported(`a regular expression inside ${op}`);
        (textual ? (onOriginal[k] ||= {}) : (onKeyed[k] ||= {}))[op] = arg;
      }
    } else {
      onKeyed[k] = v;
    }
  }
  const strings = new Set();
  mapFilterStrings(onKeyed, collect(strings));
  for (const [, nodes] of logical) for (const n of nodes) for (const s of n.strings) strings.add(s);
  return {
    strings,
    bind(key) {
      const original = Object.keys(onOriginal).length ? compile(onOriginal) : null;
      const keyed = compile(mapFilterStrings(onKeyed, key));
      const branches = logical.map(([op, nodes]) => [op, nodes.map((n) => n.bind(key))]);
      return (doc, keyedDoc) =>
        (!original || wrapMingo(() => original.test(doc))) &&
        wrapMingo(() => keyed.test(keyedDoc)) &&
        branches.every(([op, tests]) =>
          op === '$and' ? tests.every((t) => t(doc, keyedDoc))
            : op === '$or' ? tests.some((t) => t(doc, keyedDoc)) : !tests.some((t) => t(doc, keyedDoc)));
    },
  };
}

// Keys for the strings of `docs` (and of `extra`) under `collation`.
function keysFor(docs, collation, extra = []) {
  const strings = new Set(extra);
  for (const d of docs) mapStrings(d, collect(strings));
  return rankKeys(strings, collation);
}

function matchCollated(docs, filter, collation, limit = 0) {
  const node = compileFilter(filter || {});
  const key = keysFor(docs, collation, node.strings);
  const test = node.bind(key);
  const out = [];
  for (const doc of docs) {
    if (!test(doc, mapStrings(doc, key))) continue;
    out.push(doc);
    if (limit && out.length >= limit) break;
  }
  return out;
}

function sortCollated(docs, sort, collation) {
  if (!sort || !Object.keys(sort).length) return docs;
  const key = keysFor(docs, collation);
  const originals = new Map();
  const keyed = docs.map((d) => {
    const k = mapStrings(d, key);
    originals.set(k, d);
    return k;
  });
  return wrapMingo(() => mingo.find(keyed, {}).sort(sort).all()).map((k) => originals.get(k));
}

// The distinct values among `values`, the first of each collated class.
function distinctCollated(values, collation) {
  const key = keysFor(values, collation);
  const seen = new Map();
  for (const v of values) {
    const k = valueKey(mapStrings(v, key));
    if (!seen.has(k)) seen.set(k, v);
  }
  return [...seen.values()];
}

// Aggregation operators that compare values: refused in computed fields,
// whose expressions mingo evaluates without the collation.
const COMPARING = new Set(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$cmp', '$in', '$indexOfArray', '$setEquals',
  '$setIntersection', '$setUnion', '$setDifference', '$setIsSubset', '$max', '$min', '$sortArray', '$addToSet',
  '$maxN', '$minN', '$top', '$topN', '$bottom', '$bottomN']);

function checkNoComparison(v, stage) {
  if (Array.isArray(v)) return v.forEach((e) => checkNoComparison(e, stage));
  if (!isPlainObject(v)) return;
  for (const [k, x] of Object.entries(v)) {
    if (COMPARING.has(k)) throw unsupported(`${k} in ${stage}`);
    checkNoComparison(x, stage);
  }
}

const PASS_THROUGH = new Set(['$limit', '$skip', '$count', '$unwind', '$sample', '$out']);
const COMPUTING = new Set(['$project', '$addFields', '$set', '$unset', '$replaceRoot', '$replaceWith']);
const GROUP_ID = '__standin_group_id';
const GROUP_FIRST = '__standin_group_first';

// $group by the collated value of its _id: mingo groups by the key, and the
// group's _id is the first document's value, as mongod reports one of them.
function groupCollated(docs, spec, collation) {
  checkNoComparison(Object.entries(spec).filter(([k]) => k !== '_id').map(([, v]) => v), '$group');
  const withIds = aggregate(docs, [{ $addFields: { [GROUP_ID]: spec._id === undefined ? null : spec._id } }], () => []);
  const key = keysFor(withIds.map((d) => d[GROUP_ID] ?? null), collation);
  const keyed = withIds.map((d) => ({ ...d, [GROUP_FIRST]: d[GROUP_ID] ?? null, [GROUP_ID]: mapStrings(d[GROUP_ID] ?? null, key) }));
  const { _id, ...accumulators } = spec;
  const grouped = aggregate(keyed, [{ $group: { _id: `$${GROUP_ID}`, [GROUP_FIRST]: { $first: `$${GROUP_FIRST}` }, ...accumulators } }], () => []);
  return grouped.map(({ _id: ignored, [GROUP_FIRST]: first, ...rest }) => ({ _id: first, ...rest }));
}

// A pipeline under a collation, stage by stage: $match, $sort and $group
// collated here, stages that compare nothing through mingo, others refused.
function aggregateCollated(docs, pipeline, resolver, collation) {
  let out = docs;
  for (const stage of pipeline) {
    const name = isPlainObject(stage) ? Object.keys(stage)[0] : undefined;
    const spec = name && stage[name];
    if (name === '$match') out = matchCollated(out, spec, collation);
    else if (name === '$sort') out = sortCollated(out, spec, collation);
    else if (name === '$group') out = groupCollated(out, spec, collation);
    else if (name === '$sortByCount') {
      out = sortCollated(groupCollated(out, { _id: spec, count: { $sum: 1 } }, collation), { count: -1 }, collation);
    } else if (PASS_THROUGH.has(name)) out = aggregate(out, [stage], resolver);
    else if (COMPUTING.has(name)) {
      checkNoComparison(spec, name);
      out = aggregate(out, [stage], resolver);
    } else throw unsupported(`the stage ${name || renderDoc(stage)}`);
  }
  return out;
}

// The documents of db.coll matching `filter` under `collation` (null: the
// simple, binary collation). An `_id` that is not a string is still found
// by its key, as a point lookup on the collated _id index would.
function matchIn(target, db, coll, filter, { limit = 0, collation = null } = {}) {
  if (!collation) return matchDocs(target, db, coll, filter, limit);
  const id = pinnedId(filter);
  let candidates;
  if (id !== undefined && typeof id !== 'string') {
    const doc = target.get(db, coll, valueKey(id));
    candidates = doc ? [doc] : [];
  } else {
    candidates = [...target.docs(db, coll)];
  }
  return matchCollated(candidates, filter, collation, limit);
}

function sortBy(docs, sort, collation) {
  return collation ? sortCollated(docs, sort, collation) : sortDocs(docs, sort);
}

function aggregateBy(docs, pipeline, resolver, collation) {
  return collation ? aggregateCollated(docs, pipeline, resolver, collation) : aggregate(docs, pipeline, resolver);
}

// Canonical forms under a collation, for a unique index: strings equal
// under it map to one representative (the first seen), kept sorted.
function canonicalizer(collation) {
  if (!collation) return (v) => v;
  const representatives = [];
  const canonical = (s) => {
    let lo = 0, hi = representatives.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const c = collation.compare(representatives[mid], s);
      if (c === 0) return representatives[mid];
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    representatives.splice(lo, 0, s);
    return s;
  };
  return (v) => mapStrings(v, canonical);
}

module.exports = { canonicalizer, matchIn, sortBy, aggregateBy, distinctCollated, unsupported };
