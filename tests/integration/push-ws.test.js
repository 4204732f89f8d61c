// SPDX-License-Identifier: Apache-2.0
// The push port over WebSocket, subprotocol changecast.v1
// (docs/push-protocol.md): subscribe / change / unsubscribe, many
// subscriptions on one socket, errors that leave the socket open, close
// codes, pings and the idle timeout. Clients are npm `ws`.
'use strict';
const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const { usePush, waitUntil, openWs, closeAll } = require('./push-support');

const MAX_SUBS = 4;
const stack = usePush({
  flags: [
    '--push.max_subscriptions', String(MAX_SUBS),
    '--push.max_message_bytes', '4096',
    '--push.heartbeat_ms', '250',
    '--push.idle_timeout_ms', '2000',
  ],
});
afterEach(() => closeAll());

const coll = (ns) => {
  const [db, c] = ns.split('.');
  return stack.client.db(db).collection(c);
};

function waitChanges(ws, id, n) {
  return waitUntil(
    () => ws.changes(id).length >= n,
    () => `${n} change messages for subscription ${id} (got ${ws.changes(id).length}; messages ${JSON.stringify(ws.messages.map((m) => ({ ...m, event: m.event && m.event.documentKey }))).slice(0, 600)}; closed ${JSON.stringify(ws.closed)})`,
  );
}

const keys = (ws, id) => ws.changes(id).map((m) => m.event.documentKey._id);

test('subscribe is answered `subscribed`; each change comes as {type: change, id, token, event} with token = event._id._data', async () => {
  const ws = await openWs(stack.wsUrl);
  assert.equal(ws.ws.protocol, 'changecast.v1', 'the server selects the changecast.v1 subprotocol');
  assert.deepEqual(await ws.subscribe('orders', ['shop.ws1']), { type: 'subscribed', id: 'orders' });
  await coll('shop.ws1').insertOne({ _id: 1, seq: 1, when: new Date('2026-01-02T03:04:05Z') });
  await coll('shop.ws1').updateOne({ _id: 1 }, { $set: { seq: 2 } });
  await waitChanges(ws, 'orders', 2);
  const [insert, update] = ws.changes('orders');
  assert.deepEqual(Object.keys(insert).sort(), ['event', 'id', 'token', 'type']);
  assert.equal(insert.token, insert.event._id._data);
  assert.equal(update.token, update.event._id._data);
  assert.ok(insert.token < update.token, 'tokens increase as strings');
  assert.equal(insert.event.operationType, 'insert');
  assert.deepEqual(insert.event.fullDocument, { _id: 1, seq: 1, when: { $date: '2026-01-02T03:04:05Z' } });
  assert.deepEqual(insert.event.ns, { db: 'shop', coll: 'ws1' });
  assert.equal(update.event.operationType, 'update');
  assert.deepEqual(update.event.updateDescription.updatedFields, { seq: 2 });
  // ns as a plain string works too.
  assert.deepEqual(await ws.subscribe('single', 'shop.ws1'), { type: 'subscribed', id: 'single' });
});

test('one socket, many subscriptions: an event matching several is sent once per subscription; filters apply per subscription', async () => {
  const ws = await openWs(stack.wsUrl);
  assert.equal((await ws.subscribe('a', ['it.orders'])).type, 'subscribed');
  assert.equal((await ws.subscribe('b', 'it.chat')).type, 'subscribed');
  assert.equal((await ws.subscribe('c', ['it.orders', 'it.chat'], { filter: { 'fullDocument.seq': { $gte: 2 } } })).type, 'subscribed');
  assert.equal((await ws.subscribe('d', ['shop.*'], { ops: ['delete'] })).type, 'subscribed');
  await coll('it.orders').insertOne({ _id: 'w1', seq: 1 });
  await coll('it.chat').insertOne({ _id: 'w2', seq: 2 });
  await coll('it.orders').insertOne({ _id: 'w3', seq: 3 });
  await coll('shop.many').insertOne({ _id: 'w4', seq: 4 });
  await coll('shop.many').deleteOne({ _id: 'w4' });
  await coll('it.chat').insertOne({ _id: 'w5', seq: 5 });
  await waitChanges(ws, 'c', 3);
  await waitChanges(ws, 'b', 2);
  await waitChanges(ws, 'd', 1);
  assert.deepEqual(keys(ws, 'a'), ['w1', 'w3']);
  assert.deepEqual(keys(ws, 'b'), ['w2', 'w5']);
  assert.deepEqual(keys(ws, 'c'), ['w2', 'w3', 'w5']);
  assert.deepEqual(ws.changes('d').map((m) => `${m.event.operationType}:${m.event.documentKey._id}`), ['delete:w4']);
  // Same event, same token, on both subscriptions.
  const w3a = ws.changes('a')[1];
  const w3c = ws.changes('c')[1];
  assert.equal(w3a.token, w3c.token);
  assert.deepEqual(w3a.event, w3c.event);
});

