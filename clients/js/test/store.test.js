// SPDX-License-Identifier: Apache-2.0
// LiveCollection and Stream fed protocol messages exactly as
// docs/push-protocol.md writes them (WebSocket shapes, and SSE events through
// fromSse): snapshot, insert, update, replace, delete, transactions,
// format=docs, duplicates, reset, and what listeners are told.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LiveCollection, Stream, Waiters, fromSse, idKey } from '../changecast.js';

// Where a Connection would put a transport, these tests feed the Stream.
function feeder() {
    const streams = [];
    const waiters = new Waiters(() => streams.filter((s) => !s.closed));
    return {
        streams,
        get current() {
            return streams[streams.length - 1];
        },
        feed(...messages) {
            for (const m of messages) this.current.feed(m);
        },
        open(selection, sink) {
            const stream = new Stream(selection, { ...sink, advanced: () => waiters.check() });
            streams.push(stream);
            return { stream, close: () => (stream.closed = true) };
        },
        waitFor: (t, options) => waiters.waitFor(t, options),
    };
}

const tok = (n) => `82${String(n).padStart(10, '0')}`;
const ts = (t, i = 1) => ({ $timestamp: { t, i } });
const ev = (n, operationType, id, more = {}) => ({
    type: 'change',
    id: 'x',
    token: tok(n),
    event: { _id: { _data: tok(n) }, operationType, clusterTime: ts(1000 + n), ns: { db: 'shop', coll: 'orders' }, documentKey: { _id: id }, ...more },
});
const snapshot = (docs, n = 0) => [
    { type: 'snapshot-begin', ns: 'shop.orders', atClusterTime: ts(1000 + n), count: docs.length },
    ...docs.map((doc) => ({ type: 'doc', doc })),
    { type: 'snapshot-end', atClusterTime: ts(1000 + n), token: tok(n) },
];

function store(options) {
    const src = feeder();
    const coll = new LiveCollection(src, 'shop.orders', options);
    const heard = [];
    coll.subscribe((changed) => heard.push(changed));
    return { src, coll, heard };
}

test('a snapshot fills the Map keyed by the Extended JSON of _id and resolves ready', async () => {
    const { src, coll, heard } = store();
    assert.deepEqual(src.current.request(), { ns: 'shop.orders', snapshot: true }, 'asks for a live query');
    src.feed(...snapshot([{ _id: 'a', n: 1 }, { _id: { $oid: '65f2a8c4000000012b042c01' }, n: 2 }, { _id: 7, n: 3 }]));
    await coll.ready;
    assert.equal(coll.status, 'live');
    assert.deepEqual([...coll.keys()], ['"a"', '{"$oid":"65f2a8c4000000012b042c01"}', '7']);
    assert.equal(coll.get({ $oid: '65f2a8c4000000012b042c01' }).n, 2);
    assert.deepEqual(heard, [{ inserted: ['"a"', '{"$oid":"65f2a8c4000000012b042c01"}', '7'], updated: [], deleted: [], reset: false, snapshot: true }]);
    assert.equal(src.current.token, tok(0), 'resumes from the snapshot-end position token');
    assert.deepEqual(src.current.request(), { ns: 'shop.orders', snapshot: true, after: tok(0) }, 'a reconnect resumes instead of reading again');
});

test('insert, update (nested, truncation, removal), replace and delete apply in place and name exactly the changed key', () => {
    const { src, coll, heard } = store();
    src.feed(...snapshot([{ _id: 1, a: { b: [1, 2, 3] }, gone: true }, { _id: 2, v: 0 }]));
    const two = coll.get(2);
    heard.length = 0;
    src.feed(ev(1, 'insert', 3, { fullDocument: { _id: 3, v: 'new' } }));
    src.feed(ev(2, 'update', 1, { updateDescription: { updatedFields: { 'a.b.1': 20, 'a.c': 'x' }, removedFields: ['gone'], truncatedArrays: [{ field: 'a.b', newSize: 2 }] } }));
    src.feed(ev(3, 'replace', 2, { fullDocument: { _id: 2, replaced: true } }));
    src.feed(ev(4, 'delete', 3));
    assert.deepEqual(heard, [
        { inserted: ['3'], updated: [], deleted: [], reset: false },
        { inserted: [], updated: ['1'], deleted: [], reset: false },
        { inserted: [], updated: ['2'], deleted: [], reset: false },
        { inserted: [], updated: [], deleted: ['3'], reset: false },
    ]);
    assert.deepEqual(coll.get(1), { _id: 1, a: { b: [1, 20], c: 'x' } });
    assert.deepEqual(coll.get(2), { _id: 2, replaced: true });
    assert.notEqual(coll.get(2), two);
    assert.equal(coll.size, 2);
    assert.deepEqual(coll.rows().map((d) => d._id), [1, 2]);
});

