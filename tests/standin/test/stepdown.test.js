// SPDX-License-Identifier: Apache-2.0
// replSetStepDown: the one member becomes SECONDARY for a while, as a real
// replica set's primary does during an election, then PRIMARY again.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { MongoClient } = require('mongodb');
const { startStandin } = require('../../lib/harness');
const { RawClient } = require('../../lib/rawwire');

test('replSetStepDown without force is refused: no electable secondary', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const r = (await c.command({ replSetStepDown: 5, $db: 'admin' })).doc;
  assert.equal(r.ok, 0);
  assert.equal(r.code, 262);
  assert.equal(r.codeName, 'ExceededTimeLimit');
});

test('a forced stepdown makes the member a secondary, then primary again in a new term', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const before = (await c.command({ hello: 1, $db: 'admin' })).doc;
  assert.equal(before.isWritablePrimary, true);
  // An awaiting hello is answered as soon as the state changes.
  const awaiting = RawClient.connect(s.port).then(async (w) => {
    const r = (await w.command({ hello: 1, topologyVersion: before.topologyVersion, maxAwaitTimeMS: 10000, $db: 'admin' })).doc;
    w.close();
    return r;
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const down = (await c.command({ replSetStepDown: 1, force: true, $db: 'admin' })).doc;
  assert.equal(down.ok, 1);
  const woken = await awaiting;
  assert.equal(woken.isWritablePrimary, false);
  assert.equal(woken.secondary, true);
  assert.equal(woken.primary, undefined);
  assert.equal(woken.electionId, undefined);
  assert.ok(woken.topologyVersion.counter > before.topologyVersion.counter);

  const write = (await c.command({ insert: 'c', documents: [{ _id: 1 }], $db: 'd' })).doc;
  assert.equal(write.code, 10107);
  assert.equal(write.codeName, 'NotWritablePrimary');
  const read = (await c.command({ find: 'c', $db: 'd' })).doc;
  assert.equal(read.code, 13435);
  const secondaryRead = (await c.command({ find: 'c', $db: 'd', $readPreference: { mode: 'secondaryPreferred' } })).doc;
  assert.equal(secondaryRead.ok, 1);

  let after;
  for (let i = 0; i < 50; i++) {
    after = (await c.command({ hello: 1, $db: 'admin' })).doc;
    if (after.isWritablePrimary) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(after.isWritablePrimary, true);
  assert.notEqual(after.electionId.toHexString(), before.electionId.toHexString());
  assert.equal((await c.command({ insert: 'c', documents: [{ _id: 1 }], $db: 'd' })).doc.ok, 1);
});

test('the Node driver follows the stepdown and writes again after the election', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const client = new MongoClient(s.uri, { serverSelectionTimeoutMS: 10000 });
  t.after(() => client.close());
  await client.db('d').collection('c').insertOne({ _id: 'before' });
  await client.db('admin').command({ replSetStepDown: 1, force: true });
  await client.db('d').collection('c').insertOne({ _id: 'after' });
  assert.equal(await client.db('d').collection('c').countDocuments(), 2);
});
