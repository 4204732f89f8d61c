// SPDX-License-Identifier: Apache-2.0
// Rules added after a hostile review of the push port (docs/security.md):
// without tokens only loopback host names are served (DNS rebinding), a
// WebSocket without a token must authenticate within 10 s, and one
// subscription cannot name more than 64 namespaces.
'use strict';
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { startPush, openWs, waitUntil } = require('./push-support');
const { openStream, connectWs, closeAll, makeSecret, jwtFlags } = require('./auth-support');

after(() => closeAll());

test('with auth.mode none, a request that names a host other than a loopback one is refused 403 (DNS rebinding)', async () => {
  const stack = await startPush();
  try {
    const port = stack.changecast.pushPort;
    const url = `http://127.0.0.1:${port}/v1/events?ns=shop.orders`;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost', `127.0.0.2:${port}`]) {
      const ok = await openStream(url, { headers: { Host: host } });
      assert.equal(ok.status, 200, `Host: ${host}`);
      ok.close();
    }
    for (const host of [`evil.example:${port}`, 'evil.example', `10.0.0.1:${port}`]) {
      const refused = await openStream(url, { headers: { Host: host, Origin: `http://${host}` } });
      assert.equal(refused.status, 403, `Host: ${host}`);
      assert.equal(refused.json.error, 'origin_not_allowed');
      const ws = await connectWs(`ws://127.0.0.1:${port}/v1/ws`, { headers: { Host: host, Origin: `http://${host}` } });
      assert.equal(ws.opened, false, `WebSocket with Host: ${host}`);
    }
  } finally {
    await stack.stop();
  }
});

test('a WebSocket that never sends a token is closed after 10 s with 4001 token_missing', async () => {
  const secret = makeSecret();
  const stack = await startPush({ flags: jwtFlags({ secretFile: secret.file }) });
  try {
    const ws = await connectWs(`ws://127.0.0.1:${stack.changecast.pushPort}/v1/ws`);
    assert.equal(ws.opened, true);
    await waitUntil(() => ws.closed, 'the socket to be closed', 20000);
    assert.deepEqual(ws.closed, { code: 4001, reason: 'token_missing' });
  } finally {
    await stack.stop();
  }
});

test('one subscription may name at most 64 namespaces; the socket stays', async () => {
  const stack = await startPush();
  try {
    const ws = await openWs(stack.wsUrl);
    const many = Array.from({ length: 65 }, (_, i) => `shop.c${i}`);
    const refused = await ws.subscribe('many', many);
    assert.equal(refused.type, 'error');
    assert.match(refused.message, /at most 64 namespaces/);
    assert.equal((await ws.subscribe('fine', many.slice(0, 64))).type, 'subscribed');
    ws.close();
  } finally {
    await stack.stop();
  }
});

test('a transaction far larger than push.max_queue_bytes reaches readers that keep up, whole, without a drop', async () => {
  const stack = await startPush();
  try {
    const coll = stack.client.db('shop').collection('bigtxn');
    const sse = await openStream(`${stack.pushUrl}/v1/events?ns=shop.bigtxn`);
    const ws = await openWs(stack.wsUrl);
    await ws.subscribe('t', 'shop.bigtxn');
    const big = 'y'.repeat(1024 * 1024);
    const session = stack.client.startSession();
    await session.withTransaction(async () => {
      for (let i = 0; i < 10; i++) await coll.insertOne({ _id: `t${i}`, big }, { session });
    });
    await session.endSession();
    await coll.insertOne({ _id: 'after' });
    await waitUntil(() => sse.events.filter((e) => e.type === 'change').length === 11, 'eleven SSE changes', 60000);
    await waitUntil(() => ws.of('transaction', 't').length === 1 && ws.changes('t').length === 1, 'the transaction and the write after it', 60000);
    assert.equal(sse.events.find((e) => e.type === 'txn').json.count, 10);
    assert.equal(ws.of('transaction', 't')[0].changes.length, 10);
    assert.equal(sse.events.filter((e) => e.type === 'reset').length + ws.of('reset').length, 0);
    ws.close();
    sse.close();
  } finally {
    await stack.stop();
  }
});
