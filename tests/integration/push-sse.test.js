// SPDX-License-Identifier: Apache-2.0
// The push port over Server-Sent Events (docs/push-protocol.md): delivery to
// curl and to npm `eventsource`, the stream's framing and Extended JSON,
// filters, ops, several namespaces on one connection, errors before the
// stream starts, /healthz and /metrics. Writes go through changecast's wire
// proxy with the official driver, as an application's would.
'use strict';
const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { ObjectId } = require('mongodb');
const {
  usePush, waitUntil, openSse, openCurlSse, openEventSource, closeAll, httpGet, metrics, metricSum, sseUrl,
} = require('./push-support');

const stack = usePush({ flags: ['--push.heartbeat_ms', '300'] });
afterEach(() => closeAll());

const coll = (ns) => {
  const [db, c] = ns.split('.');
  return stack.client.db(db).collection(c);
};

function waitChanges(sink, n, what = '') {
  return waitUntil(
    () => sink.changes.length >= n,
    () => `${n} change events ${what} on ${sink.kind} (got ${sink.changes.length}: ${JSON.stringify(sink.changes.map((e) => e.json?.documentKey)).slice(0, 400)}; status ${sink.status}, errors ${JSON.stringify(sink.error?.message ?? null)})`,
  );
}

const keys = (sink) => sink.changes.map((e) => e.json.documentKey._id);

