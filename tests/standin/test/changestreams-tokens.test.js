// SPDX-License-Identifier: Apache-2.0
// Resume tokens: MongoDB's KeyString format, order, decoding, and errors.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Timestamp, ObjectId, UUID } = require('bson');
const { makeEventToken, makeHighWaterMarkToken, decodeToken } = require('../lib/changestreams/token');

const ts = (t, i) => new Timestamp({ t, i });
const ev = (id) => ({ operationType: 'insert', documentKey: { _id: id } });

test('an insert token is byte-identical to one a MongoDB 7 server produced', () => {
  // Token quoted in a public bug report (PeerDB issue #3246), from a real server.
  const real = '82687E82DE000000012B042C0100296E5A1004FEA7A1FFE23C4FD88070BFA43C9C995C463C6F70657261' +
    '74696F6E54797065003C696E736572740046646F63756D656E744B65790046645F69640064687E82DC122A414A3ECD77F8000004';
  const tok = makeEventToken({
    ts: ts(0x687e82de, 1),
    uuid: new UUID('fea7a1ff-e23c-4fd8-8070-bfa43c9c995c'),
    eventIdentifier: ev(new ObjectId('687e82dc122a414a3ecd77f8')),
  });
  assert.deepEqual(tok, { _data: real });
});

test('a high-water-mark token has the short MongoDB form', () => {
  assert.equal(makeHighWaterMarkToken(ts(0x65a8b6d6, 1))._data, '8265A8B6D6000000012B0429296E1404');
});

test('tokens compare as strings in stream order', () => {
  const T = 1700000000;
  const seq = [
    makeHighWaterMarkToken(ts(T, 5)),
    makeEventToken({ ts: ts(T, 5), txnOpIndex: 0, eventIdentifier: ev(99) }),
    makeEventToken({ ts: ts(T, 5), txnOpIndex: 1, eventIdentifier: ev(1) }),
    makeEventToken({ ts: ts(T, 5), txnOpIndex: 127, eventIdentifier: ev(1) }),
    makeEventToken({ ts: ts(T, 5), txnOpIndex: 128, eventIdentifier: ev(1) }),
    makeEventToken({ ts: ts(T, 5), txnOpIndex: 70000, eventIdentifier: ev('a') }),
    makeEventToken({ ts: ts(T, 5), txnOpIndex: 70000, fromInvalidate: true, eventIdentifier: ev('a') }),
    makeHighWaterMarkToken(ts(T, 6)),
    makeEventToken({ ts: ts(T, 6), eventIdentifier: ev(0) }),
    makeEventToken({ ts: ts(T, 0x10000), eventIdentifier: ev(0) }),
    makeEventToken({ ts: ts(T + 1, 1), eventIdentifier: ev(0) }),
  ].map((t) => t._data);
  for (let k = 1; k < seq.length; k++) assert.ok(seq[k - 1] < seq[k], `token ${k - 1} < token ${k}`);
});

test('decoding gives back clusterTime, txnOpIndex, invalidate flag and kind', () => {
  const tok = makeEventToken({ ts: ts(1700000000, 7), txnOpIndex: 300, fromInvalidate: true, eventIdentifier: ev(1) });
  const d = decodeToken({ _data: tok._data.toLowerCase() });
  assert.equal(d.t, 1700000000);
  assert.equal(d.i, 7);
  assert.equal(d.txnOpIndex, 300);
  assert.equal(d.fromInvalidate, true);
  assert.equal(d.isHighWaterMark, false);
  assert.equal(d.hex, tok._data);
  assert.equal(decodeToken(makeHighWaterMarkToken(ts(5, 6))).isHighWaterMark, true);
});

test('malformed tokens fail with the server codes', () => {
  assert.throws(() => decodeToken({ _data: 5 }), { code: 40647 });
  assert.throws(() => decodeToken({}), { code: 40647 });
  assert.throws(() => decodeToken({ _data: 'zz' }), { code: 9, message: 'resume token string was not a valid hex string' });
  assert.throws(() => decodeToken({ _data: '' }), { code: 40649 });
  assert.throws(() => decodeToken({ _data: '8200000001000000012B0A' }), { code: 50795 });
});

test('documentKey values of every common type encode without error', () => {
  for (const id of [0, -5, 2 ** 40, 1.5, -2.25, 'x\u0000y', true, null, new Date(0), [1, 'a'], { a: { b: 1 } },
    new ObjectId(), new UUID()]) {
    const tok = makeEventToken({ ts: ts(1, 1), eventIdentifier: ev(id) });
    assert.match(tok._data, /^[0-9A-F]+04$/);
  }
});
