// SPDX-License-Identifier: Apache-2.0
// Wire protocol details drivers rely on: OP_MSG document sequences, the
// checksum flag, moreToCome requests, bad frames, and the frame codec.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('net');
const { startStandin } = require('../../lib/harness');
const { RawClient } = require('../../lib/rawwire');
const wire = require('../lib/wire');

async function setup(t) {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  return { s, c };
}

test('OP_MSG kind-1 document sequences carry insert documents and update statements', async (t) => {
  const { c } = await setup(t);
  const ins = await c.command({ insert: 'seq', $db: 'w' }, { sequences: [{ identifier: 'documents', documents: [{ _id: 1 }, { _id: 2 }, { _id: 3 }] }] });
  assert.equal(ins.doc.n, 3);
  const upd = await c.command({ update: 'seq', $db: 'w' }, { sequences: [{ identifier: 'updates', documents: [{ q: {}, u: { $set: { x: 1 } }, multi: true }] }] });
  assert.equal(upd.doc.nModified, 3);
  const del = await c.command({ delete: 'seq', $db: 'w' }, { sequences: [{ identifier: 'deletes', documents: [{ q: { _id: 1 }, limit: 1 }] }] });
  assert.equal(del.doc.n, 1);
});

test('OP_MSG with a valid checksum is accepted, a wrong one closes the connection', async (t) => {
  const { s, c } = await setup(t);
  const r = await c.command({ ping: 1, $db: 'admin' }, { checksum: true });
  assert.equal(r.doc.ok, 1);
  const bad = await RawClient.connect(s.port);
  const buf = wire.encodeOpMsgRequest({ ping: 1, $db: 'admin' }, { requestID: 9, checksum: true });
  buf[buf.length - 1] ^= 0xff;
  bad.socket.write(buf);
  await assert.rejects(bad.next(2000), /connection closed/);
});

test('a request with moreToCome gets no reply but is applied', async (t) => {
  const { c } = await setup(t);
  c.send({ insert: 'w0', documents: [{ _id: 1 }], writeConcern: { w: 0 }, $db: 'w' }, { flags: wire.MSG_MORE_TO_COME });
  const r = await c.command({ find: 'w0', $db: 'w' });
  assert.equal(r.responseTo, r.requestTo, 'the first reply answers the find');
  assert.deepEqual(r.doc.cursor.firstBatch, [{ _id: 1 }]);
});

test('replies answer the request they belong to', async (t) => {
  const { c } = await setup(t);
  const a = c.send({ ping: 1, $db: 'admin' });
  const b = c.send({ hello: 1, $db: 'admin' });
  const ra = await c.next();
  const rb = await c.next();
  assert.equal(ra.responseTo, a);
  assert.equal(rb.responseTo, b);
  assert.notEqual(ra.requestID, rb.requestID);
});

test('a frame with an impossible length closes the connection', async (t) => {
  const { s } = await setup(t);
  const sock = net.connect(s.port, '127.0.0.1');
  await new Promise((r) => sock.on('connect', r));
  const closed = new Promise((r) => sock.on('close', r));
  const h = Buffer.alloc(16);
  h.writeInt32LE(8, 0);
  sock.write(h);
  await closed;
  const c2 = await RawClient.connect(s.port);
  t.after(() => c2.close());
  assert.equal((await c2.command({ ping: 1, $db: 'admin' })).doc.ok, 1, 'the server carries on');
});

test('a missing $db fails with 40571', async (t) => {
  const { c } = await setup(t);
  const r = await c.command({ ping: 1 });
  assert.equal(r.doc.code, 40571);
});

test('the frame reader yields frames split across and packed into chunks', () => {
  const a = wire.encodeOpMsgRequest({ ping: 1, $db: 'a' }, { requestID: 1 });
  const b = wire.encodeOpMsgRequest({ ping: 2, $db: 'b' }, { requestID: 2 });
  const all = Buffer.concat([a, b]);
  const reader = new wire.FrameReader();
  const frames = [];
  for (let i = 0; i < all.length; i += 3) {
    reader.push(all.subarray(i, i + 3));
    for (let f = reader.next(); f; f = reader.next()) frames.push(f);
  }
  assert.deepEqual(frames.map((f) => wire.decodeFrame(f).body.$db), ['a', 'b']);
  assert.deepEqual(frames.map((f) => f.requestID), [1, 2]);
  const zr = new wire.FrameReader();
  zr.push(wire.encodeOpMsgRequest({ x: 1, $db: 'q' }, { requestID: 3, compressor: 'zlib' }));
  const z = wire.decodeFrame(zr.next());
  assert.equal(z.compressor, 'zlib');
  assert.equal(z.body.$db, 'q');
});

test('crc32c matches the RFC 3720 check value', () => {
  assert.equal(wire.crc32c(Buffer.from('123456789')), 0xe3069283);
});

test('exhaust getMore streams the remaining batches with moreToCome', async (t) => {
  const { c } = await setup(t);
  await c.command({ insert: 'ex', documents: Array.from({ length: 10 }, (_, i) => ({ _id: i })), $db: 'w' });
  const first = (await c.command({ find: 'ex', batchSize: 3, $db: 'w' })).doc;
  const id = c.send({ getMore: first.cursor.id, collection: 'ex', batchSize: 3, $db: 'w' }, { flags: wire.MSG_EXHAUST_ALLOWED });
  let responseTo = id;
  const seen = [];
  for (;;) {
    const r = await c.next();
    assert.equal(r.responseTo, responseTo);
    seen.push(...r.doc.cursor.nextBatch.map((d) => d._id));
    responseTo = r.requestID;
    if (!(r.flags & wire.MSG_MORE_TO_COME)) {
      assert.equal(Number(r.doc.cursor.id), 0);
      break;
    }
  }
  assert.deepEqual(seen, [3, 4, 5, 6, 7, 8, 9]);
});
