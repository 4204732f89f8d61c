// SPDX-License-Identifier: Apache-2.0
// Rules added after a hostile review of the push port (docs/security.md):
// without tokens only loopback host names are served (DNS rebinding), a
// WebSocket without a token must authenticate within 10 s, and one
// subscription cannot name more than 64 namespaces; a request head that
// libwebsockets could not hold is answered 414 or 431, one with a body 400
// (src/push/gate.c), instead of being cut without a word.
'use strict';
const net = require('node:net');
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { startPush, openWs, waitUntil } = require('./push-support');
const { openStream, connectWs, closeAll, makeSecret, jwtFlags } = require('./auth-support');

after(() => closeAll());

// Sends `head` (and `rest`) on a raw socket, in pieces when `pieces` > 1,
// and reads the whole answer until the server closes.
function rawRequest(port, head, { pieces = 1, pauseMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const chunks = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', (err) => resolve({ error: err.code, text: Buffer.concat(chunks).toString() }));
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString();
      const status = Number((text.match(/^HTTP\/1\.1 (\d{3})/) || [])[1]) || null;
      const split = text.indexOf('\r\n\r\n');
      const body = split >= 0 ? text.slice(split + 4) : '';
      let json = null;
      try { json = JSON.parse(body); } catch { /* a stream, or nothing */ }
      resolve({ status, text, head: split >= 0 ? text.slice(0, split) : text, json });
    });
    socket.on('connect', async () => {
      const bytes = Buffer.from(head);
      const size = Math.ceil(bytes.length / pieces);
      for (let at = 0; at < bytes.length; at += size) {
        if (socket.destroyed) return;
        socket.write(bytes.subarray(at, at + size));
        if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
      }
      setTimeout(() => socket.end(), 1500); // a stream that stays open ends our read
    });
    socket.setTimeout(10000, () => reject(new Error('no answer within 10 s')));
  });
}

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

test('a request head libwebsockets could not hold is answered 414 or 431 with a JSON error (and CORS for an allowed origin), a body 400; heads that fit, whole or trickled, are served', async () => {
  const stack = await startPush({ flags: ['--push.allowed_origins', 'https://app.example'] });
  try {
    const port = stack.changecast.pushPort;
    const line = (target) => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`;
    const cases = [
      ['a 100 KB access_token in the URL', line(`/v1/events?ns=shop.orders&access_token=${'a'.repeat(100000)}`) + '\r\n', 414, 'uri_too_long'],
      ['a 20 KB Authorization header', line('/v1/events?ns=shop.orders') + `Origin: https://app.example\r\nAuthorization: Bearer ${'b'.repeat(20000)}\r\n\r\n`, 431, 'headers_too_large'],
      ['one 64 KiB header', line('/v1/events?ns=shop.orders') + `X-Big: ${'c'.repeat(65536)}\r\n\r\n`, 431, 'headers_too_large'],
      ['2,000 headers', line('/v1/events?ns=shop.orders') + Array.from({ length: 2000 }, (_, i) => `X-H${i}: v\r\n`).join('') + '\r\n', 431, 'headers_too_large'],
      ['both Content-Length and Transfer-Encoding', line('/v1/events?ns=shop.orders') + 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'bad_request'],
      ['a WebSocket upgrade with a 100 KB URL', line(`/v1/ws?access_token=${'d'.repeat(100000)}`) + 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 414, 'uri_too_long'],
    ];
    for (const [what, head, status, code] of cases) {
      const answer = await rawRequest(port, head);
      assert.equal(answer.status, status, `${what}: ${answer.error || answer.text.slice(0, 200)}`);
      assert.equal(answer.json?.error, code, what);
      assert.match(answer.head, /content-type: application\/json/i, what);
    }
    const cors = await rawRequest(port, cases[1][1]);
    assert.match(cors.head, /access-control-allow-origin: https:\/\/app\.example/i);
    assert.doesNotMatch((await rawRequest(port, cases[2][1])).head, /access-control-allow-origin/i, 'no Origin, no CORS');
    assert.match(stack.changecast.output, /event=request_refused status=431 error=headers_too_large peer=127\.0\.0\.1/);

    // A head of exactly 8,192 bytes is still lws's, and served.
    const base = line('/v1/events?ns=shop.orders') + 'X-Pad: \r\n\r\n';
    const exact = base.replace('X-Pad: ', `X-Pad: ${'p'.repeat(8192 - base.length)}`);
    assert.equal(exact.length, 8192);
    const served = await rawRequest(port, exact);
    assert.equal(served.status, 200, served.text.slice(0, 200));
    assert.match(served.head, /content-type: text\/event-stream/i);
    // A head trickled in 40 pieces is read to its end, then served.
    const trickled = await rawRequest(port, line('/healthz') + 'Accept: application/json\r\n\r\n', { pieces: 40, pauseMs: 10 });
    assert.equal(trickled.status, 200, trickled.text.slice(0, 200));
    assert.equal(trickled.json.status, 'ok');
    // The port goes on serving.
    const after = await openStream(`http://127.0.0.1:${port}/v1/events?ns=shop.orders`);
    assert.equal(after.status, 200);
    after.close();
  } finally {
    await stack.stop();
  }
});
