// SPDX-License-Identifier: Apache-2.0
// The browser client library (clients/js/changecast.js) against the real
// daemon, in Node with npm `eventsource` and `ws` as its transports: writes
// go through changecast's wire port with the Node driver, changes come back
// through the library over SSE and WebSocket. Every document carries `seq`,
// so "none missed, none repeated" is checked as seqs === 1..N.
'use strict';
const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { EventSource } = require('eventsource');
const WebSocket = require('ws');
const { startPush, waitUntil, range, writeSeq, closeAll } = require('./push-support');

let cc;
before(async () => {
  cc = await import('../../clients/js/changecast.js');
});

const conns = new Set();
const servers = new Set();
function open(url, options) {
  const conn = cc.connect(url, { WebSocket, EventSource, backoff: { baseMs: 50, capMs: 400 }, ...options });
  conns.add(conn);
  return conn;
}
afterEach(() => {
  for (const c of conns) c.close();
  conns.clear();
  for (const s of servers) s.close();
  servers.clear();
  closeAll();
});

// A TCP relay in front of the push port that a test can cut: cut() closes
// every relayed connection and refuses new ones until resume(). It keeps the
// request line of each connection (to see what a reconnect asked for).
function cuttableRelay(targetPort) {
  return new Promise((resolve) => {
    const sockets = new Set();
    const relay = { refusing: false, requests: [], connections: 0 };
    const server = net.createServer((client) => {
      if (relay.refusing) return client.destroy();
      relay.connections += 1;
      const upstream = net.connect(targetPort, '127.0.0.1');
      sockets.add(client);
      sockets.add(upstream);
      let first = true;
      client.on('data', (d) => {
        if (first) relay.requests.push(d.toString('latin1').split('\r\n')[0]);
        first = false;
      });
      client.pipe(upstream);
      upstream.pipe(client);
      const end = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', end);
      upstream.on('error', end);
      client.on('close', end);
      upstream.on('close', end);
    });
    relay.cut = () => {
      relay.refusing = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    };
    relay.resume = () => {
      relay.refusing = false;
    };
    relay.close = () => {
      relay.cut();
      server.close();
    };
    servers.add(relay);
    server.listen(0, '127.0.0.1', () => {
      relay.url = `http://127.0.0.1:${server.address().port}`;
      resolve(relay);
    });
  });
}

function collect(conn, selection) {
  const got = { events: [], seqs: [], resets: [], errors: [] };
  got.off = conn.subscribe(selection, (event) => {
    got.events.push(event);
    got.seqs.push(event.fullDocument?.seq);
  }, { onReset: (r) => got.resets.push(r), onError: (e) => got.errors.push(e) });
  return got;
}

// Every subscription of conn has been taken by the server (WebSocket
// `subscribed`, SSE response open): writes after this are theirs to see.
function subscribed(conn) {
  return waitUntil(() => conn.streams.size > 0 && [...conn.streams.values()].every((st) => st.active), () => `the subscriptions to be taken (state ${conn.state})`);
}

function states(conn) {
  const seen = [];
  conn.on('state', (d) => seen.push(d.state));
  return seen;
}

// A driver document as the push port writes it (relaxed Extended JSON of
// plain values is plain JSON).
const plain = (doc) => JSON.parse(JSON.stringify(doc));