test('SSE with curl: 200 text/event-stream, a retry hint and a comment first, then one `change` per insert with its token as id', async () => {
  const sink = await openCurlSse(sseUrl(stack.pushUrl, { ns: 'shop.curl' }));
  assert.equal(sink.status, 200);
  assert.match(sink.headers['content-type'] || '', /^text\/event-stream/);
  await waitUntil(() => sink.lines.length >= 2, () => `the stream preamble; lines so far ${JSON.stringify(sink.lines)}`);
  assert.match(sink.lines[0], /^retry: ?\d+$/, `the stream starts with a retry hint: ${JSON.stringify(sink.lines.slice(0, 3))}`);
  assert.ok(sink.lines[1].startsWith(':'), `a comment follows the retry hint: ${JSON.stringify(sink.lines.slice(0, 3))}`);

  const oid = new ObjectId();
  const when = new Date('2026-11-26T10:00:00Z');
  await coll('shop.curl').insertOne({ _id: 1, seq: 1, oid, when, qty: 5, price: 9.5, name: 'a\nb "c"' });
  await coll('shop.curl').insertOne({ _id: 2, seq: 2 });
  await coll('shop.curl').insertOne({ _id: 3, seq: 3 });
  await waitChanges(sink, 3);
  assert.equal(sink.changes.length, 3);
  assert.deepEqual(sink.seqs, [1, 2, 3]);
  for (const e of sink.changes) {
    assert.equal(e.type, 'change');
    assert.ok(e.json, `data is one line of JSON: ${e.data.slice(0, 200)}`);
    assert.equal(e.id, e.json._id._data, 'the SSE id is the event token, _id._data');
    assert.equal(e.json.operationType, 'insert');
    assert.deepEqual(e.json.ns, { db: 'shop', coll: 'curl' });
  }
  const ids = sink.changes.map((e) => e.id);
  assert.ok(ids[0] < ids[1] && ids[1] < ids[2], `tokens compare as strings in stream order: ${ids}`);
  // Relaxed Extended JSON v2.
  const first = sink.changes[0].json;
  assert.deepEqual(first.fullDocument, { _id: 1, seq: 1, oid: { $oid: oid.toHexString() }, when: { $date: '2026-11-26T10:00:00Z' }, qty: 5, price: 9.5, name: 'a\nb "c"' });
  assert.deepEqual(first.documentKey, { _id: 1 });
  assert.deepEqual(Object.keys(first.clusterTime), ['$timestamp']);
  assert.equal(typeof first.clusterTime.$timestamp.t, 'number');
  assert.equal(typeof first.clusterTime.$timestamp.i, 'number');
  assert.match(first.wallTime.$date, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.equal(sink.ended, false, 'the stream stays open');
});

test('SSE with npm eventsource: insert, update, replace and delete arrive in order as `change` events', async () => {
  const sink = openEventSource(sseUrl(stack.pushUrl, { ns: 'it.orders' }));
  await sink.opened;
  const c = coll('it.orders');
  await c.insertOne({ _id: 'es-1', seq: 1, status: 'new' });
  await c.updateOne({ _id: 'es-1' }, { $set: { status: 'paid' } });
  await c.replaceOne({ _id: 'es-1' }, { seq: 3, status: 'replaced' });
  await c.deleteOne({ _id: 'es-1' });
  await waitChanges(sink, 4);
  assert.deepEqual(sink.changes.map((e) => e.json.operationType), ['insert', 'update', 'replace', 'delete']);
  assert.deepEqual(sink.changes[1].json.updateDescription.updatedFields, { status: 'paid' });
  assert.deepEqual(sink.changes[2].json.fullDocument, { _id: 'es-1', seq: 3, status: 'replaced' });
  assert.deepEqual(sink.changes[3].json.documentKey, { _id: 'es-1' });
  for (const e of sink.changes) assert.equal(e.id, e.json._id._data, 'MessageEvent.lastEventId is the token');
  assert.equal(sink.errors.length, 0);
});

test('a `filter` delivers exactly the events it matches ($eq, $in on documentKey, $gt, $or, $all)', async () => {
  const ns = 'shop.filters';
  const filters = {
    paid: [{ 'fullDocument.status': 'paid' }, [2, 4, 100]],
    pinned: [{ 'documentKey._id': { $in: [2, 5, 100] } }, [2, 5, 100]],
    big: [{ 'fullDocument.total': { $gt: 100 } }, [2, 5, 6, 100]],
    either: [{ $or: [{ 'fullDocument.status': 'refunded' }, { 'fullDocument.total': { $gte: 500 } }] }, [3, 6, 100]],
    tagged: [{ 'fullDocument.tags': { $all: ['a', 'b'] } }, [2, 5, 100]],
    none: [{ 'fullDocument.status': 'nonexistent' }, []],
  };
  const sinks = {};
  for (const [name, [filter]] of Object.entries(filters)) {
    sinks[name] = await openSse(sseUrl(stack.pushUrl, { ns, filter }));
    assert.equal(sinks[name].status, 200, `${name}: ${sinks[name].body}`);
  }
  const all = await openSse(sseUrl(stack.pushUrl, { ns }));
  await coll(ns).insertMany(
    [
      { _id: 1, status: 'new', total: 50, tags: ['a'] },
      { _id: 2, status: 'paid', total: 150, tags: ['a', 'b'] },
      { _id: 3, status: 'refunded', total: 20, tags: ['b'] },
      { _id: 4, status: 'paid', total: 80, tags: [] },
      { _id: 5, status: 'new', total: 300, tags: ['a', 'b', 'c'] },
      { _id: 6, status: 'refunded', total: 600 },
    ],
    { ordered: true },
  );
  // Last: a document every filter but `none` matches, so each of them has
  // seen everything written before it once it arrives.
  await coll(ns).insertOne({ _id: 100, status: 'paid', total: 500, tags: ['a', 'b', 'end'] });
  await waitChanges(all, 7, 'unfiltered');
  for (const [name, [, expected]] of Object.entries(filters)) {
    if (expected.length) await waitChanges(sinks[name], expected.length, `for filter ${name}`);
    assert.deepEqual(keys(sinks[name]), expected, `filter ${name}: ${JSON.stringify(filters[name][0])}`);
  }
  assert.deepEqual(keys(all), [1, 2, 3, 4, 5, 6, 100]);
});

test('a filter in Extended JSON compares BSON values: $oid and $date', async () => {
  const ns = 'shop.ejson';
  const alice = new ObjectId();
  const bob = new ObjectId();
  const byOwner = await openSse(sseUrl(stack.pushUrl, { ns, filter: { 'fullDocument.owner': { $oid: alice.toHexString() } } }));
  const recent = await openSse(sseUrl(stack.pushUrl, { ns, filter: { 'fullDocument.at': { $gte: { $date: '2026-06-01T00:00:00Z' } } } }));
  assert.equal(byOwner.status, 200, byOwner.body);
  assert.equal(recent.status, 200, recent.body);
  const c = coll(ns);
  await c.insertOne({ _id: 1, owner: bob, at: new Date('2026-07-01T00:00:00Z') });
  await c.insertOne({ _id: 2, owner: alice, at: new Date('2026-01-01T00:00:00Z') });
  await c.insertOne({ _id: 3, owner: alice.toHexString(), at: '2026-07-01T00:00:00Z' });
  await c.insertOne({ _id: 4, owner: alice, at: new Date('2026-06-01T00:00:00Z') });
  await waitChanges(byOwner, 2, 'owner = ObjectId');
  await waitChanges(recent, 2, 'at >= Date');
  assert.deepEqual(keys(byOwner), [2, 4], 'an ObjectId equals only an ObjectId, not its hex string');
  assert.deepEqual(keys(recent), [1, 4], 'a Date compares only with dates, not with a string');
});

test('`ops` restricts the operation types a connection receives', async () => {
  const ns = 'shop.ops';
  const inserts = await openSse(sseUrl(stack.pushUrl, { ns, ops: 'insert' }));
  const updDel = await openSse(sseUrl(stack.pushUrl, { ns, ops: 'update,delete' }));
  const replaces = await openSse(sseUrl(stack.pushUrl, { ns, ops: 'replace' }));
  for (const s of [inserts, updDel, replaces]) assert.equal(s.status, 200, s.body);
  const c = coll(ns);
  await c.insertOne({ _id: 'a', v: 1 });
  await c.updateOne({ _id: 'a' }, { $set: { v: 2 } });
  await c.replaceOne({ _id: 'a' }, { v: 3 });
  await c.insertOne({ _id: 'b', v: 1 });
  await c.deleteOne({ _id: 'a' });
  // One last event of each kind, so each connection's last expected event
  // comes after the events it must not get.
  await c.insertOne({ _id: 'z', v: 1 });
  await c.replaceOne({ _id: 'b' }, { v: 9 });
  await c.updateOne({ _id: 'z' }, { $set: { v: 2 } });
  await waitChanges(inserts, 3, 'ops=insert');
  await waitChanges(replaces, 2, 'ops=replace');
  await waitChanges(updDel, 3, 'ops=update,delete');
  const shape = (s) => s.changes.map((e) => `${e.json.operationType}:${e.json.documentKey._id}`);
  assert.deepEqual(shape(inserts), ['insert:a', 'insert:b', 'insert:z']);
  assert.deepEqual(shape(replaces), ['replace:a', 'replace:b']);
  assert.deepEqual(shape(updDel), ['update:a', 'delete:a', 'update:z']);
});

test('several namespaces (ns repeated, db.* included) on one connection, in stream order; unexposed writes never appear', async () => {
  const multi = await openSse(sseUrl(stack.pushUrl, { ns: ['it.orders', 'it.chat', 'shop.*'] }));
  const chatOnly = await openEventSource(sseUrl(stack.pushUrl, { ns: 'it.chat' })).opened;
  assert.equal(multi.status, 200, multi.body);
  await coll('it.orders').insertOne({ _id: 'm1' });
  await coll('shop.alpha').insertOne({ _id: 'm2' });
  await coll('it.chat').insertOne({ _id: 'm3' });
  await coll('it.hidden').insertOne({ _id: 'm4' });
  await coll('other.things').insertOne({ _id: 'm5' });
  await coll('shop.beta').insertOne({ _id: 'm6' });
  await coll('it.chat').insertOne({ _id: 'm7' });
  await waitChanges(multi, 5);
  await waitChanges(chatOnly, 2);
  assert.deepEqual(
    multi.changes.map((e) => `${e.json.ns.db}.${e.json.ns.coll}:${e.json.documentKey._id}`),
    ['it.orders:m1', 'shop.alpha:m2', 'it.chat:m3', 'shop.beta:m6', 'it.chat:m7'],
  );
  assert.deepEqual(keys(chatOnly), ['m3', 'm7']);
});

test('a comment `: heartbeat` arrives every push.heartbeat_ms on an idle stream', async () => {
  const sink = await openSse(sseUrl(stack.pushUrl, { ns: 'shop.idle' }));
  await waitUntil(() => sink.comments.filter((c) => c === 'heartbeat').length >= 2, () => `two ": heartbeat" comments (comments: ${JSON.stringify(sink.comments)})`);
  assert.equal(sink.ended, false);
});

test('errors before the stream starts: 400 bad_request / bad_filter, 404 not_exposed / not_found, with JSON bodies', async () => {
  const u = stack.pushUrl;
  const cases = [
    ['no ns', `${u}/v1/events`, {}, 400, 'bad_request'],
    ['empty ns', `${u}/v1/events?ns=`, {}, 400, 'bad_request'],
    ['unknown ops value', sseUrl(u, { ns: 'it.orders', ops: 'insert,upsert' }), {}, 400, 'bad_request'],
    ['malformed lastEventId', sseUrl(u, { ns: 'it.orders', lastEventId: 'not-a-token' }), {}, 400, 'bad_request'],
    ['malformed Last-Event-ID header', sseUrl(u, { ns: 'it.orders' }), { 'Last-Event-ID': 'zz!' }, 400, 'bad_request'],
    ['filter not JSON', sseUrl(u, { ns: 'it.orders', filter: '{"a": ' }), {}, 400, 'bad_filter'],
    ['filter not an object', sseUrl(u, { ns: 'it.orders', filter: '[1]' }), {}, 400, 'bad_filter'],
    ['$where refused', sseUrl(u, { ns: 'it.orders', filter: { $where: 'true' } }), {}, 400, 'bad_filter'],
    ['$expr refused', sseUrl(u, { ns: 'it.orders', filter: { $expr: { $gt: ['$a', 1] } } }), {}, 400, 'bad_filter'],
    ['unknown operator', sseUrl(u, { ns: 'it.orders', filter: { a: { $near: [0, 0] } } }), {}, 400, 'bad_filter'],
    ['unexposed database', sseUrl(u, { ns: 'secret.keys' }), {}, 404, 'not_exposed'],
    ['unexposed collection of a partly exposed database', sseUrl(u, { ns: 'it.hidden' }), {}, 404, 'not_exposed'],
    ['one unexposed among exposed', sseUrl(u, { ns: ['it.orders', 'admin.system'] }), {}, 404, 'not_exposed'],
    ['unknown path', `${u}/v1/nothing`, {}, 404, 'not_found'],
    ['root', `${u}/`, {}, 404, 'not_found'],
  ];
  const failures = [];
  for (const [name, url, headers, status, error] of cases) {
    const res = await openSse(url, { headers });
    if (res.status === 200) res.close();
    const ok = res.status === status && res.json && res.json.error === error && typeof res.json.message === 'string' && res.json.message.length > 0;
    if (!ok) failures.push(`${name}: GET ${url.slice(u.length)} -> ${res.status} ${JSON.stringify(res.body ?? '(event stream)')}; want ${status} {"error":"${error}","message":...}`);
  }
  assert.deepEqual(failures, []);
});

test('/healthz answers 200 {"status":"ok"} while the capture stream is live', async () => {
  const res = await httpGet(`${stack.pushUrl}/healthz`);
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json.status, 'ok');
  // How far capture is behind the deployment (its high-water mark advances
  // while nothing is written).
  assert.equal(typeof res.json.lag_ms, 'number');
});

