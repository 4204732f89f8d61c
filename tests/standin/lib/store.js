// SPDX-License-Identifier: Apache-2.0
// The stand-in's in-memory data: databases of collections, each an `_id`-keyed
// Map (O(1) per write, no scan on the hot path), index specs with unique
// indexes enforced through their own key Maps, and a bounded history of
// document versions so snapshot reads at an older clusterTime can be served
// ("minSnapshotHistoryWindowInSeconds" plays this role in MongoDB).
//
// Stored documents are never mutated: a write replaces the object, so readers
// (cursors) may keep references without copying.
'use strict';
const crypto = require('crypto');
const { Binary, ObjectId, EJSON, Long, Timestamp } = require('bson');
const { MongoError } = require('./errors');

// --- values ---------------------------------------------------------------

function isPlainObject(v) {
  if (v === null || typeof v !== 'object') return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

// Deep copy of plain objects and arrays; BSON value objects (ObjectId, Long,
// Binary, ...) are immutable in practice and shared.
// BSON type names as the server's typeName() spells them, for TypeMismatch
// messages.
function bsonTypeName(v) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'date';
  if (v instanceof RegExp) return 'regex';
  switch (typeof v) {
    case 'string': return 'string';
    case 'boolean': return 'bool';
    case 'number': return Number.isInteger(v) ? 'int' : 'double';
    case 'bigint': return 'long';
    default: break;
  }
  const names = {
    ObjectId: 'objectId', Long: 'long', Int32: 'int', Double: 'double', Decimal128: 'decimal',
    Timestamp: 'timestamp', Binary: 'binData', MinKey: 'minKey', MaxKey: 'maxKey', Code: 'javascript',
    BSONRegExp: 'regex', BSONSymbol: 'symbol', DBRef: 'object',
  };
  return names[v._bsontype] || 'object';
}

function clone(v) {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(clone);
  if (v instanceof Date) return new Date(v.getTime());
  if (isPlainObject(v)) {
    const o = {};
    for (const k of Object.keys(v)) o[k] = clone(v[k]);
    return o;
  }
  return v;
}

// A Map key for an `_id` (or index key) value. Numbers compare by value across
// int32/int64/double as MongoDB does, so they share one form.
function valueKey(v) {
  if (typeof v === 'number') return 'n:' + v;
  if (typeof v === 'string') return 's:' + v;
  if (v instanceof ObjectId) return 'o:' + v.toHexString();
  if (v instanceof Long) return 'n:' + v.toString();
  if (v === null || v === undefined) return 'z:';
  return 'j:' + EJSON.stringify(v, { relaxed: true });
}

// Shell-like rendering used in E11000 messages: `{ _id: 1 }`,
// `{ name: "x" }`, `{ _id: ObjectId('...') }` (MongoDB's dup key format).
function renderValue(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v instanceof ObjectId) return `ObjectId('${v.toHexString()}')`;
  if (v instanceof Date) return `new Date(${v.getTime()})`;
  if (v instanceof Long) return String(v);
  if (Array.isArray(v)) return '[ ' + v.map(renderValue).join(', ') + ' ]';
  if (isPlainObject(v)) return renderDoc(v);
  return EJSON.stringify(v);
}

function renderDoc(doc) {
  const keys = Object.keys(doc);
  if (!keys.length) return '{}';
  return '{ ' + keys.map((k) => `${k}: ${renderValue(doc[k])}`).join(', ') + ' }';
}

function getPath(doc, path) {
  let cur = doc;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = cur[part];
  }
  return cur;
}

function tsCompare(a, b) {
  const ah = a.high >>> 0, bh = b.high >>> 0;
  if (ah !== bh) return ah < bh ? -1 : 1;
  const al = a.low >>> 0, bl = b.low >>> 0;
  return al === bl ? 0 : al < bl ? -1 : 1;
}

function newUuid() {
  return new Binary(crypto.randomBytes(16), Binary.SUBTYPE_UUID);
}

// --- collections ----------------------------------------------------------

const ID_INDEX = Object.freeze({ v: 2, key: { _id: 1 }, name: '_id_' });

class Collection {
  constructor(db, name, options = {}) {
    this.db = db;
    this.name = name;
    this.uuid = newUuid();
    this.options = clone(options);
    this.docs = new Map(); // valueKey(_id) -> document
    this.lastWrite = new Map(); // valueKey(_id) -> Timestamp of its last write
    const idIndex = { ...ID_INDEX, key: { _id: 1 } };
    if (this.options.collation) idIndex.collation = clone(this.options.collation);
    this.indexes = [idIndex];
    this.unique = []; // [{spec, fields, entries: Map(key -> idKey)}]
  }

  get ns() {
    return `${this.db}.${this.name}`;
  }

