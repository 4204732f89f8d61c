// SPDX-License-Identifier: Apache-2.0
// Faults around change capture and the push port: the upstream dropping the
// capture stream's connection, changecast killed with SIGKILL and restarted
// under a writer, a subscriber that stops reading, and an upstream that
// cannot stream changes at all. No gap and no duplicate are proven with a
// per-document `seq` written by the writer: every subscriber's sequence of
// fullDocument.seq must equal 1..N exactly.
'use strict';
const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { MongoClient } = require('mongodb');
const { startStandin, startChangecast, tempDir, CAPTURE_APP } = require('./support');
const {
  startPush, pushFlags, waitUntil, range, sleep, writeSeq, openCurlSse, openEventSource, openWs, openSse, openStalledSse, closeAll, httpGet, metrics, sseUrl,
} = require('./push-support');

afterEach(() => closeAll());

// One SSE stream and one WebSocket subscription ('o') on ns.
async function subscribeBoth(s, ns) {
  const sse = openEventSource(sseUrl(s.pushUrl, { ns }));
  await sse.opened;
  const ws = await openWs(s.wsUrl);
  assert.equal((await ws.subscribe('o', ns)).type, 'subscribed');
  return { sse, ws };
}

// Both got seq 1..n, each once and in order, and no reset.
function assertEverySeqOnce({ sse, ws }, n) {
  assert.deepEqual(sse.seqs, range(1, n), 'SSE: every seq once, in order');
  assert.deepEqual(ws.seqs('o'), range(1, n), 'WS: every seq once, in order');
  assert.deepEqual(sse.resets, []);
  assert.deepEqual(ws.of('reset'), []);
}

test('the upstream closing the capture stream connection (failCommand closeConnection on getMore, 3 times) loses and repeats nothing', async () => {
  const s = await startPush();
  const ns = 'it.orders';
  const N = 300;
  try {
    const { sse, ws } = await subscribeBoth(s, ns);
    const orders = s.client.db('it').collection('orders');
    const admin = s.client.db('admin');
    let armedAt = 0;
    for (let seq = 1; seq <= N; seq++) {
      if (seq === 51) {
        ({ count: armedAt } = await admin.command({ configureFailPoint: 'failCommand', mode: { times: 3 }, data: { failCommands: ['getMore'], appName: CAPTURE_APP, closeConnection: true } }));
      }
      await orders.insertOne({ _id: seq, seq });
    }
    await waitUntil(() => sse.changes.length >= N, () => `${N} events on SSE (got ${sse.changes.length}, last seqs ${sse.seqs.slice(-5)})`);
    await waitUntil(() => ws.changes('o').length >= N, () => `${N} events on WS (got ${ws.changes('o').length})`);
    const { count } = await admin.command({ configureFailPoint: 'failCommand', mode: 'off' });
    assert.equal(count - armedAt, 3, 'the fail point closed the capture getMore connection 3 times');
    assertEverySeqOnce({ sse, ws }, N);
    // Tokens strictly increase: no replayed event slipped in.
    const tokens = sse.changes.map((e) => e.id);
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i - 1] < tokens[i], `token ${i} increases`);
    assert.equal((await httpGet(`${s.pushUrl}/healthz`)).status, 200, 'capture is live again');
  } finally {
    closeAll();
    await s.stop();
  }
});

