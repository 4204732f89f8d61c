// SPDX-License-Identifier: Apache-2.0
// Reconnecting with a token (docs/push-protocol.md): `Last-Event-ID` /
// `lastEventId` for SSE and `after` for WebSocket give exactly the events
// after the token, whether the token is still in changecast's ring or older
// than it (served from upstream history); a token older than the upstream's
// history (MongoDB error 286, ChangeStreamHistoryLost) gives `reset` with
// reason history_lost, then the live stream. Every document carries a `seq`
// and every check is exact equality with the expected run of seqs.
'use strict';
const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  usePush, startPush, waitUntil, range, writeSeq, openSse, openCurlSse, openEventSource, openWs, closeAll, sseUrl,
} = require('./push-support');

const RING = 8;
const stack = usePush({ flags: ['--changes.ring_events', String(RING)] });
afterEach(() => closeAll());

const coll = (s, ns) => {
  const [db, c] = ns.split('.');
  return s.client.db(db).collection(c);
};

function waitSeqs(sink, n, what) {
  return waitUntil(
    () => sink.changes.length >= n,
    () => `${n} change events ${what} on ${sink.kind} (got ${sink.changes.length}, seqs ${JSON.stringify(sink.seqs).slice(0, 300)}, resets ${JSON.stringify(sink.resets.map((r) => r.data))}, status ${sink.status}, ended ${sink.ended})`,
  );
}

// A live subscriber sees 1..n; returns it (its events carry the tokens).
async function liveRun(s, ns, n) {
  const live = openEventSource(sseUrl(s.pushUrl, { ns }));
  await live.opened;
  await writeSeq(coll(s, ns), 1, n);
  await waitSeqs(live, n, 'for the live subscriber');
  assert.deepEqual(live.seqs, range(1, n));
  return live;
}

const token = (live, seq) => live.changes[seq - 1].id;
// changecast logs event=catchup_started when it opens a private stream
// upstream for a token its ring no longer holds.
const catchups = (s) => (s.changecast.output.match(/event=catchup_started/g) || []).length;

test('curl reconnecting with Last-Event-ID still in the ring gets exactly the events after it, then the live stream', async () => {
  const ns = 'shop.ring';
  const live = await liveRun(stack, ns, 20);
  const catchupsBefore = catchups(stack);
  const resumed = await openCurlSse(sseUrl(stack.pushUrl, { ns }), { headers: { 'Last-Event-ID': token(live, 16) } });
  assert.equal(resumed.status, 200);
  await waitSeqs(resumed, 4, 'replayed from the ring');
  await writeSeq(coll(stack, ns), 21, 25);
  await waitSeqs(resumed, 9, 'replayed then live');
  assert.deepEqual(resumed.seqs, range(17, 25));
  assert.deepEqual(resumed.resets, []);
  assert.equal(resumed.changes[0].id > token(live, 16), true);
  assert.equal(catchups(stack), catchupsBefore, 'served from the ring: no catch-up stream upstream');
});

test('EventSource reconnecting with a token older than the ring gets every later event once (caught up from upstream), then the live stream', async () => {
  const ns = 'shop.beyond';
  const live = await liveRun(stack, ns, 30);
  const catchupsBefore = catchups(stack);
  const resumed = openEventSource(sseUrl(stack.pushUrl, { ns }), { lastEventId: token(live, 3) });
  await resumed.opened;
  await waitSeqs(resumed, 27, 'caught up from beyond the ring');
  await writeSeq(coll(stack, ns), 31, 35);
  await waitSeqs(resumed, 32, 'caught up then live');
  assert.deepEqual(resumed.seqs, range(4, 35));
  assert.deepEqual(resumed.resets, []);
  await waitSeqs(live, 35, 'live');
  assert.deepEqual(resumed.changes.map((e) => e.id), live.changes.slice(3).map((e) => e.id), 'the same tokens the live subscriber saw');
  assert.equal(catchups(stack), catchupsBefore + 1, 'beyond the ring: one catch-up stream upstream');
});

test('the lastEventId query parameter resumes; the Last-Event-ID header takes precedence over it', async () => {
  const ns = 'shop.param';
  const live = await liveRun(stack, ns, 12);
  const byQuery = await openSse(sseUrl(stack.pushUrl, { ns, lastEventId: token(live, 9) }));
  const both = await openSse(sseUrl(stack.pushUrl, { ns, lastEventId: token(live, 2) }), { headers: { 'Last-Event-ID': token(live, 10) } });
  await writeSeq(coll(stack, ns), 13, 14);
  await waitSeqs(byQuery, 5, 'resumed by query');
  await waitSeqs(both, 4, 'resumed by header');
  assert.deepEqual(byQuery.seqs, range(10, 14));
  assert.deepEqual(both.seqs, range(11, 14));
});

