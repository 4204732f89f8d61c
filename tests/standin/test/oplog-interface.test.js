// SPDX-License-Identifier: Apache-2.0
// The interface between the core and the change-stream module, checked in
// process: what each write hands to oplog.append, and store.lookup /
// store.collectionInfo.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Long, UUID, Binary } = require('bson');
const { Server } = require('../lib/dispatch');

function setup() {
  const server = new Server({ host: '127.0.0.1', port: 0, version: '7.0', replset: 'rs0' });
  server.start(27017);
  const calls = [];
  server.oplog = {
    append: (entries, txn) => {
      calls.push({ entries, txn });
      return server.clock.tick();
    },
  };
  const conn = { id: 1, closed: false, onClose: () => () => {}, remoteAddress: '127.0.0.1', remotePort: 1 };
  const run = async (cmd) => {
    const r = await server.run(conn, cmd);
    assert.equal(Number(r.ok), 1, JSON.stringify(r));
    return r;
  };
  return { server, calls, run };
}

test('each written document is one entry with pre- and post-images', async () => {
  const { calls, run } = setup();
  await run({ create: 'c', changeStreamPreAndPostImages: { enabled: true }, $db: 'd' });
  assert.equal(calls.length, 0, 'create is not an event');
  await run({ insert: 'c', documents: [{ _id: 1, a: 1 }, { _id: 2, a: 2 }], $db: 'd' });
  assert.equal(calls.length, 2);
  assert.deepEqual(calls[0].entries, [{
    op: 'insert', ns: { db: 'd', coll: 'c' }, documentKey: { _id: 1 }, preAndPostImagesEnabled: true, fullDocument: { _id: 1, a: 1 },
  }]);
  assert.equal(calls[0].txn, undefined);
  await run({ update: 'c', updates: [{ q: { _id: 1 }, u: { $set: { 'n.x': 1, a: 5 } } }], $db: 'd' });
  const upd = calls[2].entries[0];
  assert.equal(upd.op, 'update');
  assert.deepEqual(upd.fullDocumentBeforeChange, { _id: 1, a: 1 });
  assert.deepEqual(upd.fullDocument, { _id: 1, a: 5, n: { x: 1 } });
  assert.deepEqual(upd.updateDescription, { updatedFields: { n: { x: 1 }, a: 5 }, removedFields: [], truncatedArrays: [] });
  await run({ update: 'c', updates: [{ q: { _id: 2 }, u: { b: 1 } }], $db: 'd' });
  assert.equal(calls[3].entries[0].op, 'replace');
  assert.deepEqual(calls[3].entries[0].fullDocument, { _id: 2, b: 1 });
  assert.equal(calls[3].entries[0].updateDescription, undefined);
  await run({ delete: 'c', deletes: [{ q: { _id: 2 }, limit: 1 }], $db: 'd' });
  assert.deepEqual(calls[4].entries[0], {
    op: 'delete', ns: { db: 'd', coll: 'c' }, documentKey: { _id: 2 }, preAndPostImagesEnabled: true, fullDocumentBeforeChange: { _id: 2, b: 1 },
  });
  await run({ update: 'c', updates: [{ q: { _id: 1 }, u: { $set: { a: 5 } } }], $db: 'd' });
  assert.equal(calls.length, 5, 'a no-op update is no event');
});

test('updateDescription follows the paths the operators touched', async () => {
  const { calls, run } = setup();
  await run({ insert: 'u', documents: [{ _id: 1, arr: [1, 2, 3], sub: { a: 1, b: 2 }, gone: 1 }], $db: 'd' });
  const desc = async (u) => {
    await run({ update: 'u', updates: [{ q: { _id: 1 }, u }], $db: 'd' });
    return calls[calls.length - 1].entries[0].updateDescription;
  };
  assert.deepEqual(await desc({ $push: { arr: 4 } }), { updatedFields: { 'arr.3': 4 }, removedFields: [], truncatedArrays: [] });
  assert.deepEqual(await desc({ $pop: { arr: 1 } }), { updatedFields: {}, removedFields: [], truncatedArrays: [{ field: 'arr', newSize: 3 }] });
  assert.deepEqual(await desc({ $set: { 'sub.a': 9 }, $unset: { gone: '' } }), { updatedFields: { 'sub.a': 9 }, removedFields: ['gone'], truncatedArrays: [] });
  assert.deepEqual(await desc({ $set: { sub: { a: 9 } } }), { updatedFields: { sub: { a: 9 } }, removedFields: [], truncatedArrays: [] });
  assert.deepEqual(await desc([{ $set: { sub: { a: 9, c: 3 } } }]), { updatedFields: { 'sub.c': 3 }, removedFields: [], truncatedArrays: [] });
});

test('drop, rename and dropDatabase append once each with every entry', async () => {
  const { calls, run } = setup();
  await run({ insert: 'a', documents: [{ _id: 1 }], $db: 'd' });
  await run({ insert: 'b', documents: [{ _id: 1 }], $db: 'd' });
  calls.length = 0;
  await run({ renameCollection: 'd.a', to: 'd.z', $db: 'admin' });
  assert.deepEqual(calls[0].entries, [{ op: 'rename', ns: { db: 'd', coll: 'a' }, to: { db: 'd', coll: 'z' } }]);
  await run({ drop: 'z', $db: 'd' });
  assert.deepEqual(calls[1].entries, [{ op: 'drop', ns: { db: 'd', coll: 'z' } }]);
  await run({ dropDatabase: 1, $db: 'd' });
  assert.deepEqual(calls[2].entries, [{ op: 'drop', ns: { db: 'd', coll: 'b' } }, { op: 'dropDatabase', ns: { db: 'd' } }]);
});

test('a committed transaction appends once with {lsid, txnNumber}', async () => {
  const { calls, run } = setup();
  const lsid = { id: new UUID() };
  const t = { lsid, txnNumber: Long.fromNumber(3), autocommit: false };
  await run({ insert: 't', documents: [{ _id: 1 }], ...t, startTransaction: true, $db: 'd' });
  await run({ update: 't', updates: [{ q: { _id: 1 }, u: { $set: { x: 1 } } }], ...t, $db: 'd' });
  assert.equal(calls.length, 0, 'nothing before commit');
  await run({ commitTransaction: 1, ...t, $db: 'admin' });
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0].entries.map((e) => e.op), ['insert', 'update']);
  assert.ok(calls[0].txn.lsid.id.equals(lsid.id));
  assert.equal(Number(calls[0].txn.txnNumber), 3);
});

test('store.lookup and store.collectionInfo serve the change-stream module', async () => {
  const { server, run } = setup();
  await run({ create: 'i', changeStreamPreAndPostImages: { enabled: true }, $db: 'd' });
  await run({ insert: 'i', documents: [{ _id: 'k', nested: { v: 1 } }], $db: 'd' });
  const doc = server.store.lookup('d', 'i', 'k');
  assert.deepEqual(doc, { _id: 'k', nested: { v: 1 } });
  doc.nested.v = 2;
  assert.deepEqual(server.store.lookup('d', 'i', 'k'), { _id: 'k', nested: { v: 1 } }, 'lookup returns a copy');
  assert.equal(server.store.lookup('d', 'i', 'missing'), null);
  assert.equal(server.store.lookup('d', 'nope', 'k'), null);
  const info = server.store.collectionInfo('d', 'i');
  assert.ok(info.uuid instanceof Binary);
  assert.equal(info.uuid.sub_type, 4);
  assert.deepEqual(info.options, { changeStreamPreAndPostImages: { enabled: true } });
  assert.equal(server.store.collectionInfo('d', 'nope'), null);
});