for (const transport of ['sse', 'ws']) {
  test(`${transport}: subscribe receives every change written through the wire proxy, once, in order; filter and ops apply; unsubscribe stops delivery`, async () => {
    const s = await startPush();
    try {
      const conn = open(s.pushUrl, { transport });
      const seen = states(conn);
      const all = collect(conn, { ns: 'it.orders' });
      const big = collect(conn, { ns: 'it.orders', filter: { 'fullDocument.seq': { $gt: 15 } }, ops: ['insert'] });
      await waitUntil(() => conn.state === 'open', () => `the connection to open (state ${conn.state})`);
      await subscribed(conn);
      assert.equal(conn.transportName, transport);
      const orders = s.client.db('it').collection('orders');
      await writeSeq(orders, 1, 20);
      await orders.updateOne({ _id: 20 }, { $set: { touched: true } });
      await waitUntil(() => all.events.length >= 21 && big.events.length >= 5, () => `21 and 5 events (got ${all.events.length}, ${big.events.length})`);
      assert.deepEqual(all.seqs.slice(0, 20), range(1, 20));
      assert.equal(all.events[20].operationType, 'update');
      assert.deepEqual(all.events[20].updateDescription.updatedFields, { touched: true });
      assert.deepEqual(big.seqs, range(16, 20), 'filter and ops: inserts with seq > 15 only');
      assert.ok(all.events.every((e) => e.ns.db === 'it' && e.ns.coll === 'orders'));

      big.off();
      await writeSeq(orders, 21, 25);
      await waitUntil(() => all.events.length >= 26, 'the writes after unsubscribing on the other subscription');
      assert.deepEqual(big.seqs, range(16, 20), 'nothing after unsubscribe');
      assert.deepEqual(all.seqs.slice(21), range(21, 25));
      assert.deepEqual(seen, ['open']);
      assert.deepEqual(all.resets, []);
      assert.deepEqual(all.errors, []);
    } finally {
      await s.stop();
    }
  });

  test(`${transport}: waitFor(session.operationTime) resolves after the write's change was delivered`, async () => {
    const s = await startPush({ flags: ['--push.watermark_ms', '100'] });
    const session = s.client.startSession();
    try {
      const conn = open(s.pushUrl, { transport });
      const all = collect(conn, { ns: 'it.orders' });
      const quiet = collect(conn, { ns: 'it.chat' });
      await waitUntil(() => conn.state === 'open', 'the connection to open');
      await subscribed(conn);
      const orders = s.client.db('it').collection('orders');
      for (let seq = 1; seq <= 5; seq++) {
        await orders.insertOne({ _id: seq, seq }, { session });
        const operationTime = session.operationTime;
        assert.ok(operationTime, 'the driver session has an operationTime');
        await conn.waitFor(operationTime, { timeoutMs: 15000 });
        assert.ok(all.seqs.includes(seq), `seq ${seq} was delivered before waitFor resolved (got ${all.seqs})`);
      }
      // The other forms of the same time, and a subscription that saw no
      // change at all (it.chat): its watermarks carry it past the write.
      const t = session.operationTime;
      await conn.waitFor({ t: t.t, i: t.i }, { timeoutMs: 15000 });
      await conn.waitFor({ $timestamp: { t: t.t, i: t.i } }, { timeoutMs: 15000 });
      assert.deepEqual(quiet.events, []);
      await assert.rejects(conn.waitFor({ t: t.t + 3600, i: 0 }, { timeoutMs: 300 }), /timed out/, 'a time in the future is not reached');
    } finally {
      await session.endSession();
      await s.stop();
    }
  });

  test(`${transport}: a cut connection reconnects with backoff and resumes after the last token: nothing missed, nothing repeated`, async () => {
    const s = await startPush();
    try {
      const relay = await cuttableRelay(s.changecast.pushPort);
      const conn = open(relay.url, { transport });
      const seen = states(conn);
      const all = collect(conn, { ns: 'it.orders' });
      await waitUntil(() => conn.state === 'open', 'the connection to open');
      await subscribed(conn);
      const orders = s.client.db('it').collection('orders');
      await writeSeq(orders, 1, 30);
      await waitUntil(() => all.seqs.length >= 30, () => `30 events before the cut (got ${all.seqs.length})`);
      const before = relay.connections;

      relay.cut();
      await waitUntil(() => conn.state === 'reconnecting', () => `the library to notice (state ${conn.state})`);
      await writeSeq(orders, 31, 60); // written while the client is away
      relay.resume();
      await waitUntil(() => all.seqs.length >= 60, () => `60 events after the reconnect (got ${all.seqs.length})`);
      await writeSeq(orders, 61, 70);
      await waitUntil(() => all.seqs.length >= 70, () => `70 events (got ${all.seqs.length})`);
      assert.deepEqual(all.seqs, range(1, 70), 'every seq exactly once across the cut');
      assert.ok(relay.connections > before, 'it reconnected');
      assert.deepEqual(seen.slice(0, 3), ['open', 'reconnecting', 'open']);
      const last = relay.requests[relay.requests.length - 1];
      if (transport === 'sse') {
        assert.match(last, /^GET \/v1\/events\?.*lastEventId=[0-9A-F]+/i, 'the SSE reconnect names the last token');
      } else {
        assert.match(last, /^GET \/v1\/ws/);
      }
      assert.deepEqual(all.resets, []);
    } finally {
      await s.stop();
    }
  });
}

