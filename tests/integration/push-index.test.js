// SPDX-License-Identifier: Apache-2.0
// An event visits only candidate subscriptions: those of its namespace, and
// of those pinned to a documentKey._id, only the ones pinned to its _id.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startPush, openWs, waitUntil, metrics, metricSum } = require('./push-support');

async function checks(pushUrl) {
  return metricSum((await metrics(pushUrl)).samples, /^changecast_subscription_checks_total$/);
}

test('subscriptions pinned to other _ids cost an event nothing; 1, 1.0 and NumberLong(1) meet', async () => {
  const stack = await startPush({ flags: ['--push.max_subscriptions', '500'] });
  try {
    const ws = await openWs(stack.wsUrl);
    for (let i = 0; i < 200; i++) {
      const answer = await ws.subscribe(`pin${i}`, 'it.orders', { filter: { 'documentKey._id': i } });
      assert.equal(answer.type, 'subscribed');
    }
    await ws.subscribe('in', 'it.orders', { filter: { 'documentKey._id': { $in: [500, 501] } } });
    await ws.subscribe('all', 'it.orders');
    const orders = stack.client.db('it').collection('orders');

    let before = await checks(stack.pushUrl);
    await orders.insertOne({ _id: 7, seq: 1 });
    await waitUntil(() => ws.changes('all').length === 1, 'the unpinned subscription got the insert');
    await waitUntil(() => ws.changes('pin7').length === 1, 'pin7 got its insert');
    assert.equal((await checks(stack.pushUrl)) - before, 2, 'only pin7 and the unpinned one were examined');

    before = await checks(stack.pushUrl);
    await orders.insertOne({ _id: 1.0, seq: 2 }); // a double; pinned as int32 1
    await orders.insertOne({ _id: 501, seq: 3 });
    await orders.insertOne({ _id: 'nobody', seq: 4 });
    await waitUntil(() => ws.changes('all').length === 4, 'the unpinned subscription got every insert');
    await waitUntil(() => ws.changes('pin1').length === 1 && ws.changes('in').length === 1, 'pinned ones got theirs');
    assert.equal((await checks(stack.pushUrl)) - before, 5, '2 + 2 + 1 candidates for three events');
    for (let i = 0; i < 200; i++) {
      if (i !== 1 && i !== 7) assert.equal(ws.changes(`pin${i}`).length, 0, `pin${i} saw nothing`);
    }
    ws.close();
  } finally {
    await stack.stop();
  }
});
