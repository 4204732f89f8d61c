// SPDX-License-Identifier: Apache-2.0
// Limits on the push port (docs/security.md, "The push port: who gets in"):
// connections in total and per client address, filter size and depth,
// subscriptions per WebSocket, message size. Each is refused with a clear
// error and counted in /metrics as changecast_refusals_total{reason=...}.
// Distinct client addresses are 127.0.0.2, 127.0.0.3, ... (the loopback
// interface answers for all of 127/8), bound with `localAddress`.
'use strict';
const { test, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const push = require('./push-support');
const A = require('./auth-support');

const { waitUntil, sseUrl } = push;

const MAX_CONNECTIONS = 4;
const MAX_PER_IP = 2;
const MAX_FILTER_BYTES = 512;
const MAX_FILTER_DEPTH = 4;
const MAX_SUBSCRIPTIONS = 3;
const MAX_MESSAGE_BYTES = 2048;

let started;
const stack = () =>
  (started ||= push.startPush({
    flags: [
      '--auth.mode', 'none',
      '--push.max_connections', String(MAX_CONNECTIONS),
      '--push.max_connections_per_ip', String(MAX_PER_IP),
      '--push.max_filter_bytes', String(MAX_FILTER_BYTES),
      '--push.max_filter_depth', String(MAX_FILTER_DEPTH),
      '--push.max_subscriptions', String(MAX_SUBSCRIPTIONS),
      '--push.max_message_bytes', String(MAX_MESSAGE_BYTES),
    ],
  }));
after(async () => {
  A.closeAll();
  if (started) await (await started.catch(() => null))?.stop();
});
afterEach(() => A.closeAll());

const from = (n) => `127.0.0.${n}`;
const openFrom = async (n, ns = 'shop.l1') => A.openStream(sseUrl((await stack()).pushUrl, { ns }), { localAddress: from(n) });
const wsFrom = async (n) => A.connectWs((await stack()).wsUrl, { localAddress: from(n) });

// Waits until every subscriber connection of earlier tests is gone, so the
// connection counts start from zero.
async function settled() {
  const s = await stack();
  await waitUntil(async () => {
    try {
      const { samples } = await push.metrics(s.pushUrl);
      return push.metricSum(samples, /^changecast_subscribers$/) === 0;
    } catch {
      return false;
    }
  }, 'no subscriber connections left');
}

// docs/security.md names one code, too_many_connections; a per-address
// refusal may say so (too_many_connections_per_ip).
function assertTooMany(sink, what) {
  assert.equal(sink.status, 429, `${what}: ${sink.body ?? sink.error?.message}`);
  assert.match(sink.json?.error ?? '', /^too_many_connections(_per_ip)?$/, what);
}

async function assertWs1008(ws, what) {
  if (ws.opened) await ws.waitClosed(`${what}: the socket to close`);
  assert.equal(ws.closed?.code, 1008, `${what}: ${JSON.stringify(ws.closed)} ${JSON.stringify(ws.refusal)}`);
}

// Sum of the refusal reasons that start with `prefix`.
const grew = (delta, prefix) => Object.entries(delta).filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0);

test(`more than push.max_connections_per_ip (${MAX_PER_IP}) from one address: SSE 429 too_many_connections, WebSocket closed 1008; another address still gets in; counted`, async () => {
  const s = await stack();
  await settled();
  const before = await A.refusals(s.pushUrl);
  const mine = [await openFrom(1), await openFrom(1)];
  for (const m of mine) assert.equal(m.status, 200, m.body);
  assertTooMany(await openFrom(1), 'third SSE from 127.0.0.1');
  await assertWs1008(await wsFrom(1), 'WebSocket from 127.0.0.1');
  const other = await openFrom(2);
  assert.equal(other.status, 200, `another address is not limited by 127.0.0.1's count: ${other.body}`);
  // Closing one frees a place for that address.
  mine[0].close();
  await waitUntil(async () => {
    const again = await openFrom(1);
    return again.status === 200;
  }, 'a place for 127.0.0.1 after one of its streams closed');
  A.closeAll();
  await settled();
  const delta = A.refusalsDelta(before, await A.refusals(s.pushUrl));
  assert.ok(grew(delta, 'too_many_connections') >= 2, `two refusals counted: ${JSON.stringify(delta)}`);
});

test(`more than push.max_connections (${MAX_CONNECTIONS}) in total: SSE 429 too_many_connections, WebSocket closed 1008; counted`, async () => {
  const s = await stack();
  await settled();
  const before = await A.refusals(s.pushUrl);
  // Two addresses, each within its own limit, fill the total.
  const held = [await openFrom(2), await openFrom(2), await openFrom(3), await wsFrom(3)];
  for (const h of held.slice(0, 3)) assert.equal(h.status, 200, h.body);
  assert.ok(held[3].opened, 'the fourth connection (a WebSocket) is within the total');
  assertTooMany(await openFrom(4), 'SSE from a fresh address over the total');
  await assertWs1008(await wsFrom(5), 'WebSocket from a fresh address over the total');
  A.closeAll();
  await settled();
  const delta = A.refusalsDelta(before, await A.refusals(s.pushUrl));
  assert.equal(grew(delta, 'too_many_connections'), 2, `both refusals counted: ${JSON.stringify(delta)}`);
  assert.equal((await openFrom(4)).status, 200, 'room again once they closed');
});

