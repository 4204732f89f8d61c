// SPDX-License-Identifier: Apache-2.0
// Applications come back quickly after their database link is cut
// (docs/wire-proxy.md, "While no primary is known"): while changecast has no
// primary it answers handshakes itself, as a mongos does when its shards are
// unreachable, so drivers keep their router and retry; operations wait for
// the primary, up to wire.primary_wait_ms. Two 3-second cuts of the link
// between changecast and the stand-in, under a Node driver writer and a
// PyMongo writer, both with retryable writes: no operation waits much longer
// than the outage, none fails, none acknowledged is lost.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { MongoClient } = require('mongodb');
const { startStandin, startChangecast } = require('./support');
const { Relay } = require('../lib/relay');
const { RawClient } = require('../lib/rawwire');
const { sleep } = require('./push-support');

const OUTAGE_MS = 3000;
// The outage, then changecast's rescan of the upstream (every 500 ms while
// no primary is known) and the driver's own retry, with room for a slow CI.
const SLOWEST_ALLOWED_MS = OUTAGE_MS + 4000;

test('two cuts of the upstream link: drivers wait them out, retryable writes succeed, nothing acknowledged is lost', async () => {
  const standin = await startStandin();
  const relay = new Relay(standin.port);
  await relay.start();
  const changecast = await startChangecast(standin.port, [], {
    upstreamUri: `mongodb://127.0.0.1:${relay.port}/?directConnection=true`,
  });
  const client = new MongoClient(changecast.uri, { appName: 'it-outage-node', retryWrites: true });
  const direct = new MongoClient(standin.uri, { directConnection: true });
  try {
    await client.connect();
    const coll = client.db('it_outage').collection('node');
    const node = { acked: [], failures: [], slowest: 0, stop: false };
    const nodeWriter = (async () => {
      for (let id = 0; !node.stop; id++) {
        const started = Date.now();
        try {
          await coll.insertOne({ _id: id });
          node.acked.push(id);
        } catch (err) {
          node.failures.push(`${err.name}: ${err.message}`);
        }
        node.slowest = Math.max(node.slowest, Date.now() - started);
        await sleep(20);
      }
    })();
    const pymongo = promisify(execFile)(
      '/usr/bin/python3',
      [path.join(__dirname, 'py/pymongo_outage_writer.py'), changecast.uri, '14', '0'],
      { timeout: 120000 },
    );

    for (let cut = 0; cut < 2; cut++) {
      await sleep(2000);
      relay.cut();
      await sleep(OUTAGE_MS);
      relay.restore();
    }
    await sleep(4000);
    node.stop = true;
    await nodeWriter;
    const py = JSON.parse((await pymongo).stdout.trim().split('\n').pop());

    for (const [name, result] of [['node', { ...node, slowest_ms: node.slowest }], ['pymongo', py]]) {
      assert.deepEqual(result.failures, [], `${name}: no operation failed`);
      assert.ok(result.slowest_ms < SLOWEST_ALLOWED_MS, `${name}: slowest operation ${result.slowest_ms} ms`);
      assert.ok(result.acked.length > 50, `${name}: writes flowed (${result.acked.length})`);
    }
    // Every acknowledged write is in the database, once.
    await direct.connect();
    for (const [name, acked] of [['node', node.acked], ['pymongo', py.acked]]) {
      const stored = await direct.db('it_outage').collection(name).find({}, { projection: { _id: 1 } }).toArray();
      const ids = new Set(stored.map((d) => d._id));
      assert.deepEqual(acked.filter((id) => !ids.has(id)), [], `${name}: acknowledged writes all stored`);
    }
    // changecast saw both outages and kept its applications' connections
    // served meanwhile.
    assert.equal((changecast.output.match(/event=primary_unknown/g) || []).length >= 2, true, changecast.output.slice(-3000));
  } finally {
    await client.close().catch(() => {});
    await direct.close().catch(() => {});
    await changecast.stop();
    await relay.close();
    await standin.stop();
  }
});

// changecast's session number for a raw client, from its accept line.
async function sessionOf(changecast, client) {
  const match = await changecast.waitFor(new RegExp(`conn=(\\d+) event=accepted peer=127\\.0\\.0\\.1:${client.socket.localPort} `));
  return match[1];
}