test('the capture stream resumes quietly after each resumable error of a getMore (failGetMoreAfterCursorCheckout, the 15 codes of the change-streams spec); a non-resumable one is logged and retried; nothing lost, nothing repeated', async () => {
  const s = await startPush();
  const ns = 'it.orders';
  const codes = [6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 150, 234, 133];
  try {
    const { sse, ws } = await subscribeBoth(s, ns);
    const coll = s.client.db('it').collection('orders');
    const admin = s.client.db('admin');
    let seq = 0;
    for (const code of codes) {
      const { count } = await admin.command({ configureFailPoint: 'failGetMoreAfterCursorCheckout', mode: { times: 1 }, data: { errorCode: code, appName: CAPTURE_APP } });
      // The capture getMore fails once with `code`; the write after it must
      // still arrive once.
      await admin.command({ waitForFailPoint: 'failGetMoreAfterCursorCheckout', timesEntered: count + 1, maxTimeMS: 10000 });
      seq += 1;
      await coll.insertOne({ _id: seq, seq });
      await waitUntil(() => sse.seqs.length >= seq && ws.seqs('o').length >= seq, () => `seq ${seq} after code ${code} (SSE ${sse.seqs.slice(-3)}, WS ${ws.seqs('o').slice(-3)})`);
    }
    // The driver (libmongoc) resumed by the ResumableChangeStreamError label:
    // changecast's own retry never saw an error.
    assert.doesNotMatch(s.changecast.output, /event=capture_interrupted/);
    // A non-resumable error reaches changecast, which says so and re-opens
    // the stream from its own position.
    const { count } = await admin.command({ configureFailPoint: 'failGetMoreAfterCursorCheckout', mode: { times: 1 }, data: { errorCode: 2, appName: CAPTURE_APP } });
    await admin.command({ waitForFailPoint: 'failGetMoreAfterCursorCheckout', timesEntered: count + 1, maxTimeMS: 10000 });
    await s.changecast.waitFor(/event=capture_interrupted error="[^"]*Hit the 'failGetMoreAfterCursorCheckout' failpoint/, 10000);
    seq += 1;
    await coll.insertOne({ _id: seq, seq });
    await waitUntil(() => sse.seqs.length >= seq && ws.seqs('o').length >= seq, () => `seq ${seq} after the non-resumable error`);
    assertEverySeqOnce({ sse, ws }, seq);
    assert.equal((await httpGet(`${s.pushUrl}/healthz`)).status, 200, 'capture is live');
    // While capture cannot re-open its stream after a non-resumable error,
    // /healthz answers 503 with the error (a load balancer takes the
    // instance out), and 200 again once capture is back.
    await admin.command({ configureFailPoint: 'failCommand', mode: { times: 4 }, data: { failCommands: ['aggregate'], errorCode: 2, appName: CAPTURE_APP } });
    await admin.command({ configureFailPoint: 'failGetMoreAfterCursorCheckout', mode: { times: 1 }, data: { errorCode: 2, appName: CAPTURE_APP } });
    const down = await waitUntil(async () => {
      const r = await httpGet(`${s.pushUrl}/healthz`);
      return r.status === 503 ? r : null;
    }, '/healthz 503 while capture is interrupted', 15000);
    assert.equal(down.json.status, 'unavailable');
    assert.match(down.json.reason, /capture stream was interrupted and is being resumed/);
    await waitUntil(async () => (await httpGet(`${s.pushUrl}/healthz`)).status === 200, '/healthz 200 once capture is back', 20000);
    seq += 1;
    await coll.insertOne({ _id: seq, seq });
    await waitUntil(() => sse.seqs.length >= seq && ws.seqs('o').length >= seq, () => `seq ${seq} after capture came back`);
    assertEverySeqOnce({ sse, ws }, seq);
  } finally {
    closeAll();
    await s.stop();
  }
});