  // Index key of a document for a unique index: the tuple of its field values
  // (missing counts as null, as MongoDB's unique indexes do).
  static indexKey(u, doc) {
    const values = u.fields.map((f) => getPath(doc, f));
    if (u.spec.sparse && values.every((v) => v === undefined)) return null;
    if (u.spec.partialFilterExpression) return null; // not enforced: see README
    // A collated index compares strings by its collation: equal ones share
    // one canonical form.
    return values.map((v) => valueKey(u.canonical(v === undefined ? null : v))).join('|');
  }

  duplicateKeyError(u, doc) {
    const keyValue = {};
    for (const f of u.fields) {
      const v = getPath(doc, f);
      keyValue[f] = v === undefined ? null : v;
    }
    return dupKeyError(this.ns, u.spec.name, u.spec.key, keyValue);
  }

  // Throws E11000 if `doc` would collide with another document (other than
  // the one stored under `selfKey`) on any unique index, `_id` included.
  checkUnique(doc, selfKey, docs = this.docs) {
    const key = valueKey(doc._id);
    if (key !== selfKey && docs.has(key)) {
      throw dupKeyError(this.ns, '_id_', { _id: 1 }, { _id: doc._id });
    }
    for (const u of this.unique) {
      const k = Collection.indexKey(u, doc);
      if (k === null) continue;
      const owner = u.entries.get(k);
      if (owner !== undefined && owner !== selfKey && owner !== key) throw this.duplicateKeyError(u, doc);
    }
  }

  // Replaces (or removes, when `after` is null) the document under `key`,
  // keeping unique-index entries in step.
  put(key, after, ts) {
    const before = this.docs.get(key);
    for (const u of this.unique) {
      if (before) {
        const k = Collection.indexKey(u, before);
        if (k !== null && u.entries.get(k) === key) u.entries.delete(k);
      }
      if (after) {
        const k = Collection.indexKey(u, after);
        if (k !== null) u.entries.set(k, key);
      }
    }
    if (after) this.docs.set(key, after);
    else this.docs.delete(key);
    if (ts) this.lastWrite.set(key, ts);
    return before || null;
  }

  // `canonical` maps a value to its canonical form under the index's
  // collation (identity for the simple collation).
  addIndex(spec, canonical = (v) => v) {
    this.indexes.push(spec);
    if (!spec.unique) return;
    this.addUnique(spec, canonical);
  }

  // The _id index of a collection with a default collation is collated too:
  // {_id: "A"} and {_id: "a"} collide under strength 2.
  collateIds(canonical) {
    this.addUnique(this.indexes[0], canonical);
  }

  addUnique(spec, canonical) {
    const u = { spec, fields: Object.keys(spec.key), entries: new Map(), canonical };
    for (const [key, doc] of this.docs) {
      const k = Collection.indexKey(u, doc);
      if (k === null) continue;
      if (u.entries.has(k)) {
        if (spec !== this.indexes[0]) this.indexes.pop();
        throw this.duplicateKeyError(u, doc);
      }
      u.entries.set(k, key);
    }
    this.unique.push(u);
  }

  dropIndex(name) {
    this.indexes = this.indexes.filter((i) => i.name !== name);
    this.unique = this.unique.filter((u) => u.spec.name !== name);
  }
}

function dupKeyError(ns, indexName, keyPattern, keyValue) {
  return new MongoError(
    11000,
    'DuplicateKey',
    `E11000 duplicate key error collection: ${ns} index: ${indexName} dup key: ${renderDoc(keyValue)}`,
    { keyPattern, keyValue }
  );
}

// --- the store ------------------------------------------------------------

class Store {
  constructor({ clock, historyLimit = 100000 } = {}) {
    this.clock = clock;
    this.databases = new Map(); // db -> Map(name -> Collection)
    // Views, per database: {uuid of its system.views, views: Map(name -> {viewOn, pipeline})}
    this.viewCatalogs = new Map();
    // Document versions for snapshot reads: entries {ts, db, coll, key, before}
    // in write order; the oldest are evicted past historyLimit.
    this.history = [];
    this.historyHead = 0;
    this.historyLimit = historyLimit;
    this.historyStart = clock ? clock.now() : new Timestamp({ t: 0, i: 0 });
  }

  getCollection(db, name) {
    const d = this.databases.get(db);
    return (d && d.get(name)) || null;
  }

  listDatabases() {
    return [...new Set([...this.databases.keys(), ...this.viewCatalogs.keys()])];
  }

  getView(db, name) {
    const catalog = this.viewCatalogs.get(db);
    return (catalog && catalog.views.get(name)) || null;
  }

  // The database's views and the UUID of the system.views collection that
  // holds them in MongoDB (listCollections shows it); null: none.
  viewCatalog(db) {
    return this.viewCatalogs.get(db) || null;
  }