test('unsubscribe is answered `unsubscribed` and stops that subscription only', async () => {
  const ws = await openWs(stack.wsUrl);
  await ws.subscribe('x', 'shop.unsub');
  await ws.subscribe('y', 'shop.unsub');
  await coll('shop.unsub').insertOne({ _id: 1 });
  await waitChanges(ws, 'x', 1);
  await waitChanges(ws, 'y', 1);
  assert.deepEqual(await ws.request({ type: 'unsubscribe', id: 'x' }, ['unsubscribed', 'error']), { type: 'unsubscribed', id: 'x' });
  await coll('shop.unsub').insertOne({ _id: 2 });
  await coll('shop.unsub').insertOne({ _id: 3 });
  await waitChanges(ws, 'y', 3);
  assert.deepEqual(keys(ws, 'x'), [1]);
  assert.deepEqual(keys(ws, 'y'), [1, 2, 3]);
  // The id is free again.
  assert.deepEqual(await ws.subscribe('x', 'shop.unsub'), { type: 'subscribed', id: 'x' });
});

test('a message that cannot be accepted gets an `error` with its code; the socket and its other subscriptions stay', async () => {
  const ws = await openWs(stack.wsUrl);
  await ws.subscribe('keep', 'shop.errors');
  const long = 'x'.repeat(65);
  const cases = [
    ['not JSON', 'this is not json', 'bad_message'],
    ['a JSON array', '[1, 2]', 'bad_message'],
    ['a JSON string', '"subscribe"', 'bad_message'],
    ['no type', { id: 'n1', ns: 'it.orders' }, 'bad_message'],
    ['unknown type', { type: 'publish', id: 'n2' }, 'bad_message'],
    ['subscribe without ns', { type: 'subscribe', id: 'e1' }, 'bad_request'],
    ['unknown ops value', { type: 'subscribe', id: 'e2', ns: 'it.orders', ops: ['insert', 'upsert'] }, 'bad_request'],
    ['malformed after token', { type: 'subscribe', id: 'e3', ns: 'it.orders', after: 'not-a-token' }, 'bad_request'],
    ['$where refused', { type: 'subscribe', id: 'e4', ns: 'it.orders', filter: { $where: 'true' } }, 'bad_filter'],
    ['$expr refused', { type: 'subscribe', id: 'e5', ns: 'it.orders', filter: { $expr: { $eq: [1, 1] } } }, 'bad_filter'],
    ['filter not an object', { type: 'subscribe', id: 'e6', ns: 'it.orders', filter: 'status' }, 'bad_filter'],
    ['unexposed namespace', { type: 'subscribe', id: 'e7', ns: ['it.orders', 'secret.keys'] }, 'not_exposed'],
    ['duplicate id', { type: 'subscribe', id: 'keep', ns: 'it.orders' }, 'duplicate_id'],
    ['unsubscribe of an unknown id', { type: 'unsubscribe', id: 'never' }, 'unknown_id'],
  ];
  const failures = [];
  for (const [name, message, code] of cases) {
    const answer = await ws.request(message, ['error', 'subscribed', 'unsubscribed']);
    const id = typeof message === 'object' ? message.id : undefined;
    const ok = answer.type === 'error' && answer.code === code && typeof answer.message === 'string' && (id === undefined || answer.id === id);
    if (!ok) failures.push(`${name}: sent ${JSON.stringify(message)} got ${JSON.stringify(answer)}; want {"type":"error"${id ? `,"id":"${id}"` : ''},"code":"${code}",...}`);
    if (!ws.open) {
      failures.push(`${name}: the socket was closed (${JSON.stringify(ws.closed)})`);
      break;
    }
  }
  // id must be a string of 1 to 64 characters (the code is not specified by
  // the protocol doc; bad_request or bad_message are both reasonable).
  for (const id of ['', long, 7]) {
    const answer = await ws.request({ type: 'subscribe', id, ns: 'it.orders' }, ['error', 'subscribed']);
    if (answer.type !== 'error' || !['bad_request', 'bad_message'].includes(answer.code)) failures.push(`id ${JSON.stringify(id)}: got ${JSON.stringify(answer)}`);
  }
  assert.equal((await ws.subscribe('y'.repeat(64), 'shop.errors')).type, 'subscribed', 'a 64-character id is accepted');
  assert.deepEqual(failures, []);
  assert.ok(ws.open, 'the socket stays open');
  await coll('shop.errors').insertOne({ _id: 'after-errors' });
  await waitChanges(ws, 'keep', 1);
  assert.deepEqual(keys(ws, 'keep'), ['after-errors']);
});

