// SPDX-License-Identifier: Apache-2.0
// Handshake: hello/isMaster shapes for 7.0, 8.0 and standalone, legacy
// OP_QUERY, helloOk, compression negotiation, client metadata, and the
// awaitable / exhaust hello of the streaming monitoring protocol.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { ObjectId, Long, Timestamp, Double } = require('bson');
const { startStandin } = require('../../lib/harness');
const { RawClient } = require('../../lib/rawwire');
const wire = require('../lib/wire');

const PRIMARY_FIELDS_7 = [
  'topologyVersion', 'hosts', 'setName', 'setVersion', 'isWritablePrimary', 'secondary', 'primary', 'me',
  'electionId', 'lastWrite', 'maxBsonObjectSize', 'maxMessageSizeBytes', 'maxWriteBatchSize', 'localTime',
  'logicalSessionTimeoutMinutes', 'connectionId', 'minWireVersion', 'maxWireVersion', 'readOnly', 'ok',
  '$clusterTime', 'operationTime',
];

test('hello answers as replica-set primary with every 7.0 field', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const { doc, opCode, flags } = await c.command({ hello: 1, $db: 'admin' });
  assert.equal(opCode, wire.OP_MSG);
  assert.equal(flags, 0);
  assert.deepEqual(Object.keys(doc), PRIMARY_FIELDS_7);
  const me = `127.0.0.1:${s.port}`;
  assert.ok(doc.topologyVersion.processId instanceof ObjectId);
  assert.ok(doc.topologyVersion.counter >= 0);
  assert.deepEqual(doc.hosts, [me]);
  assert.equal(doc.setName, 'rs0');
  assert.equal(doc.setVersion, 1);
  assert.equal(doc.isWritablePrimary, true);
  assert.equal(doc.secondary, false);
  assert.equal(doc.primary, me);
  assert.equal(doc.me, me);
  assert.ok(doc.electionId instanceof ObjectId);
  assert.ok(doc.lastWrite.opTime.ts instanceof Timestamp);
  assert.ok(doc.lastWrite.lastWriteDate instanceof Date);
  assert.ok(doc.lastWrite.majorityOpTime.ts instanceof Timestamp);
  assert.ok(doc.lastWrite.majorityWriteDate instanceof Date);
  assert.equal(doc.maxBsonObjectSize, 16777216);
  assert.equal(doc.maxMessageSizeBytes, 48000000);
  assert.equal(doc.maxWriteBatchSize, 100000);
  assert.ok(Math.abs(doc.localTime - Date.now()) < 5000);
  assert.equal(doc.logicalSessionTimeoutMinutes, 30);
  assert.equal(typeof doc.connectionId, 'number');
  assert.equal(doc.minWireVersion, 0);
  assert.equal(doc.maxWireVersion, 21);
  assert.equal(doc.readOnly, false);
  assert.equal(doc.ok, 1);
  assert.ok(doc.$clusterTime.clusterTime instanceof Timestamp);
  assert.ok(doc.operationTime instanceof Timestamp);
  assert.equal(doc.isImplicitDefaultMajorityWC, undefined, 'only shard servers send it');
});

test('hello on --version 8.0 reports maxWireVersion 25 and buildInfo 8.0', async (t) => {
  const s = await startStandin(['--version', '8.0']);
  t.after(() => s.stop());
  assert.equal(s.version, '8.0');
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  assert.equal((await c.command({ hello: 1, $db: 'admin' })).doc.maxWireVersion, 25);
  const info = (await c.command({ buildInfo: 1, $db: 'admin' })).doc;
  assert.match(info.version, /^8\.0\.\d+$/);
  assert.deepEqual(info.versionArray.slice(0, 2), [8, 0]);
  assert.equal(info.maxBsonObjectSize, 16777216);
});