test('auto transport uses WebSocket, and falls back to SSE where a WebSocket cannot open', async () => {
  const s = await startPush();
  try {
    const ws = open(s.pushUrl, { transport: 'auto' });
    collect(ws, { ns: 'it.orders' });
    await waitUntil(() => ws.state === 'open', 'the auto connection to open');
    assert.equal(ws.transportName, 'ws');
    // A WebSocket constructor that cannot connect (an endpoint that is not
    // a WebSocket server) makes the connection switch to SSE.
    class NoWebSocket extends WebSocket {
      constructor(url, protocols) {
        super(url.replace('/v1/ws', '/v1/nowhere'), protocols);
      }
    }
    const conn = open(s.pushUrl, { transport: 'auto', WebSocket: NoWebSocket });
    const got = collect(conn, { ns: 'it.orders' });
    await waitUntil(() => conn.state === 'open', () => `the fallback to open (state ${conn.state})`);
    await subscribed(conn);
    assert.equal(conn.transportName, 'sse');
    await writeSeq(s.client.db('it').collection('orders'), 1, 3);
    await waitUntil(() => got.seqs.length >= 3, 'the events over SSE');
    assert.deepEqual(got.seqs, [1, 2, 3]);
  } finally {
    await s.stop();
  }
});

test('a subscription the server refuses reports its error once and is not retried', async () => {
  const s = await startPush();
  try {
    for (const transport of ['sse', 'ws']) {
      const conn = open(s.pushUrl, { transport });
      const errors = [];
      const retries = [];
      conn.on('error', (e) => errors.push(e));
      // The library schedules a retry (and says so) in the same turn that
      // handles an error, so none by the time both errors are in means none.
      conn.on('retry', (r) => retries.push(r));
      const hidden = collect(conn, { ns: 'secret.things' });
      const badFilter = collect(conn, { ns: 'it.orders', filter: { $where: 'true' } });
      await waitUntil(() => hidden.errors.length && badFilter.errors.length, () => `${transport}: both errors (${JSON.stringify([hidden.errors, badFilter.errors])})`);
      assert.equal(hidden.errors[0].code, 'not_exposed', transport);
      assert.equal(badFilter.errors[0].code, 'bad_filter', transport);
      assert.deepEqual(retries.filter((r) => r.subscription !== undefined), [], `${transport}: no subscription retried`);
      assert.equal(hidden.errors.length, 1);
      assert.equal(badFilter.errors.length, 1);
      assert.equal(conn.streams.size, 0, `${transport}: refused subscriptions are dropped`);
    }
  } finally {
    await s.stop();
  }
});

// ------------------------------------------------------- live collections

// The live query's snapshot is in (ready resolved).
function loaded(coll) {
  return waitUntil(() => coll.status === 'live' || coll.status === 'failed', () => `the snapshot of ${coll.ns} (status ${coll.status})`).then(() => coll.ready);
}

// The store must equal what a find() through the driver returns, after
// every kind of write.
async function assertMirrors(coll, orders, what) {
  const truth = new Map((await orders.find({}).toArray()).map((d) => [cc.idKey(d._id), plain(d)]));
  await waitUntil(() => coll.docs.size === truth.size && [...truth].every(([k, d]) => cc.deepEqual(coll.docs.get(k), d)), () => `the store to mirror the collection after ${what}:\nstore ${JSON.stringify([...coll.docs])}\ntruth ${JSON.stringify([...truth])}`);
}