test('changecast killed with SIGKILL and restarted while a writer keeps writing: each subscriber reconnecting with its last token gets every event exactly once', async () => {
  const standin = await startStandin();
  const tokenFile = path.join(tempDir('cc-token'), 'token');
  const ns = 'it.orders';
  // The writer goes to the stand-in directly: it must keep writing while
  // changecast (and so its wire port) is down.
  const writerClient = new MongoClient(standin.uri, { serverSelectionTimeoutMS: 15000 });
  let a;
  let b;
  let stopWriting = false;
  let written = 0;
  let writer;
  try {
    await writerClient.connect();
    const orders = writerClient.db('it').collection('orders');
    a = await startPush({ standin, tokenFile, flags: ['--changes.token_save_ms', '50'] });
    const subscribers = {
      eventsource: openEventSource(sseUrl(a.pushUrl, { ns })),
      curl: await openCurlSse(sseUrl(a.pushUrl, { ns })),
      ws: await openWs(a.wsUrl),
    };
    await subscribers.eventsource.opened;
    assert.equal(subscribers.curl.status, 200);
    assert.equal((await subscribers.ws.subscribe('o', ns)).type, 'subscribed');
    writer = (async () => {
      while (!stopWriting) {
        written += 1;
        await orders.insertOne({ _id: written, seq: written });
        await sleep(2);
      }
    })();
    const got = {
      eventsource: () => subscribers.eventsource.seqs,
      curl: () => subscribers.curl.seqs,
      ws: () => subscribers.ws.seqs('o'),
    };
    const seen = {};
    await waitUntil(() => Object.values(got).every((f) => f().length >= 100), () => `100 events on each subscriber before the kill (${Object.entries(got).map(([k, f]) => `${k} ${f().length}`)})`);

    a.changecast.proc.kill('SIGKILL');
    assert.deepEqual(await a.changecast.waitExit(), { code: null, signal: 'SIGKILL' });
    await a.client.close().catch(() => {});
    const atKill = written;
    // Each subscriber notices and keeps what it had.
    await waitUntil(() => subscribers.curl.ended && !subscribers.ws.open && subscribers.eventsource.ended, 'every subscriber to notice the kill');
    subscribers.eventsource.close();
    for (const [k, f] of Object.entries(got)) seen[k] = f();
    const last = {
      eventsource: subscribers.eventsource.lastEventId,
      curl: subscribers.curl.lastEventId,
      ws: subscribers.ws.lastToken('o'),
    };
    // Writes keep coming while changecast is down.
    await waitUntil(() => written >= atKill + 100, 'the writer to write 100 documents while changecast is down');

    b = await startPush({ standin, tokenFile, flags: ['--changes.token_save_ms', '50'] });
    assert.match(b.changecast.output, /event=capture_started resumed=true/, 'the restarted capture resumes from the token file');
    const again = {
      eventsource: openEventSource(sseUrl(b.pushUrl, { ns }), { lastEventId: last.eventsource }),
      curl: await openCurlSse(sseUrl(b.pushUrl, { ns }), { headers: { 'Last-Event-ID': last.curl } }),
      ws: await openWs(b.wsUrl),
    };
    await again.eventsource.opened;
    assert.equal(again.curl.status, 200);
    assert.equal((await again.ws.subscribe('o', ns, { after: last.ws })).type, 'subscribed');
    const atRestart = written;
    await waitUntil(() => written >= atRestart + 100, 'the writer to write 100 documents after the restart');
    stopWriting = true;
    await writer;
    const N = written;
    const after = {
      eventsource: () => again.eventsource.seqs,
      curl: () => again.curl.seqs,
      ws: () => again.ws.seqs('o'),
    };
    await waitUntil(
      () => Object.keys(after).every((k) => seen[k].length + after[k]().length >= N),
      () => `every subscriber at ${N} (${Object.keys(after).map((k) => `${k} ${seen[k].length}+${after[k]().length}`)})`,
    );
    for (const k of Object.keys(after)) {
      assert.deepEqual([...seen[k], ...after[k]()], range(1, N), `${k}: every seq exactly once across the restart`);
    }
    assert.deepEqual(again.eventsource.resets, []);
    assert.deepEqual(again.curl.resets, []);
    assert.deepEqual(again.ws.of('reset'), []);
  } finally {
    stopWriting = true;
    await writer?.catch(() => {});
    closeAll();
    await writerClient.close().catch(() => {});
    if (a) await a.changecast.stop().catch(() => {});
    if (b) await b.stop();
    await standin.stop();
  }
});

