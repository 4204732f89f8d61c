// SPDX-License-Identifier: Apache-2.0
// waitFor(operationTime): resolves once every watched stream has a
// watermark, change or snapshot at or past the time; every form an
// application holds the time in is accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stream, Waiters, toTimestamp, compareTimestamps, fromSse } from '../changecast.js';
import { Timestamp } from 'bson';

function setup(n = 1) {
    const streams = [];
    const waiters = new Waiters(() => streams);
    for (let k = 0; k < n; k++) streams.push(new Stream({ ns: 'shop.orders' }, { advanced: () => waiters.check() }));
    return { streams, waiters };
}

const settled = async (promise) => {
    let state = 'pending';
    promise.then(() => (state = 'resolved'), () => (state = 'rejected'));
    await new Promise((resolve) => setImmediate(resolve));
    return state;
};

test('operationTime is accepted as {t,i}, a BSON Timestamp, {$timestamp}, or a bigint', () => {
    assert.deepEqual(toTimestamp({ t: 5, i: 2 }), { t: 5, i: 2 });
    assert.deepEqual(toTimestamp(new Timestamp({ t: 1700000000, i: 3 })), { t: 1700000000, i: 3 });
    assert.deepEqual(toTimestamp({ $timestamp: { t: 7, i: 1 } }), { t: 7, i: 1 });
    assert.deepEqual(toTimestamp((9n << 32n) | 4n), { t: 9, i: 4 });
    assert.throws(() => toTimestamp('soon'), /not a timestamp/);
    assert.ok(compareTimestamps({ t: 1, i: 9 }, { t: 2, i: 0 }) < 0);
    assert.ok(compareTimestamps({ t: 2, i: 1 }, { t: 2, i: 0 }) > 0);
});

test('a watermark before the time leaves waitFor pending; one at or past it resolves it', async () => {
    const { streams, waiters } = setup();
    const p = waiters.waitFor({ $timestamp: { t: 100, i: 5 } });
    streams[0].feed({ type: 'watermark', clusterTime: { $timestamp: { t: 100, i: 4 } }, token: '8201' });
    assert.equal(await settled(p), 'pending');
    streams[0].feed(fromSse('watermark', '{"clusterTime":{"$timestamp":{"t":100,"i":5}},"token":"8202"}', '8202'));
    assert.equal(await settled(p), 'resolved');
    assert.equal(streams[0].token, '8202', 'a watermark moves the resume position too');
});

test('a change with clusterTime past the time resolves it, and a time already reached resolves at once', async () => {
    const { streams, waiters } = setup();
    const p = waiters.waitFor(new Timestamp({ t: 200, i: 1 }));
    streams[0].feed({ type: 'change', token: '8203', event: { _id: { _data: '8203' }, operationType: 'insert', clusterTime: { $timestamp: { t: 201, i: 1 } }, documentKey: { _id: 1 }, fullDocument: { _id: 1 } } });
    assert.equal(await settled(p), 'resolved');
    assert.equal(await settled(waiters.waitFor({ t: 150, i: 0 })), 'resolved');
});

test('a snapshot counts from its atClusterTime', async () => {
    const { streams, waiters } = setup();
    const p = waiters.waitFor({ t: 300, i: 2 });
    streams[0].feed({ type: 'snapshot-begin', atClusterTime: { $timestamp: { t: 300, i: 2 } }, count: 0 });
    assert.equal(await settled(p), 'pending', 'not before the snapshot is complete');
    streams[0].feed({ type: 'snapshot-end', atClusterTime: { $timestamp: { t: 300, i: 2 } }, token: '82ff' });
    assert.equal(await settled(p), 'resolved');
});

test('with several streams every one must have reached the time', async () => {
    const { streams, waiters } = setup(2);
    const p = waiters.waitFor({ t: 10, i: 1 });
    streams[0].feed({ type: 'watermark', clusterTime: { $timestamp: { t: 11, i: 0 } }, token: '8210' });
    assert.equal(await settled(p), 'pending');
    streams[1].feed({ type: 'watermark', clusterTime: { $timestamp: { t: 10, i: 1 } }, token: '8211' });
    assert.equal(await settled(p), 'resolved');
});

test('timeoutMs rejects a waitFor that is never reached; rejectAll rejects the rest', async () => {
    const { waiters } = setup();
    await assert.rejects(waiters.waitFor({ t: 1, i: 1 }, { timeoutMs: 10 }), /timed out/);
    const p = waiters.waitFor({ t: 1, i: 1 });
    waiters.rejectAll(new Error('closed'));
    await assert.rejects(p, /closed/);
});
