// SPDX-License-Identifier: Apache-2.0
// failCommand as mongod with enableTestCommands=1 runs it.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Long } = require('bson');
const { startStandin } = require('../../lib/harness');
const { RawClient } = require('../../lib/rawwire');

async function setup(t, args) {
  const s = await startStandin(args);
  t.after(() => s.stop());
  const admin = await RawClient.connect(s.port);
  t.after(() => admin.close());
  const configure = async (mode, data) => (await admin.command({ configureFailPoint: 'failCommand', mode, data, $db: 'admin' })).doc;
  return { s, admin, configure };
}

test('configureFailPoint answers {count, ok} with the previous activation count', async (t) => {
  const { s, configure } = await setup(t);
  const first = await configure('alwaysOn', { failCommands: ['find'], errorCode: 2 });
  assert.equal(first.ok, 1);
  assert.equal(first.count, 0);
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  await c.command({ find: 'x', $db: 'd' });
  await c.command({ find: 'x', $db: 'd' });
  const off = await configure('off');
  assert.equal(off.count, 2);
  assert.equal((await c.command({ find: 'x', $db: 'd' })).doc.ok, 1);
});

test('the count never restarts: a later configureFailPoint answers every activation so far', async (t) => {
  const { s, configure } = await setup(t);
  await configure({ times: 1 }, { failCommands: ['find'], errorCode: 2 });
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  await c.command({ find: 'x', $db: 'd' });
  assert.equal((await configure({ times: 1 }, { failCommands: ['find'], errorCode: 2 })).count, 1);
  await c.command({ find: 'x', $db: 'd' });
  assert.equal((await configure('off')).count, 2);
});

test('waitForFailPoint returns once the count reaches timesEntered, else 50 after maxTimeMS; its own errors as mongod', async (t) => {
  const { s, admin, configure } = await setup(t);
  const wait = async (fields) => (await admin.command({ waitForFailPoint: 'failCommand', ...fields, $db: 'admin' })).doc;
  const { count } = await configure('alwaysOn', { failCommands: ['find'], errorCode: 2 });
  const timedOut = await wait({ timesEntered: count + 1, maxTimeMS: 100 });
  assert.equal(timedOut.ok, 0);
  assert.equal(timedOut.code, 50);
  assert.equal(timedOut.codeName, 'MaxTimeMSExpired');
  const other = await RawClient.connect(s.port);
  t.after(() => other.close());
  const waiting = wait({ timesEntered: count + 2, maxTimeMS: 10000 });
  let done = false;
  waiting.then(() => { done = true; });
  await other.command({ find: 'x', $db: 'd' });
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 'still waiting after one activation of two');
  await other.command({ find: 'x', $db: 'd' });
  assert.equal((await waiting).ok, 1);
  assert.equal((await wait({ timesEntered: count + 1, maxTimeMS: 100 })).ok, 1, 'a count already reached answers at once');
  const noTime = await wait({ timesEntered: 1 });
  assert.equal(noTime.code, 9);
  assert.equal(noTime.errmsg, 'Missing maxTimeMS');
  const noTimes = await wait({ maxTimeMS: 100 });
  assert.equal(noTimes.code, 40414);
  const unknown = (await admin.command({ waitForFailPoint: 'noSuchFailPoint', timesEntered: 1, maxTimeMS: 100, $db: 'admin' })).doc;
  assert.equal(unknown.code, 266);
  assert.equal(unknown.errmsg, 'noSuchFailPoint not found');
  await configure('off');
});

test('configureFailPoint only runs on admin', async (t) => {
  const { admin } = await setup(t);
  const r = (await admin.command({ configureFailPoint: 'failCommand', mode: 'off', $db: 'test' })).doc;
  assert.equal(r.ok, 0);
  assert.equal(r.code, 13);
});

test('failCommand times:1 closes the connection once', async (t) => {
  const { s, configure } = await setup(t);
  await configure({ times: 1 }, { failCommands: ['insert'], closeConnection: true });
  const c = await RawClient.connect(s.port);
  c.send({ insert: 'c', documents: [{ _id: 1 }], $db: 'd' });
  await assert.rejects(c.next(2000), /connection closed/);
  const c2 = await RawClient.connect(s.port);
  t.after(() => c2.close());
  const r = (await c2.command({ insert: 'c', documents: [{ _id: 1 }], $db: 'd' })).doc;
  assert.equal(r.ok, 1);
  assert.equal(r.n, 1, 'the closed request was never applied');
});

test('failCommand errorCode answers the error with its labels', async (t) => {
  const { s, configure } = await setup(t);
  await configure({ times: 2 }, { failCommands: ['find', 'aggregate'], errorCode: 10107, errorLabels: ['Custom'] });
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const r = (await c.command({ find: 'c', $db: 'd' })).doc;
  assert.equal(r.ok, 0);
  assert.equal(r.code, 10107);
  assert.equal(r.codeName, 'NotWritablePrimary');
  assert.equal(r.errmsg, "Failing command via 'failCommand' failpoint");
  assert.deepEqual(r.errorLabels, ['Custom']);
  assert.ok(r.topologyVersion, 'not-primary errors carry topologyVersion');
  assert.ok(r.operationTime);
  assert.equal((await c.command({ aggregate: 'c', pipeline: [], cursor: {}, $db: 'd' })).doc.code, 10107);
  assert.equal((await c.command({ find: 'c', $db: 'd' })).doc.ok, 1, 'times:2 is spent');
});