  createView(db, name, viewOn, pipeline, collation) {
    let catalog = this.viewCatalogs.get(db);
    if (!catalog) {
      catalog = { uuid: newUuid(), views: new Map() };
      this.viewCatalogs.set(db, catalog);
    }
    catalog.views.set(name, collation ? { viewOn, pipeline, collation } : { viewOn, pipeline });
  }

  dropView(db, name) {
    const catalog = this.viewCatalogs.get(db);
    if (catalog) catalog.views.delete(name);
  }

  dropViews(db) {
    this.viewCatalogs.delete(db);
  }

  listCollections(db) {
    const d = this.databases.get(db);
    return d ? [...d.values()] : [];
  }

  createCollection(db, name, options = {}) {
    let d = this.databases.get(db);
    if (!d) {
      d = new Map();
      this.databases.set(db, d);
    }
    const c = new Collection(db, name, options);
    d.set(name, c);
    return c;
  }

  // Implicit creation on first insert/upsert/createIndexes, as mongod does.
  ensureCollection(db, name) {
    const c = this.getCollection(db, name);
    if (c) return { coll: c, created: false };
    return { coll: this.createCollection(db, name), created: true };
  }

  dropCollection(db, name, ts) {
    const d = this.databases.get(db);
    const c = d && d.get(name);
    if (!c) return null;
    for (const [key, doc] of c.docs) this.recordHistory(ts, db, name, key, doc);
    d.delete(name);
    if (!d.size) this.databases.delete(db);
    return c;
  }

  renameCollection(fromDb, fromName, toDb, toName) {
    const c = this.getCollection(fromDb, fromName);
    this.databases.get(fromDb).delete(fromName);
    if (!this.databases.get(fromDb).size) this.databases.delete(fromDb);
    c.db = toDb;
    c.name = toName;
    let d = this.databases.get(toDb);
    if (!d) {
      d = new Map();
      this.databases.set(toDb, d);
    }
    d.set(toName, c);
    return c;
  }

  // Applies one document write: `after` null removes. Records the previous
  // version for snapshot reads.
  write(coll, key, after, ts) {
    const before = coll.put(key, after, ts);
    this.recordHistory(ts, coll.db, coll.name, key, before);
    return before;
  }

  recordHistory(ts, db, coll, key, before) {
    if (!ts) return;
    this.history.push({ ts, db, coll, key, before });
    if (this.history.length - this.historyHead > this.historyLimit) {
      this.historyStart = this.history[this.historyHead].ts;
      this.history[this.historyHead++] = undefined;
      if (this.historyHead > 4096 && this.historyHead * 2 > this.history.length) {
        this.history = this.history.slice(this.historyHead);
        this.historyHead = 0;
      }
    }
  }

  // The documents of a collection as they were at `ts`, rebuilt by undoing
  // the newer writes. Throws SnapshotTooOld (239) past the kept history.
  docsAt(db, name, ts) {
    if (tsCompare(ts, this.historyStart) < 0) {
      throw new MongoError(
        239,
        'SnapshotTooOld',
        `Read timestamp ${tsString(ts)} is older than the oldest available timestamp.`
      );
    }
    const c = this.getCollection(db, name);
    const docs = new Map(c ? c.docs : []);
    for (let i = this.history.length - 1; i >= this.historyHead; i--) {
      const h = this.history[i];
      if (tsCompare(h.ts, ts) <= 0) break;
      if (h.db !== db || h.coll !== name) continue;
      if (h.before) docs.set(h.key, h.before);
      else docs.delete(h.key);
    }
    return docs;
  }

  // One document as it was at `ts`: O(writes since ts), no collection copy.
  getAt(db, name, key, ts) {
    if (tsCompare(ts, this.historyStart) < 0) return this.docsAt(db, name, ts).get(key);
    const c = this.getCollection(db, name);
    let doc = c ? c.docs.get(key) : undefined;
    for (let i = this.history.length - 1; i >= this.historyHead; i--) {
      const h = this.history[i];
      if (tsCompare(h.ts, ts) <= 0) break;
      if (h.key === key && h.db === db && h.coll === name) doc = h.before || undefined;
    }
    return doc;
  }

  // --- the interface the change-stream module uses -----------------------

  lookup(db, name, id) {
    const c = this.getCollection(db, name);
    if (!c) return null;
    const doc = c.docs.get(valueKey(id));
    return doc ? clone(doc) : null;
  }

  collectionInfo(db, name) {
    const c = this.getCollection(db, name);
    return c ? { uuid: c.uuid, options: clone(c.options) } : null;
  }
}

function tsString(ts) {
  return `Timestamp(${ts.high >>> 0}, ${ts.low >>> 0})`;
}

module.exports = {
  Store, Collection, clone, valueKey, renderDoc, renderValue, getPath, isPlainObject, bsonTypeName,
  tsCompare, tsString, dupKeyError, newUuid,
};
