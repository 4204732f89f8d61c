// SPDX-License-Identifier: Apache-2.0
// The official Node.js driver through changecast: it must see one router and
// everything an application does must work as against MongoDB itself.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { MongoClient } = require('mongodb');
const { startStandin, startChangecast, tempDir, changecastUpstreamPorts } = require('./support');

let standin;
let changecast;
let client;
const started = [];
const connLog = path.join(tempDir('cc-connlog'), 'connections.log');

before(async () => {
  standin = await startStandin(['--log-connections', connLog]);
  changecast = await startChangecast(standin.port);
  client = new MongoClient(changecast.uri, { appName: 'it-node', monitorCommands: true, serverSelectionTimeoutMS: 10000 });
  client.on('commandStarted', (event) => started.push(event));
  await client.connect();
});

after(async () => {
  await client?.close();
  const status = await changecast?.stop();
  await standin?.stop();
  assert.deepEqual(status, { code: 0, signal: null }, changecast?.output);
});

test('the driver sees a Sharded topology with changecast as its only router', async () => {
  const description = client.topology.description;
  assert.equal(description.type, 'Sharded');
  assert.deepEqual([...description.servers.keys()], [`127.0.0.1:${changecast.port}`]);
  assert.equal([...description.servers.values()][0].type, 'Mongos');
});

test("an application's own hello is answered in the router form", async () => {
  for (const command of [{ hello: 1 }, { isMaster: 1 }, { ismaster: 1 }]) {
    const reply = await client.db('admin').command(command);
    assert.equal(reply.msg, 'isdbgrid');
    assert.equal(reply.ok, 1);
    assert.equal(reply.maxWireVersion, 21);
    assert.ok(reply.$clusterTime && reply.operationTime, 'cluster time passes through');
    for (const leaked of ['hosts', 'setName', 'topologyVersion', 'me', 'primary', 'electionId', 'lastWrite', 'isreplicaset']) {
      assert.equal(reply[leaked], undefined, `${leaked} must not reach the client`);
    }
  }
});

test('CRUD through changecast', async () => {
  const coll = client.db('it_node').collection('crud');
  await coll.insertOne({ _id: 1, name: 'widget', qty: 5 });
  assert.deepEqual(await coll.findOne({ _id: 1 }), { _id: 1, name: 'widget', qty: 5 });
  const update = await coll.updateOne({ _id: 1 }, { $inc: { qty: 2 } });
  assert.equal(update.modifiedCount, 1);
  assert.equal((await coll.findOne({ _id: 1 })).qty, 7);
  const replaced = await coll.findOneAndReplace({ _id: 1 }, { name: 'gadget' }, { returnDocument: 'after' });
  assert.deepEqual(replaced, { _id: 1, name: 'gadget' });
  assert.equal((await coll.deleteOne({ _id: 1 })).deletedCount, 1);
  assert.equal(await coll.countDocuments({}), 0);
});

test('a cursor that needs several getMores returns every document in order', async () => {
  const coll = client.db('it_node').collection('many');
  await coll.insertMany(Array.from({ length: 250 }, (_, i) => ({ _id: i })));
  const before = started.filter((e) => e.commandName === 'getMore').length;
  const docs = await coll.find({}, { batchSize: 40, sort: { _id: 1 } }).toArray();
  assert.deepEqual(docs.map((d) => d._id), Array.from({ length: 250 }, (_, i) => i));
  const getMores = started.filter((e) => e.commandName === 'getMore').length - before;
  assert.ok(getMores >= 6, `expected at least 6 getMores, saw ${getMores}`);
});

test('a committed transaction applies, an aborted one does not', async () => {
  const coll = client.db('it_node').collection('tx');
  const session = client.startSession();
  try {
    await session.withTransaction(async () => {
      await coll.insertOne({ _id: 'a' }, { session });
      await coll.insertOne({ _id: 'b' }, { session });
    });
    session.startTransaction();
    await coll.insertOne({ _id: 'c' }, { session });
    await session.abortTransaction();
  } finally {
    await session.endSession();
  }
  assert.deepEqual((await coll.find().sort({ _id: 1 }).toArray()).map((d) => d._id), ['a', 'b']);
  const commits = started.filter((e) => e.commandName === 'commitTransaction');
  assert.ok(commits.length >= 1);
});