test('ping is answered pong', async () => {
  const ws = await openWs(stack.wsUrl);
  assert.deepEqual(await ws.request({ type: 'ping' }, ['pong']), { type: 'pong' });
});

test('more than push.max_subscriptions on one socket: error too_many_subscriptions; unsubscribing makes room', async () => {
  const ws = await openWs(stack.wsUrl);
  for (let i = 1; i <= MAX_SUBS; i++) assert.equal((await ws.subscribe(`s${i}`, 'shop.limit')).type, 'subscribed');
  const over = await ws.subscribe('over', 'shop.limit');
  assert.equal(over.type, 'error');
  assert.equal(over.code, 'too_many_subscriptions');
  assert.equal(over.id, 'over');
  assert.equal((await ws.request({ type: 'unsubscribe', id: 's1' }, ['unsubscribed', 'error'])).type, 'unsubscribed');
  assert.equal((await ws.subscribe('over', 'shop.limit')).type, 'subscribed');
  // The limit is per socket.
  const other = await openWs(stack.wsUrl);
  assert.equal((await other.subscribe('s1', 'shop.limit')).type, 'subscribed');
});

test('a binary frame closes the socket with 1002; other sockets are unaffected', async () => {
  const bystander = await openWs(stack.wsUrl);
  await bystander.subscribe('b', 'shop.close');
  const ws = await openWs(stack.wsUrl);
  ws.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  await waitUntil(() => ws.closed, 'the socket closed after a binary frame');
  assert.equal(ws.closed.code, 1002);
  await coll('shop.close').insertOne({ _id: 'b1' });
  await waitChanges(bystander, 'b', 1);
});

test('a message larger than push.max_message_bytes closes the socket with 1009', async () => {
  const ws = await openWs(stack.wsUrl);
  ws.send({ type: 'subscribe', id: 'big', ns: 'shop.close', filter: { 'fullDocument.note': 'x'.repeat(5000) } });
  await waitUntil(() => ws.closed, 'the socket closed after a 5 KB message');
  assert.equal(ws.closed.code, 1009);
});

// A raw socket that upgrades to /v1/ws, sends `frame`, and collects what
// the server answers until it closes.
function rawWsExchange(port, frame) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const key = crypto.randomBytes(16).toString('base64');
    let received = Buffer.alloc(0);
    let upgraded = false;
    socket.on('error', () => {});
    socket.on('connect', () =>
      socket.write(`GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: changecast.v1\r\n\r\n`),
    );
    socket.on('data', (d) => {
      received = Buffer.concat([received, d]);
      const end = received.indexOf('\r\n\r\n');
      if (!upgraded && end >= 0) {
        upgraded = true;
        if (!received.subarray(0, end).toString('latin1').startsWith('HTTP/1.1 101')) return reject(new Error(received.toString('latin1')));
        received = received.subarray(end + 4);
        socket.write(frame);
      }
    });
    socket.on('close', () => resolve(received));
    setTimeout(() => socket.destroy(), 10000);
  });
}