test('buildInfo reports the 7.0 version string and array', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const info = (await c.command({ buildInfo: 1, $db: 'admin' })).doc;
  assert.match(info.version, /^7\.0\.\d+$/);
  assert.equal(info.versionArray.length, 4);
  assert.equal(info.versionArray[0], 7);
  assert.equal(info.bits, 64);
  assert.equal(info.ok, 1);
  const ping = (await c.command({ ping: 1, $db: 'admin' })).doc;
  assert.equal(ping.ok, 1);
  assert.ok(ping.operationTime instanceof Timestamp);
});

test('legacy isMaster uses ismaster and OP_QUERY handshakes get OP_REPLY', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const msg = (await c.command({ isMaster: 1, $db: 'admin' })).doc;
  assert.equal(msg.ismaster, true);
  assert.equal(msg.isWritablePrimary, undefined);
  for (const [ns, q] of [
    ['admin.$cmd', { isMaster: 1, helloOk: true }],
    ['test.$cmd', { $query: { ismaster: 1 }, $readPreference: { mode: 'primaryPreferred' } }],
    ['admin.$cmd', { query: { isMaster: 1 } }],
  ]) {
    const id = c.sendQuery(ns, q);
    const r = await c.next();
    assert.equal(r.opCode, wire.OP_REPLY);
    assert.equal(r.responseTo, id);
    assert.equal(r.doc.ismaster, true);
    assert.equal(r.doc.setName, 'rs0');
    assert.equal(r.doc.ok, 1);
  }
  c.sendQuery('admin.$cmd', { find: 'x' });
  const bad = await c.next();
  assert.equal(bad.opCode, wire.OP_REPLY);
  assert.equal(bad.doc.code, 352);
  assert.equal(bad.doc.codeName, 'UnsupportedOpQueryCommand');
});

test('helloOk is echoed only when the client sends it', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  assert.equal((await c.command({ hello: 1, helloOk: true, $db: 'admin' })).doc.helloOk, true);
  assert.equal((await c.command({ hello: 1, $db: 'admin' })).doc.helloOk, undefined);
});

test('a second hello carrying client metadata fails with 186', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const client = { application: { name: 'a' }, driver: { name: 'raw', version: '1' }, os: { type: 'Linux' } };
  assert.equal((await c.command({ hello: 1, client, $db: 'admin' })).doc.ok, 1);
  const again = (await c.command({ hello: 1, client, $db: 'admin' })).doc;
  assert.equal(again.ok, 0);
  assert.equal(again.code, 186);
  assert.equal(again.codeName, 'ClientMetadataCannotBeMutated');
  assert.equal((await c.command({ hello: 1, $db: 'admin' })).doc.ok, 1, 'hello without client is fine');
});

test('compression negotiates zlib and noop and replies compressed', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const hello = (await c.command({ hello: 1, compression: ['snappy', 'zstd', 'zlib', 'noop'], $db: 'admin' })).doc;
  assert.deepEqual(hello.compression, ['zlib', 'noop']);
  for (const compressor of ['zlib', 'noop']) {
    const r = await c.command({ insert: 'c', documents: [{ x: 'y'.repeat(1000) }], $db: 'z' }, { compressor });
    assert.equal(r.compressor, compressor);
    assert.equal(r.doc.n, 1);
  }
  const none = (await c.command({ hello: 1, compression: ['snappy'], $db: 'admin' }));
  assert.equal(none.doc.ok, 1);
});

test('the Node driver works with zlib compression negotiated', async (t) => {
  const { MongoClient } = require('mongodb');
  const s = await startStandin();
  t.after(() => s.stop());
  const client = await new MongoClient(s.uri, { compressors: ['zlib'] }).connect();
  t.after(() => client.close());
  const c = client.db('z').collection('c');
  await c.insertMany(Array.from({ length: 50 }, (_, i) => ({ i, text: 'compress me '.repeat(50) })));
  assert.equal((await c.find({}).toArray()).length, 50);
});