test('a connection between requests outlives a cut of the upstream link, as with a mongos; one that authenticated on its upstream connection is closed', async () => {
  const standin = await startStandin();
  const relay = new Relay(standin.port);
  await relay.start();
  const changecast = await startChangecast(standin.port, [], {
    upstreamUri: `mongodb://127.0.0.1:${relay.port}/?directConnection=true`,
  });
  const idle = await RawClient.connect(changecast.port);
  const authenticated = await RawClient.connect(changecast.port);
  try {
    assert.equal((await idle.command({ hello: 1, $db: 'admin' })).doc.isWritablePrimary, true);
    assert.equal((await idle.command({ ping: 1, $db: 'admin' })).doc.ok, 1);
    // Whatever the stand-in answers, the connection asked to authenticate.
    await authenticated.command({ saslStart: 1, mechanism: 'SCRAM-SHA-256', payload: Buffer.from('n,,n=u,r=abc'), $db: 'admin' });
    const idleId = await sessionOf(changecast, idle);
    const authenticatedId = await sessionOf(changecast, authenticated);

    relay.cut();
    await changecast.waitFor(new RegExp(`conn=${idleId} event=upstream_released reason=upstream_lost`), 15000);
    await changecast.waitFor(new RegExp(`conn=${authenticatedId} event=closed reason=upstream_closed`), 15000);
    await changecast.waitFor(/event=primary_unknown/, 15000);
    // Its monitor's next hello is answered at once, from the last known reply.
    const hello = await idle.command({ hello: 1, $db: 'admin' }, { timeoutMs: 1500 });
    assert.equal(hello.doc.isWritablePrimary, true);

    relay.restore();
    await changecast.waitFor(/event=primary_unknown[^]*event=primary_known/, 15000);
    const ping = await idle.command({ ping: 1, $db: 'admin' });
    assert.equal(ping.doc.ok, 1);
    assert.equal(idle.closed, false);
    assert.equal(authenticated.closed, true);
    assert.doesNotMatch(changecast.output, new RegExp(`conn=${idleId} event=closed`));
    assert.match(changecast.output, new RegExp(`conn=${idleId} event=upstream_released[^]*conn=${idleId} event=upstream_connected`));
  } finally {
    idle.close();
    authenticated.close();
    await changecast.stop();
    await relay.close();
    await standin.stop();
  }
});

test('while the link is cut, an application connects at once, and an operation that outlasts primary_wait_ms gets the retryable error a mongos gives', async () => {
  const standin = await startStandin();
  const relay = new Relay(standin.port);
  await relay.start();
  const changecast = await startChangecast(standin.port, ['--wire.primary_wait_ms', '1500'], {
    upstreamUri: `mongodb://127.0.0.1:${relay.port}/?directConnection=true`,
  });
  // One handshake reply from the primary, for changecast to answer from.
  const early = new MongoClient(changecast.uri);
  let fresh;
  try {
    await early.db('admin').command({ ping: 1 });
    relay.cut();
    await changecast.waitFor(/event=primary_unknown/, 15000);

    fresh = new MongoClient(changecast.uri, { serverSelectionTimeoutMS: 5000, retryWrites: true, retryReads: true, appName: 'it-during-outage' });
    const started = Date.now();
    await fresh.connect();
    const hello = await fresh.db('admin').command({ hello: 1 });
    assert.ok(Date.now() - started < 1500, `handshakes answered at once (${Date.now() - started} ms)`);
    assert.equal(hello.msg, 'isdbgrid');
    assert.equal(hello.isWritablePrimary, true);
    assert.equal(hello.hosts, undefined);

    const coll = fresh.db('it_outage').collection('refused');
    await assert.rejects(coll.insertOne({ _id: 1 }), (err) => {
      assert.equal(err.code, 6, err.message);
      assert.equal(err.codeName, 'HostUnreachable');
      assert.ok(err.hasErrorLabel('RetryableWriteError'), JSON.stringify(err.errorLabels));
      return true;
    });
    await assert.rejects(coll.findOne({ _id: 1 }), (err) => err.code === 6 && !err.hasErrorLabel('RetryableWriteError'));
    assert.match(changecast.output, /event=refused reason=no_primary command=insert/);

    relay.restore();
    await coll.insertOne({ _id: 2 });
    assert.deepEqual(await coll.findOne({ _id: 2 }), { _id: 2 });
  } finally {
    await early.close().catch(() => {});
    await fresh?.close().catch(() => {});
    await changecast.stop();
    await relay.close();
    await standin.stop();
  }
});