test("changecast's own stream falling out of the upstream history (286 on its getMore) gives every subscriber `reset` capture_restarted, then the live stream", async () => {
  const s = await startPush({ standinArgs: ['--oplog-size', '30'] });
  const ns = 'it.orders';
  try {
    const sse = openEventSource(sseUrl(s.pushUrl, { ns }));
    await sse.opened;
    const ws = await openWs(s.wsUrl);
    assert.equal((await ws.subscribe('o', ns)).type, 'subscribed');
    const orders = s.client.db('it').collection('orders');
    await writeSeq(orders, 1, 5);
    await waitUntil(() => sse.changes.length >= 5 && ws.changes('o').length >= 5, 'the first 5 events on both subscribers');
    // The capture stream's next getMore waits 3 s while 150 writes push its
    // position out of a 30-event history.
    await s.client.db('admin').command({ configureFailPoint: 'failCommand', mode: { times: 1 }, data: { failCommands: ['getMore'], appName: 'changecast-capture@it', blockConnection: true, blockTimeMS: 3000 } });
    await writeSeq(orders, 6, 155);
    await waitUntil(() => sse.resets.length >= 1 && ws.of('reset', 'o').length >= 1, () => `a reset on both subscribers (SSE ${JSON.stringify(sse.events.filter((e) => e.type !== 'change'))}, WS ${JSON.stringify(ws.of('reset'))}); log:\n${s.changecast.output.split('\n').filter((l) => !/event=(accepted|closed|upstream_connected)/.test(l)).slice(-15).join('\n')}`, 30000);
    assert.equal(sse.resets[0].json?.reason, 'capture_restarted', sse.resets[0].data);
    assert.equal(ws.of('reset', 'o')[0].reason, 'capture_restarted');
    // Before the reset: a gap-free prefix. After it: the live stream.
    const cut = sse.events.findIndex((e) => e.type === 'reset');
    const before = sse.events.slice(0, cut).map((e) => e.json.fullDocument.seq);
    assert.deepEqual(before, range(1, before.length));
    const wsCut = ws.messages.findIndex((m) => m.type === 'reset');
    const wsBefore = ws.messages.slice(0, wsCut).filter((m) => m.type === 'change').map((m) => m.event.fullDocument.seq);
    assert.deepEqual(wsBefore, range(1, wsBefore.length));
    await waitUntil(async () => (await httpGet(`${s.pushUrl}/healthz`)).status === 200, '/healthz 200 again');
    await writeSeq(orders, 1001, 1005);
    await waitUntil(() => sse.seqs.includes(1005) && ws.seqs('o').includes(1005), 'the writes after the restart on both subscribers');
    const after = (list) => list.filter((n) => n > 1000);
    assert.deepEqual(after(sse.seqs), range(1001, 1005));
    assert.deepEqual(after(ws.seqs('o')), range(1001, 1005));
    assert.ok(ws.open);
  } finally {
    closeAll();
    await s.stop();
  }
});

test('a subscriber that stops reading is dropped (slow_consumer) while a fast one receives every event', async () => {
  // The bound is four times smaller than what the kernel buffers on a
  // loopback connection, and large enough for the bursts a subscriber that
  // keeps reading can see between two flushes (with 64 KiB, a lone
  // EventSource reading as fast as it can was dropped too: see the report).
  const s = await startPush({ flags: ['--push.max_queue_bytes', '262144'] });
  const ns = 'it.chat';
  try {
    const fast = openEventSource(sseUrl(s.pushUrl, { ns }));
    await fast.opened;
    // The slow subscriber sends its request and never reads a byte.
    const slow = await openStalledSse(s.changecast.pushPort, `/v1/events?ns=${ns}`);
    const chat = s.client.db('it').collection('chat');
    const body = 'x'.repeat(8 * 1024);
    const dropped = async () => {
      if (/slow_consumer/.test(s.changecast.output)) return true;
      const m = await metrics(s.pushUrl);
      return m.samples.some((x) => Object.values(x.labels).includes('slow_consumer') && x.value >= 1);
    };
    let n = 0;
    // Far more than the queue bound plus what the kernel buffers on loopback.
    while (n < 3000) {
      n += 1;
      await chat.insertOne({ _id: n, seq: n, body });
      await sleep(2);
      if (n % 25 === 0 && (await dropped())) break;
    }
    assert.ok(await dropped(), `the slow subscriber was dropped with reason slow_consumer after ${n} events of 8 KiB (log or /metrics):\n${(await metrics(s.pushUrl)).text}`);
    for (let k = 0; k < 20; k++) {
      n += 1;
      await chat.insertOne({ _id: n, seq: n, body });
    }
    await waitUntil(() => fast.changes.length >= n, () => `${n} events on the fast subscriber (got ${fast.changes.length})`, 60000);
    assert.deepEqual(fast.seqs, range(1, n), 'the fast subscriber got every event once');
    assert.deepEqual(fast.resets, []);
    // Reading what is left of the slow connection reaches its end.
    slow.drain();
    await waitUntil(() => slow.closed, () => `the slow subscriber's connection to be closed (read ${slow.received.length} bytes)`);
    const events = slow.received.split(/\r?\n\r?\n/).filter((b) => /^event: change$/m.test(b)).length;
    assert.ok(events < n, `the slow subscriber did not get everything (${events} of ${n})`);
    const resets = slow.received.split(/\r?\n\r?\n/).filter((b) => /^event: reset$/m.test(b));
    for (const r of resets) assert.match(r, /"reason"\s*:\s*"slow_consumer"/);
    const text = (await metrics(s.pushUrl)).text;
    assert.match(text, /slow_consumer/, '/metrics counts the drop by reason');
  } finally {
    closeAll();
    await s.stop();
  }
});

