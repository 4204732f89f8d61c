// SPDX-License-Identifier: Apache-2.0
// Fixtures for the change-stream unit tests: a real clock and oplog, a fake
// store (a Map per namespace) and fake connections.
'use strict';
const { Binary } = require('bson');
const { ClusterClock } = require('../lib/clock');
const { Oplog } = require('../lib/oplog');
const { ChangeStreams } = require('../lib/changestreams');

class FakeStore {
  constructor() {
    this.colls = new Map(); // "db.coll" -> {uuid, options, docs: Map}
  }

  coll(db, name, options = {}) {
    const key = `${db}.${name}`;
    if (!this.colls.has(key)) {
      this.colls.set(key, { uuid: new Binary(require('crypto').randomBytes(16), 4), options, docs: new Map() });
    }
    return this.colls.get(key);
  }

  lookup(db, name, id) {
    const c = this.colls.get(`${db}.${name}`);
    return (c && c.docs.get(String(id))) || null;
  }

  collectionInfo(db, name) {
    const c = this.colls.get(`${db}.${name}`);
    return c ? { uuid: c.uuid, options: c.options } : null;
  }
}

function fakeConn(id = 1) {
  const closers = [];
  return {
    id,
    closed: false,
    onClose(fn) {
      closers.push(fn);
    },
    close() {
      this.closed = true;
      for (const fn of closers) fn();
    },
  };
}

// A small world: writes go to the fake store and the oplog, as the core does.
function makeWorld({ maxEvents = 1000, standalone = false, version = '7.0' } = {}) {
  const clock = new ClusterClock();
  const oplog = new Oplog({ clock, maxEvents });
  const store = new FakeStore();
  const cs = new ChangeStreams({ clock, oplog, store, standalone, version });
  const conn = fakeConn();
  const ns = (db, coll) => ({ db, coll });
  const imagesOn = (db, coll) => {
    const c = store.colls.get(`${db}.${coll}`);
    return !!(c && c.options.changeStreamPreAndPostImages && c.options.changeStreamPreAndPostImages.enabled);
  };

  const world = {
    clock, oplog, store, cs, conn,
    insert(db, coll, doc, txn) {
      store.coll(db, coll).docs.set(String(doc._id), doc);
      return oplog.append([{ op: 'insert', ns: ns(db, coll), documentKey: { _id: doc._id }, fullDocument: doc,
        preAndPostImagesEnabled: imagesOn(db, coll) }], txn);
    },
    update(db, coll, id, set) {
      const c = store.coll(db, coll);
      const before = c.docs.get(String(id));
      const after = { ...before, ...set };
      c.docs.set(String(id), after);
      return oplog.append([{ op: 'update', ns: ns(db, coll), documentKey: { _id: id }, fullDocument: after,
        fullDocumentBeforeChange: before, preAndPostImagesEnabled: imagesOn(db, coll),
        updateDescription: { updatedFields: set, removedFields: [], truncatedArrays: [] } }]);
    },
    replace(db, coll, id, doc) {
      const c = store.coll(db, coll);
      const before = c.docs.get(String(id));
      c.docs.set(String(id), doc);
      return oplog.append([{ op: 'replace', ns: ns(db, coll), documentKey: { _id: id }, fullDocument: doc,
        fullDocumentBeforeChange: before, preAndPostImagesEnabled: imagesOn(db, coll) }]);
    },
    remove(db, coll, id) {
      const c = store.coll(db, coll);
      const before = c.docs.get(String(id));
      c.docs.delete(String(id));
      return oplog.append([{ op: 'delete', ns: ns(db, coll), documentKey: { _id: id },
        fullDocumentBeforeChange: before, preAndPostImagesEnabled: imagesOn(db, coll) }]);
    },
    drop(db, coll) {
      const ts = oplog.append([{ op: 'drop', ns: ns(db, coll) }]);
      store.colls.delete(`${db}.${coll}`);
      return ts;
    },
    rename(db, coll, toDb, toColl) {
      const c = store.colls.get(`${db}.${coll}`);
      store.colls.delete(`${db}.${coll}`);
      if (c) store.colls.set(`${toDb}.${toColl}`, c);
      return oplog.append([{ op: 'rename', ns: ns(db, coll), to: ns(toDb, toColl) }]);
    },
    dropDatabase(db) {
      const entries = [];
      for (const key of [...store.colls.keys()]) {
        if (key.startsWith(db + '.')) {
          entries.push({ op: 'drop', ns: ns(db, key.slice(db.length + 1)) });
          store.colls.delete(key);
        }
      }
      entries.push({ op: 'dropDatabase', ns: { db } });
      return oplog.append(entries);
    },
    // aggregate with a $changeStream; returns the reply's cursor.
    async open(db, coll, csOptions = {}, { stages = [], batchSize } = {}) {
      const cursor = batchSize === undefined ? {} : { batchSize };
      const reply = await cs.aggregate(db, {
        aggregate: coll === null ? 1 : coll, pipeline: [{ $changeStream: csOptions }, ...stages], cursor,
      }, conn);
      return reply.cursor;
    },
    async more(cursor, { maxTimeMS = 50, batchSize, connection = conn } = {}) {
      const [db, ...rest] = cursor.ns.split('.');
      const cmd = { getMore: cursor.id, collection: rest.join('.'), maxTimeMS };
      if (batchSize !== undefined) cmd.batchSize = batchSize;
      return (await cs.getMore(db, cmd, connection)).cursor;
    },
  };
  return world;
}

// Awaits a promise expected to reject with a MongoError of `code`.
async function rejectsWithCode(promise, code, messagePart) {
  try {
    await promise;
  } catch (err) {
    if (err.code !== code) throw new Error(`expected code ${code}, got ${err.code}: ${err.message}`);
    if (messagePart && !err.message.includes(messagePart)) {
      throw new Error(`expected message with "${messagePart}", got "${err.message}"`);
    }
    return err;
  }
  throw new Error(`expected an error with code ${code}, got success`);
}

module.exports = { makeWorld, fakeConn, FakeStore, rejectsWithCode };