test('rows() is one frozen array until something changes, and unchanged documents keep their identity', () => {
    const { src, coll } = store();
    src.feed(...snapshot([{ _id: 1, v: 1 }, { _id: 2, v: 2 }]));
    const rows = coll.getSnapshot();
    assert.equal(coll.getSnapshot(), rows);
    src.feed(ev(1, 'update', 2, { updateDescription: { updatedFields: { v: 3 }, removedFields: [] } }));
    const after = coll.getSnapshot();
    assert.notEqual(after, rows);
    assert.equal(after[0], rows[0], 'row 1 is the same object');
    assert.notEqual(after[1], rows[1]);
});

test('duplicate change events (same or older token) are discarded', () => {
    const { src, coll, heard } = store();
    src.feed(...snapshot([{ _id: 1, n: 0 }], 0));
    heard.length = 0;
    const inc = (n) => ev(n, 'update', 1, { updateDescription: { updatedFields: { n }, removedFields: [] } });
    src.feed(inc(1), inc(2), inc(2), inc(1), inc(3));
    assert.equal(heard.length, 3);
    assert.equal(coll.get(1).n, 3);
    assert.equal(src.current.duplicates, 2);
    // Over SSE the token is the event's _id._data (also its id: line).
    src.feed(fromSse('change', JSON.stringify(inc(3).event), tok(3)));
    assert.equal(heard.length, 3, 'a replay over SSE is dropped too');
});

test('a transaction applies as one batch and listeners hear it once', () => {
    const { src, coll, heard } = store();
    src.feed(...snapshot([{ _id: 1, v: 1 }, { _id: 2, v: 2 }]));
    heard.length = 0;
    const items = [
        ev(5, 'update', 1, { updateDescription: { updatedFields: { v: 10 }, removedFields: [] } }),
        ev(6, 'insert', 9, { fullDocument: { _id: 9 } }),
        ev(7, 'delete', 2),
        ev(8, 'update', 9, { updateDescription: { updatedFields: { late: true }, removedFields: [] } }),
    ].map(({ token, event }) => ({ type: 'change', token, event }));
    src.feed({ type: 'transaction', id: 'x', txnNumber: 7, lsid: {}, changes: items });
    assert.deepEqual(heard, [{ inserted: ['9'], updated: ['1'], deleted: ['2'], reset: false }]);
    assert.deepEqual(coll.get(9), { _id: 9, late: true });
    // The same over SSE: event: txn, then count events.
    src.feed(fromSse('txn', '{"txnNumber":8,"lsid":{},"count":2}'));
    src.feed(fromSse('change', JSON.stringify(ev(9, 'update', 1, { updateDescription: { updatedFields: { v: 11 } } }).event)));
    assert.equal(heard.length, 1, 'nothing applied before the whole transaction arrived');
    src.feed(fromSse('change', JSON.stringify(ev(10, 'delete', 9).event)));
    assert.deepEqual(heard[1], { inserted: [], updated: ['1'], deleted: ['9'], reset: false });
    // The server nests txnNumber and lsid under "txn" (the protocol page has them at the top).
    const seen = [];
    src.current.sink = { ...src.current.sink, changes: (items, txn) => seen.push(txn) };
    src.feed({ type: 'transaction', id: 'x', txn: { txnNumber: 9, lsid: { id: 1 } }, changes: [ev(11, 'insert', 5, { fullDocument: { _id: 5 } })].map(({ token, event }) => ({ type: 'change', token, event })) });
    assert.deepEqual(seen, [{ txnNumber: 9, lsid: { id: 1 } }]);
});

test('format=docs: upsert and delete messages, tokens from the SSE id of the last message of a write', () => {
    const { src, coll, heard } = store({ filter: { status: 'open' } });
    assert.deepEqual(src.current.request(), { ns: 'shop.orders', snapshot: true, filter: { status: 'open' }, format: 'docs' });
    src.feed(...snapshot([{ _id: 1, status: 'open' }]).map((m) => (m.type === 'doc' ? fromSse('doc', JSON.stringify(m.doc)) : m)));
    heard.length = 0;
    src.feed(fromSse('upsert', '{"_id":2,"doc":{"_id":2,"status":"open"}}', null));
    src.feed(fromSse('delete', '{"_id":1}', tok(4)));
    assert.equal(src.current.token, tok(4));
    src.feed({ type: 'upsert', id: 'x', _id: 2, doc: { _id: 2, status: 'open', v: 2 }, token: tok(5) });
    assert.deepEqual(heard, [
        { inserted: ['2'], updated: [], deleted: [], reset: false },
        { inserted: [], updated: [], deleted: ['1'], reset: false },
        { inserted: [], updated: ['2'], deleted: [], reset: false },
    ]);
    assert.deepEqual([...coll.docs.values()], [{ _id: 2, status: 'open', v: 2 }]);
});