test('/metrics is Prometheus text with subscriber, captured and delivered counters; a closed SSE client stops counting', async () => {
  const before = await metrics(stack.pushUrl);
  assert.match(before.headers['content-type'] || '', /^text\/plain/);
  const subscribers = (m) => metricSum(m.samples, /subscri/) - metricSum(m.samples, /subscri.*(total|drop)/);
  const captured = (m) => metricSum(m.samples, /captur.*total|events_total/);
  const delivered = (m) => metricSum(m.samples, /deliver/);
  for (const [what, re] of [['subscriber', /subscri/], ['captured events', /captur/], ['delivered events', /deliver/]]) {
    assert.ok(before.samples.some((s) => re.test(s.name)), `a ${what} metric among: ${[...new Set(before.samples.map((s) => s.name))].join(' ')}`);
  }
  const sinks = [];
  for (let i = 0; i < 3; i++) sinks.push(await openSse(sseUrl(stack.pushUrl, { ns: 'shop.metrics' })));
  await coll('shop.metrics').insertOne({ _id: 1 });
  for (const s of sinks) await waitChanges(s, 1);
  const during = await metrics(stack.pushUrl);
  assert.ok(subscribers(during) >= subscribers(before) + 3, `subscribers grew by 3: ${subscribers(before)} -> ${subscribers(during)}\n${during.text}`);
  assert.ok(captured(during) >= captured(before) + 1, `captured grew: ${captured(before)} -> ${captured(during)}`);
  assert.ok(delivered(during) >= delivered(before) + 3, `delivered grew by 3: ${delivered(before)} -> ${delivered(during)}`);
  // An idle SSE client that goes away is noticed without a write to it.
  for (const s of sinks) s.close();
  await waitUntil(async () => subscribers(await metrics(stack.pushUrl)) <= subscribers(before), () => `the subscriber gauge back to ${subscribers(before)} after 3 idle SSE clients left`);
});
