// SPDX-License-Identifier: Apache-2.0
// The wire port cannot be locked by sockets that never send a whole
// message (docs/wire-proxy.md, "Connections that send nothing"): such a
// socket costs MongoDB no connection, is closed at wire.handshake_timeout_ms,
// and one address holds at most wire.max_connections_per_ip of them; a
// message that starts and stalls is cut at wire.message_timeout_ms, while a
// connection idle between messages is left alone, as MongoDB leaves it.
'use strict';
const { test, after, before } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { MongoClient } = require('mongodb');
const push = require('./push-support');
const { RawClient } = require('../lib/rawwire');

const HANDSHAKE_MS = 3000;
const MESSAGE_MS = 2000;
const STALLED = 300;
const PER_IP = 200;

let stack;
let standinClient;
before(async () => {
  stack = await push.startPush({
    flags: [
      '--auth.mode', 'none',
      '--wire.max_connections', String(STALLED),
      '--wire.max_connections_per_ip', String(PER_IP),
      '--wire.handshake_timeout_ms', String(HANDSHAKE_MS),
      '--wire.message_timeout_ms', String(MESSAGE_MS),
    ],
  });
  standinClient = new MongoClient(stack.standin.uri, { directConnection: true, appName: 'it-lockout-observer' });
  await standinClient.connect();
});
after(async () => {
  await standinClient?.close().catch(() => {});
  await stack?.stop();
});

async function wireMetric(name, labels = {}) {
  const { samples } = await push.metrics(stack.pushUrl);
  return push.metricSum(samples, new RegExp(`^${name}$`), labels);
}

// Waits for the once-a-second copy of the wire's numbers into /metrics.
function waitMetric(name, labels, want) {
  return push.waitUntil(
    async () => (await wireMetric(name, labels)) === want,
    async () => `${name}${JSON.stringify(labels)} = ${want}; it is ${await wireMetric(name, labels)}`,
  );
}

const upstreamConnections = async () =>
  (await standinClient.db('admin').command({ serverStatus: 1 })).connections.current;

// A socket from `localAddress` that has sent `bytes` and then nothing.
function openSocket(port, localAddress, bytes) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    socket.closedAt = null;
    socket.on('error', () => {});
    socket.on('close', () => (socket.closedAt = Date.now()));
    socket.on('connect', () => {
      if (bytes.length) socket.write(bytes);
      resolve(socket);
    });
  });
}

test('sockets that send part of a header cost MongoDB nothing, are capped per address and closed at the deadline, while a driver works', async () => {
  const port = stack.changecast.port;
  // The writer's monitoring connection at least (/metrics copies the wire's
  // numbers once a second).
  const connectionsBefore = await push.waitUntil(async () => {
    const n = await wireMetric('changecast_wire_connections');
    return n >= 1 ? n : null;
  }, 'the writer connected');
  const baseline = await upstreamConnections();
  const upstreamBaseline = await wireMetric('changecast_wire_upstream_connections');
  const connectedLines = () => (stack.changecast.output.match(/event=upstream_connected/g) || []).length;
  const connectedBefore = connectedLines();
  const openedAt = Date.now();
  // The hostile trial's shape: four bytes of a message header, then silence.
  const stalled = await Promise.all(
    Array.from({ length: STALLED }, () => openSocket(port, '127.0.0.2', Buffer.from([0x3a, 0, 0, 0]))),
  );
  await waitMetric('changecast_wire_refused_total', { reason: 'max_connections_per_ip' }, STALLED - PER_IP);
  await push.waitUntil(
    async () => (await wireMetric('changecast_wire_connections')) >= connectionsBefore + PER_IP,
    `${PER_IP} stalled sockets admitted`,
  );

  // An application from another address gets in and works meanwhile.
  const app = new MongoClient(stack.changecast.uri, { serverSelectionTimeoutMS: 5000, appName: 'it-lockout-app' });
  try {
    await app.connect();
    const coll = app.db('lockout').collection('items');
    await coll.insertOne({ _id: 1, during: 'lock-out' });
    assert.deepEqual(await coll.findOne({ _id: 1 }), { _id: 1, during: 'lock-out' });
    assert.equal(stalled.filter((s) => s.closedAt === null).length, PER_IP, 'the stalled sockets still exist');
  } finally {
    await app.close();
  }
  // None of the stalled sockets made changecast connect to MongoDB.
  // (The application's own few may still be closing.)
  assert.ok((await upstreamConnections()) - baseline < 10, 'no upstream connection per stalled socket');
  assert.ok((await wireMetric('changecast_wire_upstream_connections')) - upstreamBaseline < 10);
  assert.ok(connectedLines() - connectedBefore < 10, 'upstream_connected only for the application');

  // Every stalled socket is closed, none before its deadline.
  await push.waitUntil(() => stalled.every((s) => s.closedAt !== null), 'every stalled socket closed', HANDSHAKE_MS + 10000);
  const heldToDeadline = stalled.filter((s) => s.closedAt - openedAt >= HANDSHAKE_MS - 100);
  assert.equal(heldToDeadline.length, PER_IP, 'the admitted ones closed at the deadline, the refused at once');
  await waitMetric('changecast_wire_timeouts_total', { reason: 'handshake' }, PER_IP);
  assert.match(stack.changecast.output, /event=closed reason=handshake_timeout state=awaiting_client/);
  assert.match(stack.changecast.output, /event=connection_refused reason=max_connections_per_ip peer=127\.0\.0\.2/);
  await push.waitUntil(
    async () => (await wireMetric('changecast_wire_connections')) <= connectionsBefore,
    async () => `the wire port back to its ${connectionsBefore} application connections (now ${await wireMetric('changecast_wire_connections')})`,
  );
});

test('a message that starts and stalls is cut at message_timeout_ms; a connection idle between messages stays', async () => {
  const port = stack.changecast.port;
  const timeoutsBefore = await wireMetric('changecast_wire_timeouts_total', { reason: 'message' });
  const idle = await RawClient.connect(port, '127.0.0.1', { localAddress: '127.0.0.3' });
  const trickle = await RawClient.connect(port, '127.0.0.1', { localAddress: '127.0.0.3' });
  for (const client of [idle, trickle]) {
    assert.equal((await client.command({ hello: 1, $db: 'admin' })).doc.isWritablePrimary, true);
  }
  // Half of a ping, then nothing.
  trickle.sendPart({ ping: 1, $db: 'admin' }, 20);
  const startedAt = Date.now();
  await push.waitUntil(() => trickle.closed, 'the stalled message cut', MESSAGE_MS + 10000);
  assert.ok(trickle.closedAt - startedAt >= MESSAGE_MS - 100, 'not cut before message_timeout_ms');
  await waitMetric('changecast_wire_timeouts_total', { reason: 'message' }, timeoutsBefore + 1);
  assert.match(stack.changecast.output, /event=closed reason=message_timeout state=proxying/);

  // The idle one has waited past both deadlines and still answers.
  await push.sleep(Math.max(0, HANDSHAKE_MS + 500 - (Date.now() - startedAt)));
  assert.equal(idle.closed, false);
  assert.equal((await idle.command({ ping: 1, $db: 'admin' })).doc.ok, 1);
  idle.close();
});
