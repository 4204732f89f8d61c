// SPDX-License-Identifier: Apache-2.0
// fullDocument per subscriber: what capture asks MongoDB for
// (changes.full_document, updateLookup by default), or less ("default":
// update events without the post-image), never more.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startPush, openSse, openWs, sseUrl, waitUntil, httpGet } = require('./push-support');

test('fullDocument=default drops the post-image from updates only; a mode capture lacks is a 400', async () => {
  const stack = await startPush();
  try {
    const lean = await openSse(`${sseUrl(stack.pushUrl, { ns: ['it.orders'] })}&fullDocument=default`);
    const full = await openSse(`${sseUrl(stack.pushUrl, { ns: ['it.orders'] })}&fullDocument=updateLookup`);
    const ws = await openWs(stack.wsUrl);
    assert.equal((await ws.subscribe('lean', 'it.orders', { fullDocument: 'default' })).type, 'subscribed');
    const orders = stack.client.db('it').collection('orders');
    await orders.insertOne({ _id: 1, status: 'new' });
    await orders.updateOne({ _id: 1 }, { $set: { status: 'paid' } });
    await waitUntil(() => lean.changes.length === 2 && full.changes.length === 2 && ws.changes('lean').length === 2, 'two events each');
    const [leanInsert, leanUpdate] = lean.changes.map((e) => e.json);
    assert.deepEqual(leanInsert.fullDocument, { _id: 1, status: 'new' });
    assert.equal(leanUpdate.fullDocument, undefined);
    assert.deepEqual(leanUpdate.updateDescription.updatedFields, { status: 'paid' });
    assert.deepEqual(full.changes[1].json.fullDocument, { _id: 1, status: 'paid' });
    assert.equal(ws.changes('lean')[1].event.fullDocument, undefined);

    const refused = await httpGet(`${sseUrl(stack.pushUrl, { ns: ['it.orders'] })}&fullDocument=required`);
    assert.equal(refused.status, 400);
    assert.match(JSON.parse(refused.body).message, /changes\.full_document/);
    const wsRefused = await ws.subscribe('req', 'it.orders', { fullDocument: 'whenAvailable' });
    assert.equal(wsRefused.type, 'error');
    assert.equal(wsRefused.code, 'bad_request');
    lean.close();
    full.close();
    ws.close();
  } finally {
    await stack.stop();
  }
});