test('a resumed connection keeps its selection: filter and ops apply to the replayed events too', async () => {
  const ns = 'shop.sel';
  const live = await liveRun(stack, ns, 30);
  const filter = { 'fullDocument.seq': { $mod: [2, 0] } };
  const inRing = await openSse(sseUrl(stack.pushUrl, { ns, filter, ops: 'insert' }), { headers: { 'Last-Event-ID': token(live, 25) } });
  const beyond = await openSse(sseUrl(stack.pushUrl, { ns, filter, ops: 'insert' }), { headers: { 'Last-Event-ID': token(live, 5) } });
  await writeSeq(coll(stack, ns), 31, 32);
  await waitSeqs(inRing, 4, 'even seqs after 25');
  await waitSeqs(beyond, 14, 'even seqs after 5');
  assert.deepEqual(inRing.seqs, [26, 28, 30, 32]);
  assert.deepEqual(beyond.seqs, range(6, 32).filter((n) => n % 2 === 0));
});

test('WebSocket `after` resumes from the ring and from beyond it, one subscription each on one socket', async () => {
  const ns = 'shop.wsafter';
  const live = await liveRun(stack, ns, 30);
  const ws = await openWs(`ws://127.0.0.1:${stack.changecast.pushPort}/v1/ws`);
  assert.equal((await ws.subscribe('ring', ns, { after: token(live, 26) })).type, 'subscribed');
  assert.equal((await ws.subscribe('old', [ns], { after: token(live, 2) })).type, 'subscribed');
  await waitUntil(() => ws.changes('ring').length >= 4 && ws.changes('old').length >= 28, () => `replays (ring ${ws.seqs('ring')}, old ${ws.seqs('old').length})`);
  await writeSeq(coll(stack, ns), 31, 33);
  await waitUntil(() => ws.changes('ring').length >= 7 && ws.changes('old').length >= 31, () => `replays then live (ring ${ws.seqs('ring')}, old ${ws.seqs('old').length})`);
  assert.deepEqual(ws.seqs('ring'), range(27, 33));
  assert.deepEqual(ws.seqs('old'), range(3, 33));
  assert.deepEqual(ws.of('reset'), []);
});

test('a token older than the upstream history (286 ChangeStreamHistoryLost) gets `reset` history_lost on SSE and WS, then the live stream', async () => {
  // Its own stand-in keeps only 60 events; changecast's ring only 5.
  const s = await startPush({ standinArgs: ['--oplog-size', '60'], flags: ['--changes.ring_events', '5'] });
  try {
    const ns = 'it.orders';
    const live = openEventSource(sseUrl(s.pushUrl, { ns }));
    await live.opened;
    // Written in small batches, each seen by the live subscriber before the
    // next, so changecast's own stream keeps up with the short history.
    for (let from = 1; from <= 150; from += 10) {
      await writeSeq(coll(s, ns), from, from + 9);
      await waitSeqs(live, from + 9, 'for the live subscriber');
    }
    const old = token(live, 2);
    const sse = openEventSource(sseUrl(s.pushUrl, { ns }), { lastEventId: old });
    await sse.opened;
    const ws = await openWs(`ws://127.0.0.1:${s.changecast.pushPort}/v1/ws`);
    const first = await ws.subscribe('lost', ns, { after: old });
    assert.ok(['subscribed', 'reset'].includes(first.type), `subscribe with a lost token: ${JSON.stringify(first)}`);
    await waitUntil(() => sse.resets.length >= 1, () => `an SSE reset (events: ${JSON.stringify(sse.events.map((e) => e.type))})`);
    await waitUntil(() => ws.of('reset', 'lost').length >= 1, () => `a WS reset (messages: ${JSON.stringify(ws.messages).slice(0, 500)})`);
    const sseReset = sse.resets[0].json;
    assert.equal(sseReset.reason, 'history_lost');
    assert.equal(typeof sseReset.message, 'string');
    assert.equal(sse.events[0].type, 'reset', 'nothing comes before the reset');
    const wsReset = ws.of('reset', 'lost')[0];
    assert.equal(wsReset.reason, 'history_lost');
    assert.equal(typeof wsReset.message, 'string');
    assert.deepEqual(ws.changes('lost'), [], 'no change before the reset');
    // "The stream continues from now."
    await writeSeq(coll(s, ns), 151, 155);
    await waitSeqs(sse, 5, 'after the reset');
    await waitUntil(() => ws.changes('lost').length >= 5, () => `5 WS changes after the reset (got ${ws.seqs('lost')})`);
    assert.deepEqual(sse.seqs, range(151, 155));
    assert.deepEqual(ws.seqs('lost'), range(151, 155));
    assert.ok(ws.open);
    // The live subscriber was never disturbed.
    await waitSeqs(live, 155, 'for the live subscriber');
    assert.deepEqual(live.seqs, range(1, 155));
    assert.deepEqual(live.resets, []);
  } finally {
    closeAll();
    await s.stop();
  }
});