test('reset: the store keeps its rows, subscribes again with a snapshot, and swaps state in one step', async () => {
    const { src, coll, heard } = store();
    src.feed(...snapshot([{ _id: 1, v: 1 }, { _id: 2, v: 2 }, { _id: 3, v: 3 }]));
    src.feed(ev(1, 'update', 1, { updateDescription: { updatedFields: { v: 10 }, removedFields: [] } }));
    const first = src.current;
    const kept = coll.get(2);
    heard.length = 0;
    src.feed({ type: 'reset', id: 'x', reason: 'history_lost', message: 'gone' });
    assert.equal(first.closed, true, 'the old subscription is closed');
    assert.notEqual(src.current, first, 'a new one is opened');
    assert.deepEqual(src.current.request(), { ns: 'shop.orders', snapshot: true }, 'with a snapshot, no token');
    assert.equal(coll.status, 'resyncing');
    assert.equal(coll.size, 3, 'rows stay on screen meanwhile');
    src.feed({ type: 'snapshot-begin', ns: 'shop.orders', atClusterTime: ts(2000), count: 3 });
    src.feed({ type: 'doc', doc: { _id: 2, v: 2 } }, { type: 'doc', doc: { _id: 3, v: 30 } });
    assert.equal(coll.get(3).v, 3, 'nothing changes before the snapshot ends');
    src.feed({ type: 'doc', doc: { _id: 4, v: 4 } }, { type: 'snapshot-end', atClusterTime: ts(2000), token: tok(50) });
    assert.deepEqual(heard, [{ inserted: ['4'], updated: ['3'], deleted: ['1'], reset: true, snapshot: true }]);
    assert.equal(coll.get(2), kept, 'an unchanged document keeps its identity across the swap');
    assert.equal(coll.status, 'live');
    assert.equal(coll.lastReset.reason, 'history_lost');
});

test('an interrupted snapshot is dropped and asked for again', () => {
    const { src, coll, heard } = store();
    src.feed({ type: 'snapshot-begin', ns: 'shop.orders', atClusterTime: ts(1), count: 2 }, { type: 'doc', doc: { _id: 1 } });
    src.current.interrupted();
    assert.deepEqual(src.current.request(), { ns: 'shop.orders', snapshot: true });
    src.feed(...snapshot([{ _id: 5 }]));
    assert.deepEqual([...coll.keys()], ['5']);
    assert.equal(heard.length, 1);
});

test('a drop of the collection empties the store', () => {
    const { src, coll, heard } = store();
    src.feed(...snapshot([{ _id: 1 }, { _id: 2 }]));
    heard.length = 0;
    src.feed({ type: 'change', token: tok(3), event: { _id: { _data: tok(3) }, operationType: 'drop', clusterTime: ts(1003), ns: { db: 'shop', coll: 'orders' } } });
    assert.deepEqual(heard, [{ inserted: [], updated: [], deleted: ['1', '2'], reset: false }]);
    assert.equal(coll.size, 0);
});

test('sort orders rows as MongoDB would compare the values', () => {
    const { src, coll } = store({ sort: { 'at.when': -1 }, limit: 10 });
    src.feed(...snapshot([
        { _id: 1, at: { when: { $date: '2026-01-01T00:00:00Z' } } },
        { _id: 2, at: { when: { $date: '2026-03-01T00:00:00Z' } } },
        { _id: 3, at: { when: { $date: '2026-02-01T00:00:00Z' } } },
    ]));
    assert.deepEqual(coll.rows().map((d) => d._id), [2, 3, 1]);
    assert.equal(idKey('a'), '"a"');
});

test('an error (e.g. snapshot_too_large) fails ready and tells listeners', async () => {
    const { src, coll, heard } = store();
    src.feed({ type: 'error', id: 'x', code: 'snapshot_too_large', message: 'too big' });
    await assert.rejects(coll.ready, /snapshot_too_large/);
    assert.equal(coll.status, 'failed');
    assert.equal(heard[0].error.code, 'snapshot_too_large');
});

test('an update or replace without contents or description (the document left the rows the subscriber may see) removes it', () => {
    const { src, coll, heard } = store();
    src.feed(...snapshot([{ _id: 1 }, { _id: 2 }]));
    heard.length = 0;
    src.feed({ type: 'change', token: tok(2), event: { _id: { _data: tok(2) }, operationType: 'update', clusterTime: ts(1002), ns: { db: 'shop', coll: 'orders' }, documentKey: { _id: 1 } } });
    assert.deepEqual(heard, [{ inserted: [], updated: [], deleted: ['1'], reset: false }]);
    assert.deepEqual([...coll.keys()], ['2']);
});

test('a stream is active from subscribed until the transport loses it', () => {
    const heard = [];
    const stream = new Stream({ ns: 'shop.orders' }, { subscribed: () => heard.push('subscribed') });
    assert.equal(stream.active, false);
    stream.feed({ type: 'subscribed', id: stream.id });
    assert.equal(stream.active, true);
    stream.interrupted();
    assert.equal(stream.active, false);
    assert.deepEqual(heard, ['subscribed']);
});
