// SPDX-License-Identifier: Apache-2.0
// WebSocket permessage-deflate (RFC 7692) on the push port: what the 101
// answers to each kind of offer, events compressed once and sent with RSV1
// (read here frame by frame from a raw socket and inflated with zlib), small
// messages left plain, a compressed client message accepted, npm `ws` with
// and without the extension, and push.compression off.
'use strict';
const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const zlib = require('node:zlib');
const { usePush, startPush, waitUntil, openWs, openSse, openCurlSse, sseUrl, closeAll, metrics, metricSum } = require('./push-support');

const stack = usePush({ flags: ['--push.heartbeat_ms', '60000'] });
afterEach(() => closeAll());

const ACCEPTED = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

// A raw WebSocket client: the 101's headers, then the server's frames as
// {fin, rsv1, opcode, payload}.
function rawWs(port, extensions) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const key = crypto.randomBytes(16).toString('base64');
    const client = { socket, frames: [], headers: null, buffered: Buffer.alloc(0) };
    socket.on('error', reject);
    socket.on('connect', () => socket.write(
      `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: changecast.v1\r\n` +
      (extensions === undefined ? '' : `Sec-WebSocket-Extensions: ${extensions}\r\n`) + '\r\n'));
    socket.on('data', (d) => {
      client.buffered = Buffer.concat([client.buffered, d]);
      if (!client.headers) {
        const end = client.buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = client.buffered.subarray(0, end).toString('latin1');
        if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head));
        client.headers = head;
        client.buffered = client.buffered.subarray(end + 4);
        resolve(client);
      }
      for (;;) {
        const b = client.buffered;
        if (b.length < 2) return;
        let len = b[1] & 0x7f;
        let at = 2;
        if (len === 126) { if (b.length < 4) return; len = b.readUInt16BE(2); at = 4; }
        if (len === 127) { if (b.length < 10) return; len = Number(b.readBigUInt64BE(2)); at = 10; }
        if (b.length < at + len) return;
        client.frames.push({ fin: !!(b[0] & 0x80), rsv1: !!(b[0] & 0x40), opcode: b[0] & 0x0f, payload: b.subarray(at, at + len) });
        client.buffered = b.subarray(at + len);
      }
    });
  });
}

function extensionHeader(headers) {
  const line = headers.split('\r\n').find((l) => /^sec-websocket-extensions:/i.test(l));
  return line ? line.slice(line.indexOf(':') + 1).trim() : null;
}