for (const transport of ['sse', 'ws']) {
  test(`${transport}: collection() loads a snapshot, then applies inserts, nested updates, array truncation, removed fields, replaces and deletes in place`, async () => {
    const s = await startPush();
    try {
      const orders = s.client.db('it').collection('orders');
      await orders.insertMany([
        { _id: 1, status: 'new', items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 2 }, { sku: 'c', qty: 3 }], meta: { tags: ['x'], note: 'n' } },
        { _id: 2, status: 'paid', items: [] },
      ]);
      const conn = open(s.pushUrl, { transport });
      const coll = conn.collection('it.orders');
      const heard = [];
      coll.subscribe((c) => heard.push(c));
      await loaded(coll);
      assert.deepEqual([...coll.keys()].sort(), ['1', '2']);
      await assertMirrors(coll, orders, 'the snapshot');
      const untouched = coll.get(2);

      heard.length = 0;
      await orders.updateOne({ _id: 1 }, { $set: { 'items.1.qty': 20, 'meta.note': 'changed', 'meta.deep.er': true } });
      await assertMirrors(coll, orders, 'a nested $set');
      assert.deepEqual(heard.at(-1), { inserted: [], updated: ['1'], deleted: [], reset: false });
      assert.equal(coll.get(2), untouched, 'the other row is the same object');
      await orders.updateOne({ _id: 1 }, { $unset: { 'meta.tags': '' }, $pop: { items: 1 } });
      await assertMirrors(coll, orders, '$unset and $pop');
      await orders.updateOne({ _id: 1 }, [{ $set: { items: { $slice: ['$items', 1] } } }]);
      await assertMirrors(coll, orders, 'a pipeline update shortening an array');
      await orders.replaceOne({ _id: 2 }, { status: 'replaced', n: 1 });
      await assertMirrors(coll, orders, 'a replace');
      await orders.insertOne({ _id: 3, status: 'new' });
      await assertMirrors(coll, orders, 'an insert');
      await orders.deleteOne({ _id: 1 });
      await assertMirrors(coll, orders, 'a delete');
      assert.deepEqual(heard.at(-1), { inserted: [], updated: [], deleted: ['1'], reset: false });

      const session = s.client.startSession();
      try {
        await orders.updateOne({ _id: 3 }, { $set: { status: 'paid' } }, { session });
        await coll.waitFor(session.operationTime, { timeoutMs: 15000 });
        assert.equal(coll.get(3).status, 'paid', 'waitFor on the store resolves once the write is applied');
      } finally {
        await session.endSession();
      }
    } finally {
      await s.stop();
    }
  });

  test(`${transport}: collection() with a filter keeps exactly the matching documents (format=docs) across a cut connection`, async () => {
    const s = await startPush();
    try {
      const orders = s.client.db('it').collection('orders');
      await orders.insertMany([{ _id: 1, status: 'open' }, { _id: 2, status: 'closed' }]);
      const relay = await cuttableRelay(s.changecast.pushPort);
      const conn = open(relay.url, { transport });
      const coll = conn.collection('it.orders', { filter: { status: 'open' } });
      assert.equal(coll.format, 'docs');
      await loaded(coll);
      const truth = async () => new Map((await orders.find({ status: 'open' }).toArray()).map((d) => [cc.idKey(d._id), plain(d)]));
      const mirrors = async (what) => {
        const t = await truth();
        await waitUntil(() => coll.docs.size === t.size && [...t].every(([k, d]) => cc.deepEqual(coll.docs.get(k), d)), () => `the store to hold the open orders after ${what}: ${JSON.stringify([...coll.docs])} vs ${JSON.stringify([...t])}`);
      };
      await mirrors('the snapshot');
      await orders.updateOne({ _id: 2 }, { $set: { status: 'open' } });
      await mirrors('a document entering');
      await orders.updateOne({ _id: 1 }, { $set: { status: 'closed' } });
      await mirrors('a document leaving');
      relay.cut();
      await waitUntil(() => conn.state === 'reconnecting', 'the library to notice the cut');
      await orders.insertOne({ _id: 3, status: 'open' });
      await orders.updateOne({ _id: 2 }, { $set: { status: 'closed' } });
      relay.resume();
      await waitUntil(() => conn.state === 'open', 'the reconnect');
      await mirrors('writes made while the connection was cut');
      assert.equal(coll.status, 'live');
    } finally {
      await s.stop();
    }
  });
}

