// SPDX-License-Identifier: Apache-2.0
// Faults and bad input: a bad client hurts only itself, an unreachable or
// restarting upstream never makes a driver hang, SIGTERM drains.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { MongoClient } = require('mongodb');
const { startStandin, startChangecast } = require('./support');
const { freePort } = require('../lib/harness');
const { waitUntil } = require('./push-support');
const { RawClient } = require('../lib/rawwire');

// Sessions changecast has closed because their upstream connection went.
const upstreamLosses = (changecast) => (changecast.output.match(/event=closed reason=upstream_(closed|connect_failed)/g) || []).length;

function header(length, requestId, opcode) {
  const bytes = Buffer.alloc(16);
  bytes.writeInt32LE(length, 0);
  bytes.writeInt32LE(requestId, 4);
  bytes.writeInt32LE(0, 8);
  bytes.writeInt32LE(opcode, 12);
  return bytes;
}

// Sends bytes on a raw connection and resolves when changecast closes it.
function sendRaw(port, bytes) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    const timer = setTimeout(() => reject(new Error('changecast did not close the connection')), 5000);
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

test('malformed frames close only their own client, with one log line saying why', async () => {
  const standin = await startStandin();
  const changecast = await startChangecast(standin.port);
  const client = new MongoClient(changecast.uri);
  try {
    await client.db('it_faults').collection('c').insertOne({ _id: 'before' });
    const cases = [
      [header(3, 1, 2013), /reason=frame_rejected .*detail="length 3 below the minimum/],
      [header(48000001, 2, 2013), /reason=frame_rejected .*detail="length 48000001 above maxMessageSizeBytes 48000000"/],
      [Buffer.concat([header(40, 3, 2002), Buffer.alloc(24)]), /reason=frame_rejected .*detail="opcode 2002 not accepted from a client"/],
      [Buffer.concat([header(26, 4, 2013), Buffer.from([0, 0, 0, 0, 9, 5, 0, 0, 0, 0])]), /reason=(frame_rejected|upstream_closed)/],
    ];
    for (const [bytes, logged] of cases) {
      await sendRaw(changecast.port, bytes);
      await changecast.waitFor(logged);
    }
    // The well-behaved client kept its connection and keeps working.
    await client.db('it_faults').collection('c').insertOne({ _id: 'after' });
    assert.equal(await client.db('it_faults').collection('c').countDocuments(), 2);
  } finally {
    await client.close();
    assert.deepEqual(await changecast.stop(), { code: 0, signal: null }, changecast.output);
    await standin.stop();
  }
});

test('an unreachable upstream makes drivers fail fast, never hang', async () => {
  const deadPort = await freePort();
  const changecast = await startChangecast(deadPort, ['--wire.primary_wait_ms', '300'], { waitForPrimary: false });
  const client = new MongoClient(changecast.uri, { serverSelectionTimeoutMS: 3000, connectTimeoutMS: 2000 });
  const started = Date.now();
  try {
    await assert.rejects(client.connect(), (err) => err.name === 'MongoServerSelectionError');
    assert.ok(Date.now() - started < 8000, 'failed within the selection timeout');
    await changecast.waitFor(/event=closed reason=no_primary/);
  } finally {
    await client.close();
    assert.deepEqual(await changecast.stop(), { code: 0, signal: null });
  }
});

test('drivers recover through changecast when the stand-in is killed and restarted under load', async () => {
  const port = await freePort();
  let standin = await startStandin(['--port', String(port)]);
  const changecast = await startChangecast(port, ['--wire.primary_wait_ms', '2000']);
  const client = new MongoClient(changecast.uri, { serverSelectionTimeoutMS: 15000, retryWrites: true });
  await client.connect();
  const coll = client.db('it_faults').collection('load');
  let stop = false;
  let written = 0;
  const failures = [];
  let slowest = 0;
  const writer = (async () => {
    for (let i = 0; !stop; i++) {
      const started = Date.now();
      try {
        await coll.insertOne({ i });
        written += 1;
      } catch (err) {
        failures.push(err.message);
      }
      slowest = Math.max(slowest, Date.now() - started);
    }
  })();
  try {
    await waitUntil(() => written >= 20, 'writes flowing before the fault');
    const closedBefore = upstreamLosses(changecast);
    standin.proc.kill('SIGKILL');
    await standin.waitExit();
    // The outage is felt (the writer's upstream connection is gone) before
    // the stand-in comes back.
    await waitUntil(() => upstreamLosses(changecast) > closedBefore, 'changecast to lose its upstream connection');
    standin = await startStandin(['--port', String(port)]);
    const afterRestart = written;
    await waitUntil(() => written >= afterRestart + 20, () => `writes to resume after the restart (${written - afterRestart})`, 20000);
  } finally {
    stop = true;
    await writer;
    await client.close();
    await changecast.stop();
    await standin.stop();
  }
  assert.ok(slowest < 16000, `no operation hung: slowest took ${slowest} ms`);
});

test('a request in flight at SIGTERM completes; then changecast exits 0', async () => {
  const standin = await startStandin();
  const changecast = await startChangecast(standin.port);
  const client = new MongoClient(changecast.uri, { retryReads: false });
  // Asks the deployment itself when the find has arrived (waitForFailPoint).
  const direct = new MongoClient(`mongodb://127.0.0.1:${standin.port}/?directConnection=true`);
  try {
    await client.db('it_faults').collection('drain').insertOne({ _id: 1 });
    const { count } = await client.db('admin').command({
      configureFailPoint: 'failCommand',
      mode: { times: 1 },
      data: { failCommands: ['find'], blockConnection: true, blockTimeMS: 1000 },
    });
    const inFlight = client.db('it_faults').collection('drain').findOne({ _id: 1 });
    await direct.db('admin').command({ waitForFailPoint: 'failCommand', timesEntered: count + 1, maxTimeMS: 10000 });
    changecast.proc.kill('SIGTERM');
    assert.deepEqual(await inFlight, { _id: 1 });
    assert.deepEqual(await changecast.waitExit(), { code: 0, signal: null });
    assert.match(changecast.output, /event=draining/);
  } finally {
    await direct.close();
    await client.close();
    await changecast.stop();
    await standin.stop();
  }
});

test('a client that disconnects mid-reply releases its upstream connection', async () => {
  const standin = await startStandin();
  const changecast = await startChangecast(standin.port);
  const client = new MongoClient(changecast.uri);
  try {
    const big = 'x'.repeat(100000);
    await client.db('it_faults').collection('big').insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: i, big })));
    const openSessions = () =>
      [...changecast.output.matchAll(/conn=(\d+) event=accepted/g)]
        .map((m) => m[1])
        .filter((id) => !new RegExp(`conn=${id} event=closed`).test(changecast.output));
    const openBefore = openSessions();
    // A client that asks for 10 MB and leaves once the first bytes of the
    // reply are in.
    const leaver = await RawClient.connect(changecast.port);
    await leaver.command({ hello: 1, $db: 'admin' });
    const replying = new Promise((resolve) => leaver.socket.once('data', resolve));
    leaver.send({ find: 'big', batchSize: 100, $db: 'it_faults' });
    await replying;
    leaver.close();
    await changecast.waitFor(/event=closed reason=client_(closed|error)/);
    // Every session the leaver opened is gone, its upstream connection with it.
    await waitUntil(() => JSON.stringify(openSessions()) === JSON.stringify(openBefore), () => `the leaver's sessions closed (open: ${openSessions()}, before: ${openBefore})`);
  } finally {
    await client.close();
    await changecast.stop();
    await standin.stop();
  }
});

test('a primary stepdown takes the connections pinned to it off the former primary (idle ones stay open, busy ones are cut); drivers carry on through changecast', async () => {
  const standin = await startStandin();
  const changecast = await startChangecast(standin.port);
  const client = new MongoClient(changecast.uri, { serverSelectionTimeoutMS: 15000, retryWrites: true });
  try {
    const coll = client.db('it_faults').collection('stepdown');
    await coll.insertOne({ _id: 'before' });
    await client.db('admin').command({ replSetStepDown: 2, force: true });
    await changecast.waitFor(/event=topology_changed .*demoted=true/);
    await changecast.waitFor(/event=(closed|upstream_released) reason=primary_changed/);
    // Retryable writes ride over the election: the driver reconnects through
    // changecast, which connects to the primary once it is elected again.
    await coll.insertOne({ _id: 'after' });
    assert.deepEqual((await coll.find().sort({ _id: 1 }).toArray()).map((d) => d._id), ['after', 'before']);
    assert.match(changecast.output, /event=primary_known primary=127\.0\.0\.1:\d+ epoch=2/);
  } finally {
    await client.close();
    await changecast.stop();
    await standin.stop();
  }
});