// A masked client text frame; compressed (RSV1) when `deflate`.
function clientText(text, { deflate = false } = {}) {
  let payload = Buffer.from(text);
  if (deflate) {
    const raw = zlib.deflateRawSync(payload, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    payload = raw.subarray(0, raw.length - 4); // RFC 7692 7.2.1: the 00 00 ff ff tail left off
  }
  const mask = crypto.randomBytes(4);
  const first = 0x80 | (deflate ? 0x40 : 0) | 0x1;
  const head = payload.length < 126 ? Buffer.from([first, 0x80 | payload.length])
    : Buffer.from([first, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, mask, payload.map((b, i) => b ^ mask[i % 4])]);
}

// The text of a server message: inflated (tail restored) when RSV1 is set.
function textOf(frame) {
  if (!frame.rsv1) return frame.payload.toString('utf8');
  return zlib.inflateRawSync(Buffer.concat([frame.payload, Buffer.from([0, 0, 0xff, 0xff])]),
    { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('utf8');
}

const messages = (client) => client.frames.filter((f) => f.opcode === 1).map((f) => ({ frame: f, message: JSON.parse(textOf(f)) }));

test('the 101 accepts an acceptable permessage-deflate offer with both no_context_takeover parameters, and declines the others', async () => {
  const port = stack.changecast.pushPort;
  const cases = [
    ['permessage-deflate', ACCEPTED],
    ['permessage-deflate; client_max_window_bits', ACCEPTED],
    ['permessage-deflate; client_max_window_bits=10; server_no_context_takeover', ACCEPTED],
    ['permessage-deflate; server_max_window_bits=15', ACCEPTED],
    ['permessage-deflate; server_max_window_bits=10', null],
    ['permessage-deflate; server_max_window_bits=10, permessage-deflate', ACCEPTED],
    ['permessage-deflate; mystery_param', null],
    ['permessage-deflate; server_no_context_takeover; server_no_context_takeover', null],
    ['permessage-deflate; client_max_window_bits=16', null],
    ['x-webkit-deflate-frame', null],
    [undefined, null],
  ];
  for (const [offer, expected] of cases) {
    const client = await rawWs(port, offer);
    assert.equal(extensionHeader(client.headers), expected, `offer ${offer}`);
    client.socket.destroy();
  }
});

test('events of at least 200 bytes arrive compressed (RSV1) and inflate to the same JSON; small messages stay plain; a compressed client message is accepted', async () => {
  const client = await rawWs(stack.changecast.pushPort, 'permessage-deflate; client_max_window_bits');
  client.socket.write(clientText(JSON.stringify({ type: 'subscribe', id: 'z', ns: ['shop.zipped'] }), { deflate: true }));
  await waitUntil(() => messages(client).some((m) => m.message.type === 'subscribed'), 'subscribed to a compressed subscribe');
  const subscribed = messages(client).find((m) => m.message.type === 'subscribed');
  assert.equal(subscribed.frame.rsv1, false, 'a 30-byte answer goes uncompressed');
  const lines = Array.from({ length: 12 }, (_, i) => ({ sku: `SKU-${1000 + i}`, name: 'Blue widget, large', qty: i + 1, price: 9.99 }));
  const coll = stack.client.db('shop').collection('zipped');
  await coll.insertOne({ _id: 1, customer: 'ann', status: 'open', lines });
  await coll.updateOne({ _id: 1 }, { $set: { status: 'paid' } });
  await waitUntil(() => messages(client).filter((m) => m.message.type === 'change').length >= 2, 'two changes');
  const [insert, update] = messages(client).filter((m) => m.message.type === 'change');
  assert.equal(insert.frame.rsv1, true, 'the insert (over 1 KB) is compressed');
  assert.ok(insert.frame.payload.length < Buffer.byteLength(textOf(insert.frame)) / 2, `compressed ${insert.frame.payload.length} of ${Buffer.byteLength(textOf(insert.frame))} bytes`);
  assert.equal(insert.message.id, 'z');
  assert.deepEqual(insert.message.event.fullDocument.lines, lines);
  assert.equal(insert.message.token, insert.message.event._id._data);
  assert.equal(update.message.event.updateDescription.updatedFields.status, 'paid');
});

test('npm ws with the extension (its default) and without it both receive every event', async () => {
  const withDeflate = await openWs(stack.wsUrl);
  assert.match(withDeflate.ws.extensions, /permessage-deflate/);
  const plain = await openWs(stack.wsUrl, { perMessageDeflate: false });
  assert.equal(plain.ws.extensions, '');
  for (const ws of [withDeflate, plain]) assert.equal((await ws.subscribe('a', ['shop.both'])).type, 'subscribed');
  const docs = Array.from({ length: 20 }, (_, i) => ({ _id: i, text: 'x'.repeat(i * 40) }));
  await stack.client.db('shop').collection('both').insertMany(docs);
  for (const ws of [withDeflate, plain]) {
    await waitUntil(() => ws.changes('a').length === 20, () => `20 changes (got ${ws.changes('a').length})`);
    assert.deepEqual(ws.changes('a').map((m) => m.event.fullDocument), docs);
  }
});

const order = (i) => ({ _id: i, customer: `customer-${i % 7}`, status: 'open', lines: Array.from({ length: 8 }, (_, k) => ({ sku: `SKU-${k}`, qty: k + 1, price: 4.5 })) });

test('SSE with Accept-Encoding gzip: Content-Encoding gzip, and every event inflates as it arrives, with Node streaming gunzip and with curl --compressed', async () => {
  const url = sseUrl(stack.pushUrl, { ns: ['shop.gz'] });
  const node = await openSse(url, { headers: { 'Accept-Encoding': 'gzip, deflate, br' } });
  assert.equal(node.status, 200);
  assert.equal(node.headers['content-encoding'], 'gzip');
  assert.match(node.headers.vary, /accept-encoding/i);
  const curl = await openCurlSse(url, { compressed: true });
  assert.equal(curl.headers['content-encoding'], 'gzip');
  const plain = await openSse(url);
  assert.equal(plain.headers['content-encoding'], undefined, 'no Accept-Encoding: no gzip');
  const refused = await openSse(url, { headers: { 'Accept-Encoding': 'gzip;q=0, identity' } });
  assert.equal(refused.headers['content-encoding'], undefined, 'gzip;q=0 is a refusal');
  await waitUntil(() => node.retry !== null && curl.retry !== null, 'the retry line, inflated');
  const coll = stack.client.db('shop').collection('gz');
  for (let i = 0; i < 5; i++) {
    await coll.insertOne(order(i));
    // Each event arrives by itself, before the next is written: nothing
    // waits in a compressor's buffer.
    for (const sink of [node, curl, plain]) {
      await waitUntil(() => sink.changes.length === i + 1, () => `${sink.kind} change ${i + 1} (got ${sink.changes.length}; ${sink.error || ''} ${sink.stderr || ''})`);
    }
  }
  for (const sink of [node, curl]) {
    assert.deepEqual(sink.changes.map((e) => e.json.fullDocument), plain.changes.map((e) => e.json.fullDocument));
    assert.deepEqual(sink.changes.map((e) => e.id), plain.changes.map((e) => e.id));
  }
  const plainBytes = plain.changes.reduce((n, e) => n + e.data.length, 0);
  // Everything the gzip stream carried (retry, comments, watermarks, five
  // events) against the five events alone, uncompressed.
  assert.ok(node.compressedBytes < plainBytes * 0.75, `gzip carried ${node.compressedBytes} bytes for ${plainBytes} bytes of event data`);
});

test('each event is compressed once per wire form, however many subscribers get it compressed', async () => {
  const before = (await metrics(stack.pushUrl)).samples;
  const sockets = await Promise.all(Array.from({ length: 5 }, () => openWs(stack.wsUrl)));
  for (const ws of sockets) assert.equal((await ws.subscribe('o', ['shop.once'])).type, 'subscribed');
  const streams = await Promise.all(Array.from({ length: 3 }, () => openSse(sseUrl(stack.pushUrl, { ns: ['shop.once'] }), { headers: { 'Accept-Encoding': 'gzip' } })));
  await waitUntil(() => streams.every((s) => s.retry !== null), 'three gzip streams open');
  const coll = stack.client.db('shop').collection('once');
  for (let i = 0; i < 10; i++) await coll.insertOne(order(i));
  for (const ws of sockets) await waitUntil(() => ws.changes('o').length === 10, 'ten changes on each WebSocket');
  for (const sse of streams) await waitUntil(() => sse.changes.length === 10, 'ten changes on each SSE stream');
  const after = (await metrics(stack.pushUrl)).samples;
  const delta = (name, labels) => metricSum(after, name, labels) - metricSum(before, name, labels);
  assert.equal(delta(/^changecast_compressed_connections_total$/, { transport: 'ws' }), 5);
  assert.equal(delta(/^changecast_compressed_connections_total$/, { transport: 'sse' }), 3);
  // 80 deliveries; 20 compressions (ten events, two wire forms), a few more
  // for watermarks and notices long enough to be worth compressing.
  const compressions = delta(/^changecast_compressions_total$/);
  assert.ok(compressions >= 20 && compressions <= 26, `${compressions} compressions for 10 events to 8 subscribers`);
});

test('push.compression off: neither the extension nor gzip', async (t) => {
  const off = await startPush({ flags: ['--push.compression', 'off'] });
  t.after(() => off.stop());
  const client = await rawWs(off.changecast.pushPort, 'permessage-deflate');
  assert.equal(extensionHeader(client.headers), null);
  client.socket.destroy();
  const sse = await openSse(sseUrl(off.pushUrl, { ns: ['shop.gz'] }), { headers: { 'Accept-Encoding': 'gzip' } });
  assert.equal(sse.headers['content-encoding'], undefined);
});