test('an upstream that cannot stream changes (standalone): /healthz 503, /v1/events 503 capture_unavailable, WS error; the wire proxy still works', async () => {
  const standin = await startStandin(['--standalone']);
  let changecast;
  let client;
  try {
    changecast = await startChangecast(standin.port, pushFlags(), { upstreamUri: `mongodb://127.0.0.1:${standin.port}/` });
    assert.ok(changecast.pushUrl, 'the ready line names the push port');
    // Drivers see a router and would use retryable writes, which a
    // standalone refuses: an application in front of one turns them off.
    client = new MongoClient(changecast.uri, { serverSelectionTimeoutMS: 10000, retryWrites: false });
    const orders = client.db('it').collection('orders');
    await orders.insertOne({ _id: 1, seq: 1 });
    assert.deepEqual(await orders.findOne({ _id: 1 }), { _id: 1, seq: 1 });

    const health = await waitUntil(async () => {
      const r = await httpGet(`${changecast.pushUrl}/healthz`);
      return r.status === 503 ? r : null;
    }, '/healthz to answer 503');
    assert.equal(health.json?.status, 'unavailable', health.body);
    assert.equal(typeof health.json?.reason, 'string', health.body);

    const sse = await openSse(sseUrl(changecast.pushUrl, { ns: 'it.orders' }));
    if (sse.status === 200) sse.close();
    assert.equal(sse.status, 503, `GET /v1/events: ${sse.status} ${sse.body ?? '(event stream)'}`);
    assert.equal(sse.json?.error, 'capture_unavailable', sse.body);
    assert.equal(typeof sse.json?.message, 'string');

    // Still serving applications, and still unavailable for push.
    await orders.updateOne({ _id: 1 }, { $set: { seq: 2 } });
    assert.equal((await orders.findOne({ _id: 1 })).seq, 2);
    assert.equal((await httpGet(`${changecast.pushUrl}/healthz`)).status, 503);
    assert.doesNotMatch(changecast.output, /event=capture_started/);

    // WebSocket: "codes as for SSE", so a subscribe is refused the same way.
    const ws = await openWs(`ws://127.0.0.1:${changecast.pushPort}/v1/ws`);
    const answer = await ws.subscribe('o', 'it.orders');
    assert.deepEqual({ type: answer.type, id: answer.id, code: answer.code }, { type: 'error', id: 'o', code: 'capture_unavailable' });
  } finally {
    closeAll();
    await client?.close();
    await changecast?.stop();
    await standin.stop();
  }
});

test('SIGTERM: WebSocket subscribers are closed with 1001, SSE streams end, changecast exits 0', async () => {
  const s = await startPush();
  try {
    const ws = await openWs(s.wsUrl);
    assert.equal((await ws.subscribe('o', 'it.orders')).type, 'subscribed');
    const sse = await openSse(sseUrl(s.pushUrl, { ns: 'it.orders' }));
    assert.equal(sse.status, 200);
    s.changecast.proc.kill('SIGTERM');
    assert.deepEqual(await s.changecast.waitExit(), { code: 0, signal: null }, s.changecast.output);
    await waitUntil(() => ws.closed && sse.ended, 'the WebSocket closed and the SSE stream ended');
    assert.equal(ws.closed.code, 1001, JSON.stringify(ws.closed));
  } finally {
    closeAll();
    await s.stop();
  }
});