// A client frame as RFC 6455 section 5.2 lays it out, masked; `declared`
// overrides the length its header states.
// `masked: false` leaves the mask bit and key out; `rsv` sets reserved bits.
function clientFrame(opcode, payload, { fin = true, declared = BigInt(payload.length), masked = true, rsv = 0 } = {}) {
  const mask = masked ? crypto.randomBytes(4) : Buffer.alloc(0);
  const first = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  const maskBit = masked ? 0x80 : 0;
  let header;
  if (declared < 126n) {
    header = Buffer.from([first, maskBit | Number(declared)]);
  } else if (declared < 65536n) {
    header = Buffer.from([first, maskBit | 126, 0, 0]);
    header.writeUInt16BE(Number(declared), 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = maskBit | 127;
    header.writeBigUInt64BE(declared, 2);
  }
  return Buffer.concat([header, mask, masked ? payload.map((b, i) => b ^ mask[i % 4]) : payload]);
}

// The status code of the close frame among the server's frames (pings may
// come first: push.heartbeat_ms is short here); a bare TCP close fails.
function closeCodeOf(answer) {
  let at = 0;
  while (at + 2 <= answer.length) {
    const opcode = answer[at] & 0x0f;
    let len = answer[at + 1] & 0x7f;
    let start = at + 2;
    if (len === 126) {
      len = answer.readUInt16BE(at + 2);
      start += 2;
    }
    if (opcode === 0x8) {
      assert.ok(len >= 2, 'the close frame has a status code');
      return answer.readUInt16BE(start);
    }
    at = start + len;
  }
  assert.fail(`a close frame, not a bare close (got ${answer.toString('hex')})`);
}

const wsPort = () => Number(new URL(stack.wsUrl).port);

test('a frame that declares 2^63 - 1 bytes is answered with close 1009 at its first bytes', async () => {
  const payload = Buffer.from('{"type":"subscribe"'.padEnd(64, ' '));
  const answer = await rawWsExchange(wsPort(), clientFrame(0x1, payload, { declared: 0x7fffffffffffffffn }));
  assert.equal(closeCodeOf(answer), 1009);
});

test('through a raw socket: a binary frame is closed with 1002', async () => {
  assert.equal(closeCodeOf(await rawWsExchange(wsPort(), clientFrame(0x2, Buffer.from([1, 2, 3])))), 1002);
});

test('through a raw socket: one text frame over push.max_message_bytes is closed with 1009', async () => {
  const text = Buffer.from(JSON.stringify({ type: 'subscribe', id: 'x', ns: 'shop.close', note: 'x'.repeat(5000) }));
  assert.equal(closeCodeOf(await rawWsExchange(wsPort(), clientFrame(0x1, text))), 1009);
});

test('through a raw socket: a message in fragments, each small, together over push.max_message_bytes, is closed with 1009', async () => {
  const part = Buffer.from('x'.repeat(2000));
  const frames = Buffer.concat([
    clientFrame(0x1, Buffer.concat([Buffer.from('{"type":"subscribe","note":"'), part]), { fin: false }),
    clientFrame(0x0, part, { fin: false }),
    clientFrame(0x0, Buffer.concat([part, Buffer.from('"}')])),
  ]);
  assert.equal(closeCodeOf(await rawWsExchange(wsPort(), frames)), 1009);
});

// The frames of the server's answer: [{opcode, payload}].
function serverFrames(answer) {
  const frames = [];
  let at = 0;
  while (at + 2 <= answer.length) {
    let len = answer[at + 1] & 0x7f;
    let start = at + 2;
    if (len === 126) {
      len = answer.readUInt16BE(at + 2);
      start += 2;
    }
    frames.push({ opcode: answer[at] & 0x0f, payload: answer.subarray(start, start + len) });
    at = start + len;
  }
  return frames;
}

test('through a raw socket: control frames with the largest payload (125 bytes) are whole: a ping gets its pong, a close its echo', async () => {
  const payload = crypto.randomBytes(125);
  const reason = Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('r'.repeat(123))]);
  // (The ping's socket then answers no ping of the server's, and closes at
  // push.idle_timeout_ms.)
  const frames = serverFrames(await rawWsExchange(wsPort(), clientFrame(0x9, payload)));
  const pong = frames.find((f) => f.opcode === 0xa);
  assert.ok(pong, `a pong among ${frames.map((f) => f.opcode)}`);
  assert.deepEqual(pong.payload, payload, 'the pong carries the ping\'s 125 bytes');
  const close = serverFrames(await rawWsExchange(wsPort(), clientFrame(0x8, reason))).find((f) => f.opcode === 0x8);
  assert.ok(close, 'a close frame answers the close');
  assert.equal(close.payload.readUInt16BE(0), 1000);
});

