// SPDX-License-Identifier: Apache-2.0
// 1,000 concurrent subscribers on one changecast (500 SSE, 500 WebSocket):
// one insert reaches every one of them exactly once, and they are all let
// go when they leave.
'use strict';
const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { usePush, waitUntil, openSse, openWs, closeAll, metrics, metricSum, sseUrl } = require('./push-support');

const stack = usePush();
afterEach(() => closeAll());

const SSE = 500;
const WS = 500;
const subscribers = (m) => metricSum(m.samples, /subscri/) - metricSum(m.samples, /subscri.*(total|drop)/);

async function inBatches(n, size, open) {
  const out = [];
  for (let i = 0; i < n; i += size) out.push(...(await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, k) => open(i + k)))));
  return out;
}

test('1,000 concurrent subscribers (500 SSE, 500 WebSocket) each get one insert exactly once', async () => {
  const ns = 'shop.crowd';
  const before = subscribers(await metrics(stack.pushUrl));
  const sse = await inBatches(SSE, 50, () => openSse(sseUrl(stack.pushUrl, { ns })));
  const bad = sse.filter((s) => s.status !== 200);
  assert.equal(bad.length, 0, `every SSE request answered 200 (first refusal: ${bad[0]?.status} ${bad[0]?.body})`);
  const ws = await inBatches(WS, 50, async (i) => {
    const c = await openWs(stack.wsUrl);
    const answer = await c.subscribe(`crowd-${i}`, ns);
    assert.equal(answer.type, 'subscribed', JSON.stringify(answer));
    return c;
  });
  const during = subscribers(await metrics(stack.pushUrl));
  assert.ok(during >= before + SSE + WS, `/metrics counts the ${SSE + WS} subscribers (${before} -> ${during})`);

  await stack.client.db('shop').collection('crowd').insertOne({ _id: 'hello', seq: 1 });
  const count = () => sse.filter((s) => s.changes.length >= 1).length + ws.filter((c, i) => c.changes(`crowd-${i}`).length >= 1).length;
  await waitUntil(() => count() === SSE + WS, () => `all ${SSE + WS} subscribers to get the insert (${count()} did)`, 60000);
  const tokens = new Set([...sse.map((s) => s.changes[0].id), ...ws.map((c, i) => c.changes(`crowd-${i}`)[0].token)]);
  assert.equal(tokens.size, 1, 'the same event everywhere');
  assert.ok(sse.every((s) => s.changes.length === 1 && s.seqs[0] === 1), 'each SSE subscriber got it once');
  assert.ok(ws.every((c, i) => c.changes(`crowd-${i}`).length === 1 && c.seqs(`crowd-${i}`)[0] === 1), 'each WS subscriber got it once');
  assert.ok(ws.every((c) => c.open) && sse.every((s) => !s.ended), 'every connection is still open');
  // Once written, an idle connection holds no output queue at all.
  const queues = async () => metricSum((await metrics(stack.pushUrl)).samples, /^changecast_output_queues$/);
  await waitUntil(async () => (await queues()) === 0, async () => `no idle connection to hold an output queue (${await queues()} do)`);

  closeAll();
  await waitUntil(async () => subscribers(await metrics(stack.pushUrl)) <= before, `the subscriber count back to ${before} once all 1,000 left`, 30000);
});