test('failCommand on a retryable write adds RetryableWriteError by itself', async (t) => {
  const { s, configure } = await setup(t);
  await configure({ times: 1 }, { failCommands: ['insert'], errorCode: 91 });
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const lsid = { id: new (require('bson').UUID)() };
  const r = (await c.command({ insert: 'c', documents: [{}], lsid, txnNumber: Long.fromNumber(1), $db: 'd' })).doc;
  assert.equal(r.code, 91);
  assert.deepEqual(r.errorLabels, ['RetryableWriteError']);
});

test('failCommand skip:n lets n commands through first', async (t) => {
  const { s, configure } = await setup(t);
  await configure({ skip: 2 }, { failCommands: ['ping'], errorCode: 8 });
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const codes = [];
  for (let i = 0; i < 4; i++) codes.push((await c.command({ ping: 1, $db: 'admin' })).doc.ok);
  assert.deepEqual(codes, [1, 1, 0, 0]);
});

test('failCommand blockConnection delays only the blocked connection', async (t) => {
  const { s, configure } = await setup(t);
  await configure({ times: 1 }, { failCommands: ['find'], blockConnection: true, blockTimeMS: 800 });
  const slow = await RawClient.connect(s.port);
  const fast = await RawClient.connect(s.port);
  t.after(() => { slow.close(); fast.close(); });
  const started = Date.now();
  let slowAnswered = false;
  const slowReply = slow.command({ find: 'c', $db: 'd' }).then((reply) => {
    slowAnswered = true;
    return reply;
  });
  await new Promise((r) => setTimeout(r, 50));
  const f = await fast.command({ find: 'c', $db: 'd' });
  assert.equal(f.doc.ok, 1);
  assert.equal(slowAnswered, false, 'the other connection was answered while this one was blocked');
  const r = await slowReply;
  assert.equal(r.doc.ok, 1, 'blocking alone does not fail the command');
  assert.ok(Date.now() - started >= 780);
});

test('failCommand appName limits it to one application', async (t) => {
  const { s, configure } = await setup(t);
  await configure('alwaysOn', { failCommands: ['find'], errorCode: 2, appName: 'victim' });
  const victim = await RawClient.connect(s.port);
  const other = await RawClient.connect(s.port);
  t.after(() => { victim.close(); other.close(); });
  await victim.command({ hello: 1, client: { application: { name: 'victim' }, driver: { name: 'r', version: '1' }, os: { type: 'Linux' } }, $db: 'admin' });
  await other.command({ hello: 1, client: { application: { name: 'other' }, driver: { name: 'r', version: '1' }, os: { type: 'Linux' } }, $db: 'admin' });
  assert.equal((await victim.command({ find: 'c', $db: 'd' })).doc.code, 2);
  assert.equal((await other.command({ find: 'c', $db: 'd' })).doc.ok, 1);
});

test('failCommand writeConcernError runs the write and reports the error', async (t) => {
  const { s, configure } = await setup(t);
  await configure({ times: 1 }, { failCommands: ['insert'], writeConcernError: { code: 64, codeName: 'WriteConcernFailed', errmsg: 'waiting for replication timed out', errInfo: { wtimeout: true } } });
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const r = (await c.command({ insert: 'c', documents: [{ _id: 1 }], $db: 'd' })).doc;
  assert.equal(r.ok, 1);
  assert.equal(r.n, 1);
  assert.equal(r.writeConcernError.code, 64);
  assert.deepEqual(r.writeConcernError.errInfo, { wtimeout: true });
  assert.equal((await c.command({ find: 'c', $db: 'd' })).doc.cursor.firstBatch.length, 1);
});

test('failCommand applies to hello when listed, never to configureFailPoint', async (t) => {
  const { s, configure } = await setup(t);
  await configure('alwaysOn', { failCommands: ['hello', 'configureFailPoint'], errorCode: 91 });
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  assert.equal((await c.command({ hello: 1, $db: 'admin' })).doc.code, 91);
  assert.equal((await c.command({ isMaster: 1, $db: 'admin' })).doc.ok, 1, 'isMaster is another command name');
  assert.equal((await configure('off')).ok, 1);
  assert.equal((await c.command({ hello: 1, $db: 'admin' })).doc.ok, 1);
});

test('the Node driver retries a write after failCommand closeConnection', async (t) => {
  const { MongoClient } = require('mongodb');
  const { s, configure } = await setup(t);
  const client = await new MongoClient(s.uri).connect();
  t.after(() => client.close());
  await configure({ times: 1 }, { failCommands: ['insert'], closeConnection: true });
  await client.db('d').collection('r').insertOne({ _id: 'once' });
  assert.equal(await client.db('d').collection('r').countDocuments(), 1);
});