test('through a raw socket: every RFC 6455 rule a client frame breaks closes with its code (1002, 1007, 1009), never a bare close', async () => {
  const text = Buffer.from('{"type":"ping"}');
  const cases = [
    ['an unmasked frame (5.1)', clientFrame(0x1, text, { masked: false }), 1002],
    ['a reserved bit set (5.2)', clientFrame(0x1, text, { rsv: 4 }), 1002],
    ['an unknown opcode', clientFrame(0x3, text), 1002],
    ['a 64-bit length of 2^64 - 1', clientFrame(0x1, text, { declared: 0xffffffffffffffffn }), 1009],
    ['a ping of 126 bytes (5.5)', clientFrame(0x9, crypto.randomBytes(126)), 1002],
    ['a fragmented ping (5.5)', clientFrame(0x9, Buffer.from('p'), { fin: false }), 1002],
    ['a continuation without a message', clientFrame(0x0, text), 1002],
    ['a new message inside a fragmented one', Buffer.concat([clientFrame(0x1, Buffer.from('{"type"'), { fin: false }), clientFrame(0x1, text)]), 1002],
    ['text that is not UTF-8 (8.1)', clientFrame(0x1, Buffer.from([0x22, 0xc3, 0x28, 0x22])), 1007],
    ['a close with a one-byte payload', clientFrame(0x8, Buffer.from([3])), 1002],
    ['a close with code 1005, which no endpoint may send', clientFrame(0x8, Buffer.from([0x03, 0xed])), 1002],
    ['a close whose reason is not UTF-8', clientFrame(0x8, Buffer.from([0x03, 0xe8, 0xff])), 1007],
  ];
  for (const [what, frame, code] of cases) {
    assert.equal(closeCodeOf(await rawWsExchange(wsPort(), frame)), code, what);
  }
});

test('through a raw socket: a message in fragments with a ping between them is whole; the ping is answered first', async () => {
  const message = Buffer.from(JSON.stringify({ type: 'subscribe', id: 'frag', ns: 'shop.fragments' }));
  const frames = Buffer.concat([
    clientFrame(0x1, message.subarray(0, 10), { fin: false }),
    clientFrame(0x9, Buffer.from('mid')),
    clientFrame(0x0, message.subarray(10, 20), { fin: false }),
    clientFrame(0x0, message.subarray(20)),
    clientFrame(0x8, Buffer.from([0x03, 0xe8])),
  ]);
  const answer = serverFrames(await rawWsExchange(wsPort(), frames));
  const pong = answer.findIndex((f) => f.opcode === 0xa && f.payload.toString() === 'mid');
  const subscribed = answer.findIndex((f) => f.opcode === 0x1 && JSON.parse(f.payload).type === 'subscribed');
  assert.ok(pong >= 0 && subscribed > pong, answer.map((f) => `${f.opcode}:${f.payload.toString().slice(0, 40)}`).join(' '));
  assert.equal(JSON.parse(answer[subscribed].payload).id, 'frag');
  assert.equal(answer.at(-1).opcode, 0x8, 'the close is echoed last');
});

test('through a raw socket: a client that answers no ping is closed with 1000 after push.idle_timeout_ms', async () => {
  assert.equal(closeCodeOf(await rawWsExchange(wsPort(), Buffer.alloc(0))), 1000);
});

test('the server pings every push.heartbeat_ms; a client that never answers is closed after push.idle_timeout_ms, one that pongs stays', async () => {
  const live = await openWs(stack.wsUrl);
  await live.subscribe('l', 'shop.idle');
  const silent = await openWs(stack.wsUrl, { autoPong: false });
  await silent.subscribe('s', 'shop.idle');
  await waitUntil(() => silent.closed, () => `the silent client closed (pings it got: ${silent.pings})`, 20000);
  assert.ok(silent.pings >= 1, 'the silent client was pinged');
  assert.ok(live.pings >= 1, 'the answering client was pinged');
  assert.ok(live.open, `the answering client stays (${JSON.stringify(live.closed)})`);
  await coll('shop.idle').insertOne({ _id: 1 });
  await waitChanges(live, 'l', 1);
});