test('a retryable write is retried after the upstream closes the connection (failCommand)', async () => {
  const admin = client.db('admin');
  await admin.command({
    configureFailPoint: 'failCommand',
    mode: { times: 1 },
    data: { failCommands: ['insert'], closeConnection: true },
  });
  const before = started.filter((e) => e.commandName === 'insert').length;
  const coll = client.db('it_node').collection('retry');
  await coll.insertOne({ _id: 'retried' });
  assert.equal(started.filter((e) => e.commandName === 'insert').length - before, 2, 'one failure, one retry');
  assert.equal(await coll.countDocuments({ _id: 'retried' }), 1);
  assert.match(changecast.output, /event=closed reason=upstream_closed/);
});

test("an application's own watch() change stream works through changecast", async () => {
  const coll = client.db('it_node').collection('watched');
  const stream = coll.watch([], { maxAwaitTimeMS: 200 });
  try {
    await stream.tryNext(); // opens the cursor before the write
    await coll.insertOne({ _id: 'w1', v: 1 });
    await coll.updateOne({ _id: 'w1' }, { $set: { v: 2 } });
    const insert = await stream.next();
    assert.equal(insert.operationType, 'insert');
    assert.deepEqual(insert.fullDocument, { _id: 'w1', v: 1 });
    const update = await stream.next();
    assert.equal(update.operationType, 'update');
    assert.deepEqual(update.updateDescription.updatedFields, { v: 2 });
    assert.ok(update._id._data > insert._id._data, 'resume tokens increase');
  } finally {
    await stream.close();
  }
});

test('error replies pass through intact', async () => {
  const coll = client.db('it_node').collection('errors');
  await coll.insertOne({ _id: 'dup' });
  await assert.rejects(coll.insertOne({ _id: 'dup' }), (err) => {
    assert.equal(err.code, 11000);
    assert.match(err.message, /^E11000 duplicate key error collection: it_node\.errors index: _id_ dup key/);
    return true;
  });
  await assert.rejects(client.db('admin').command({ noSuchCommand: 1 }), (err) => {
    assert.equal(err.code, 59);
    assert.equal(err.codeName, 'CommandNotFound');
    return true;
  });
});

test('load-balanced mode: the driver gets a serviceId and pins work to it', async () => {
  const lb = new MongoClient(`${changecast.uri}?loadBalanced=true`, { appName: 'it-node-lb', monitorCommands: true });
  const events = [];
  lb.on('commandStarted', (event) => events.push(event));
  try {
    await lb.connect();
    const coll = lb.db('it_node').collection('lb');
    await coll.insertOne({ _id: 'lb1' });
    const session = lb.startSession();
    await session.withTransaction(async () => {
      await coll.insertOne({ _id: 'lb2' }, { session });
    });
    await session.endSession();
    assert.equal(await coll.countDocuments({}), 2);
    assert.equal(lb.topology.description.type, 'LoadBalanced');
    assert.ok(events.length > 0 && events.every((e) => e.serviceId), 'every command carries the serviceId');
    const ids = new Set(events.map((e) => e.serviceId.toHexString()));
    assert.equal(ids.size, 1, 'one serviceId per changecast instance');
  } finally {
    await lb.close();
  }
});

test('no driver ever connected to the stand-in directly', async () => {
  // Connections the stand-in accepted must be changecast's: its upstream
  // connections (matched by local port) or its own topology monitor.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const upstreamPorts = changecastUpstreamPorts(changecast);
  const lines = fs.readFileSync(connLog, 'utf8').trim().split('\n');
  const monitorConns = new Set(lines.filter((l) => /appName="changecast-monitor@it"/.test(l)).map((l) => l.match(/conn=(\d+)/)[1]));
  const accepts = lines.filter((l) => /event=accept /.test(l));
  assert.ok(accepts.length > 0);
  for (const line of accepts) {
    const [, conn, port] = line.match(/conn=(\d+) event=accept peer=127\.0\.0\.1:(\d+)/);
    assert.ok(upstreamPorts.has(Number(port)) || monitorConns.has(conn), `direct connection: ${line}`);
  }
});