for (const transport of ['sse', 'ws']) {
  test(`${transport}: a multi-document transaction reaches a subscription and a store together, once`, async () => {
    const s = await startPush();
    const session = s.client.startSession();
    try {
      const orders = s.client.db('it').collection('orders');
      await orders.insertMany([{ _id: 1, v: 0 }, { _id: 2, v: 0 }]);
      const conn = open(s.pushUrl, { transport });
      const txns = [];
      const changes = [];
      conn.subscribe({ ns: 'it.orders' }, (event, info) => changes.push({ op: event.operationType, txn: info.txn }), { onTransaction: (items, txn) => txns.push({ items, txn }) });
      const coll = conn.collection('it.orders');
      const heard = [];
      coll.subscribe((c) => heard.push(c));
      await loaded(coll);
      await waitUntil(() => conn.state === 'open', 'the connection to open');
      await subscribed(conn);
      heard.length = 0;
      await session.withTransaction(async () => {
        await orders.updateOne({ _id: 1 }, { $set: { v: 1 } }, { session });
        await orders.insertOne({ _id: 3, v: 1 }, { session });
        await orders.deleteOne({ _id: 2 }, { session });
      });
      // changecast holds a transaction until its capture reads the event
      // after it (it cannot know the transaction ended before): write one.
      await s.client.db('it').collection('chat').insertOne({ after: 'the transaction' });
      await coll.waitFor(session.operationTime, { timeoutMs: 15000 });
      await conn.waitFor(session.operationTime, { timeoutMs: 15000 });
      assert.deepEqual(heard, [{ inserted: ['3'], updated: ['1'], deleted: ['2'], reset: false }], 'one change set for the whole transaction');
      await assertMirrors(coll, orders, 'the transaction');
      assert.equal(txns.length, 1, 'onTransaction once');
      assert.deepEqual(txns[0].items.map((i) => i.event.operationType), ['update', 'insert', 'delete']);
      assert.equal(typeof txns[0].txn.txnNumber, 'number');
      // (The plain subscription may also see the insertMany above: it starts
      // from where capture is, which can be just behind the driver.)
      const inTxn = changes.filter((c) => c.txn);
      assert.deepEqual(inTxn.map((c) => c.op), ['update', 'insert', 'delete']);
      assert.ok(inTxn.every((c) => c.txn.txnNumber === txns[0].txn.txnNumber));
      assert.ok(changes.slice(changes.indexOf(inTxn[0])).every((c) => c.txn), 'the transaction comes last, whole');
    } finally {
      await session.endSession();
      await s.stop();
    }
  });
}

test('a reset (capture restarted upstream) makes the store read a new snapshot and swap it in one step', async () => {
  const s = await startPush({ standinArgs: ['--oplog-size', '30'] });
  try {
    const orders = s.client.db('it').collection('orders');
    await writeSeq(orders, 1, 5);
    const conn = open(s.pushUrl, { transport: 'ws' });
    const coll = conn.collection('it.orders');
    const heard = [];
    coll.subscribe((c) => heard.push(c));
    await loaded(coll);
    await assertMirrors(coll, orders, 'the snapshot');
    // As in push-faults: the capture stream's getMore waits while writes push
    // its position out of a 30-event history, so capture restarts from now.
    await s.client.db('admin').command({ configureFailPoint: 'failCommand', mode: { times: 1 }, data: { failCommands: ['getMore'], appName: 'changecast-capture@it', blockConnection: true, blockTimeMS: 3000 } });
    await writeSeq(orders, 6, 155);
    await orders.deleteOne({ _id: 1 });
    // (The store may resync so fast that its 'resyncing' status is never
    // seen from here: its lastReset says it happened.)
    await waitUntil(() => coll.lastReset, () => `the store to see the reset (status ${coll.status})`, 30000);
    // Keep writing, as an application would, until the swap is heard.
    let seq = 500;
    await waitUntil(async () => {
      await orders.insertOne({ _id: ++seq, seq });
      return heard.some((c) => c.reset);
    }, () => `a reset swap (heard ${JSON.stringify(heard.map((c) => ({ ...c, inserted: c.inserted.length })))})`, 30000);
    assert.equal(coll.lastReset.reason, 'capture_restarted');
    await assertMirrors(coll, orders, 'the reset');
    await writeSeq(orders, 1001, 1002);
    await assertMirrors(coll, orders, 'writes after the reset');
  } finally {
    await s.stop();
  }
});

after(() => closeAll());