test('awaitable hello with the current topologyVersion waits maxAwaitTimeMS', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const first = (await c.command({ hello: 1, $db: 'admin' })).doc;
  const started = Date.now();
  const r = (await c.command({ hello: 1, topologyVersion: first.topologyVersion, maxAwaitTimeMS: 300, $db: 'admin' })).doc;
  const waited = Date.now() - started;
  assert.equal(r.ok, 1);
  assert.ok(waited >= 280, `waited ${waited} ms`);
  // A different processId is answered at once.
  const t2 = Date.now();
  await c.command({ hello: 1, topologyVersion: { processId: new ObjectId(), counter: Long.fromNumber(0) }, maxAwaitTimeMS: 5000, $db: 'admin' });
  assert.ok(Date.now() - t2 < 5000, 'answered before maxAwaitTimeMS');
  const bad = (await c.command({ hello: 1, topologyVersion: first.topologyVersion, $db: 'admin' })).doc;
  assert.equal(bad.code, 31368);
});

test('exhaust hello streams moreToCome replies chained by responseTo', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const first = (await c.command({ hello: 1, $db: 'admin' })).doc;
  const requestID = c.send(
    { hello: 1, topologyVersion: first.topologyVersion, maxAwaitTimeMS: 150, $db: 'admin' },
    { flags: wire.MSG_EXHAUST_ALLOWED }
  );
  let responseTo = requestID;
  for (let i = 0; i < 3; i++) {
    const r = await c.next(3000);
    assert.equal(r.responseTo, responseTo, `reply ${i} answers the previous one`);
    assert.ok(r.flags & wire.MSG_MORE_TO_COME, `reply ${i} has moreToCome`);
    assert.equal(r.doc.isWritablePrimary, true);
    assert.ok(r.doc.topologyVersion.processId.equals(first.topologyVersion.processId));
    responseTo = r.requestID;
  }
});

test('exhaust hello without maxAwaitTimeMS fails with 51756 and ends the stream', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  c.send({ hello: 1, $db: 'admin' }, { flags: wire.MSG_EXHAUST_ALLOWED });
  const r = await c.next();
  assert.equal(r.flags & wire.MSG_MORE_TO_COME, 0);
  assert.equal(r.doc.code, 51756);
  await assert.rejects(c.next(400), /no reply/);
});

test('the Node driver monitors over the streaming protocol', async (t) => {
  const { MongoClient } = require('mongodb');
  const s = await startStandin();
  t.after(() => s.stop());
  const client = new MongoClient(s.uri, { heartbeatFrequencyMS: 500, serverMonitoringMode: 'stream' });
  const heartbeats = [];
  client.on('serverHeartbeatSucceeded', (e) => heartbeats.push(e));
  await client.connect();
  t.after(() => client.close());
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(heartbeats.some((e) => e.awaited), 'an awaited heartbeat succeeded');
  assert.equal((await client.db('x').command({ ping: 1 })).ok, 1);
});

test('--standalone answers as a standalone without $clusterTime', async (t) => {
  const s = await startStandin(['--standalone']);
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const doc = (await c.command({ hello: 1, $db: 'admin' })).doc;
  assert.equal(doc.isWritablePrimary, true);
  assert.ok(doc.topologyVersion);
  for (const f of ['setName', 'hosts', 'primary', 'me', 'electionId', 'lastWrite', '$clusterTime', 'operationTime']) {
    assert.equal(doc[f], undefined, f);
  }
  assert.equal(doc.maxWireVersion, 21);
  const ins = (await c.command({ insert: 'c', documents: [{ _id: 1 }], $db: 't' })).doc;
  assert.equal(ins.n, 1);
  assert.equal(ins.$clusterTime, undefined);
});

test('ok is a double as mongod sends it', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  c.socket.removeAllListeners('data');
  const reader = new wire.FrameReader();
  const got = new Promise((resolve) => c.socket.on('data', (d) => {
    reader.push(d);
    const f = reader.next();
    if (f) resolve(f);
  }));
  c.send({ ping: 1, $db: 'admin' });
  const frame = await got;
  const BSON = require('bson');
  const doc = BSON.deserialize(frame.payload.subarray(5), { promoteValues: false });
  assert.ok(doc.ok instanceof Double);
});