// A filter on change events, `bytes` long as JSON.
const bigFilter = (bytes) => {
  const base = { 'fullDocument.note': '' };
  return { 'fullDocument.note': 'x'.repeat(bytes - JSON.stringify(base).length) };
};
// Depth: the filter document is 1, each nested document or array adds 1.
const deepFilter = (levels) => {
  let f = { 'fullDocument.a': 1 };
  for (let i = 1; i < levels; i += 2) f = { $and: [f] };
  return f;
};

test(`a filter larger than push.max_filter_bytes (${MAX_FILTER_BYTES}): SSE 400 filter_too_large, WebSocket error filter_too_large; counted`, async () => {
  const s = await stack();
  const before = await A.refusals(s.pushUrl);
  const ok = await A.openStream(sseUrl(s.pushUrl, { ns: 'shop.l2', filter: bigFilter(MAX_FILTER_BYTES - 100) }));
  assert.equal(ok.status, 200, ok.body);
  const big = await A.openStream(sseUrl(s.pushUrl, { ns: 'shop.l2', filter: bigFilter(MAX_FILTER_BYTES * 2) }));
  assert.equal(big.status, 400, big.body);
  assert.equal(big.json?.error, 'filter_too_large');
  const ws = await A.connectWs(s.wsUrl);
  const answer = await ws.subscribe('big', 'shop.l2', { filter: bigFilter(MAX_FILTER_BYTES * 2) });
  assert.equal(answer.type, 'error');
  assert.equal(answer.code, 'filter_too_large');
  assert.ok(ws.open, 'the socket stays');
  assert.equal((await ws.subscribe('small', 'shop.l2', { filter: bigFilter(MAX_FILTER_BYTES - 100) })).type, 'subscribed');
  // A snapshot filter is limited the same way.
  const snap = await A.openStream(sseUrl(s.pushUrl, { ns: 'shop.l2', snapshot: true, filter: { note: 'x'.repeat(MAX_FILTER_BYTES * 2) } }));
  assert.equal(snap.json?.error, 'filter_too_large', snap.body);
  const delta = A.refusalsDelta(before, await A.refusals(s.pushUrl));
  assert.deepEqual(delta, { filter_too_large: 3 });
});

test(`a filter nested deeper than push.max_filter_depth (${MAX_FILTER_DEPTH}): SSE 400 filter_too_deep, WebSocket error filter_too_deep; counted`, async () => {
  const s = await stack();
  const before = await A.refusals(s.pushUrl);
  const shallow = await A.openStream(sseUrl(s.pushUrl, { ns: 'shop.l3', filter: { 'fullDocument.a': { $gt: 1 } } }));
  assert.equal(shallow.status, 200, shallow.body);
  const deep = deepFilter(12);
  assert.ok(JSON.stringify(deep).length < MAX_FILTER_BYTES, 'deep, not large');
  const refused = await A.openStream(sseUrl(s.pushUrl, { ns: 'shop.l3', filter: deep }));
  assert.equal(refused.status, 400, refused.body);
  assert.equal(refused.json?.error, 'filter_too_deep');
  // Arrays count as well: {$in: [[[[...]]]]}.
  const arrays = await A.openStream(sseUrl(s.pushUrl, { ns: 'shop.l3', filter: { 'fullDocument.a': { $in: [[[[[[1]]]]]] } } }));
  assert.equal(arrays.json?.error, 'filter_too_deep', arrays.body);
  const ws = await A.connectWs(s.wsUrl);
  const answer = await ws.subscribe('deep', 'shop.l3', { filter: deep });
  assert.equal(answer.code, 'filter_too_deep');
  assert.ok(ws.open);
  const delta = A.refusalsDelta(before, await A.refusals(s.pushUrl));
  assert.deepEqual(delta, { filter_too_deep: 3 });
});

test(`more than push.max_subscriptions (${MAX_SUBSCRIPTIONS}) on one WebSocket: error too_many_subscriptions, counted; the socket stays`, async () => {
  const s = await stack();
  const before = await A.refusals(s.pushUrl);
  const ws = await A.connectWs(s.wsUrl);
  for (let i = 1; i <= MAX_SUBSCRIPTIONS; i++) assert.equal((await ws.subscribe(`s${i}`, 'shop.l4')).type, 'subscribed');
  const over = await ws.subscribe('over', 'shop.l4');
  assert.equal(over.code, 'too_many_subscriptions');
  assert.ok(ws.open);
  const delta = A.refusalsDelta(before, await A.refusals(s.pushUrl));
  assert.deepEqual(delta, { too_many_subscriptions: 1 });
});

test(`a WebSocket message larger than push.max_message_bytes (${MAX_MESSAGE_BYTES}) closes the socket with 1009, counted`, async () => {
  const s = await stack();
  const before = await A.refusals(s.pushUrl);
  const ws = await A.connectWs(s.wsUrl);
  ws.send({ type: 'ping', pad: 'x'.repeat(MAX_MESSAGE_BYTES + 100) });
  await ws.waitClosed('the socket to close after a large message');
  assert.equal(ws.closed.code, 1009);
  const delta = A.refusalsDelta(before, await A.refusals(s.pushUrl));
  // The contract does not name this reason; any one label naming the message.
  assert.equal(Object.keys(delta).length, 1, JSON.stringify(delta));
  assert.match(Object.keys(delta)[0], /message/, JSON.stringify(delta));
});
