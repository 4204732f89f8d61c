// SPDX-License-Identifier: Apache-2.0
// --auth user:pass: SCRAM-SHA-256 and SCRAM-SHA-1 through the Node driver,
// failures shaped as mongod's, and what runs before authentication.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { MongoClient } = require('mongodb');
const { startStandin } = require('../../lib/harness');
const { RawClient } = require('../../lib/rawwire');

async function setup(t) {
  const s = await startStandin(['--auth', 'alice:s3cret']);
  t.after(() => s.stop());
  return s;
}

function uri(s, user, pass, mech) {
  return `mongodb://${user}:${pass}@127.0.0.1:${s.port}/?replicaSet=rs0&authSource=admin${mech ? `&authMechanism=${mech}` : ''}`;
}

test('SCRAM-SHA-256 and SCRAM-SHA-1 authenticate the --auth user', async (t) => {
  const s = await setup(t);
  for (const mech of [undefined, 'SCRAM-SHA-256', 'SCRAM-SHA-1']) {
    const client = await new MongoClient(uri(s, 'alice', 's3cret', mech), { serverSelectionTimeoutMS: 5000 }).connect();
    try {
      await client.db('d').collection('c').insertOne({ mech: mech || 'default' });
      const status = await client.db('admin').command({ connectionStatus: 1 });
      assert.deepEqual(status.authInfo.authenticatedUsers, [{ user: 'alice', db: 'admin' }]);
    } finally {
      await client.close();
    }
  }
});

test('a wrong password fails with 18 AuthenticationFailed', async (t) => {
  const s = await setup(t);
  const client = new MongoClient(uri(s, 'alice', 'nope'), { serverSelectionTimeoutMS: 3000 });
  await assert.rejects(client.connect(), (e) => {
    assert.equal(e.code, 18);
    assert.equal(e.codeName, 'AuthenticationFailed');
    assert.match(e.message, /Authentication failed/);
    return true;
  });
  await client.close();
});

test('commands before authentication fail with 13 Unauthorized, hello and ping do not', async (t) => {
  const s = await setup(t);
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const hello = (await c.command({ hello: 1, saslSupportedMechs: 'admin.alice', $db: 'admin' })).doc;
  assert.equal(hello.ok, 1);
  assert.deepEqual(hello.saslSupportedMechs, ['SCRAM-SHA-1', 'SCRAM-SHA-256']);
  assert.equal((await c.command({ hello: 1, saslSupportedMechs: 'admin.bob', $db: 'admin' })).doc.saslSupportedMechs, undefined);
  assert.equal((await c.command({ ping: 1, $db: 'admin' })).doc.ok, 1);
  assert.equal((await c.command({ buildInfo: 1, $db: 'admin' })).doc.ok, 1);
  const find = (await c.command({ find: 'c', $db: 'd' })).doc;
  assert.equal(find.ok, 0);
  assert.equal(find.code, 13);
  assert.equal(find.codeName, 'Unauthorized');
  assert.equal(find.errmsg, 'Command find requires authentication');
});

test('speculativeAuthenticate in hello starts the SCRAM conversation', async (t) => {
  const s = await setup(t);
  const c = await RawClient.connect(s.port);
  t.after(() => c.close());
  const { Binary } = require('bson');
  const payload = new Binary(Buffer.from('n,,n=alice,r=abcdefghijklmnop'));
  const hello = (await c.command({ hello: 1, speculativeAuthenticate: { saslStart: 1, mechanism: 'SCRAM-SHA-256', payload, db: 'admin', options: { skipEmptyExchange: true } }, $db: 'admin' })).doc;
  const spec = hello.speculativeAuthenticate;
  assert.equal(spec.conversationId, 1);
  assert.equal(spec.done, false);
  assert.match(Buffer.from(spec.payload.buffer).toString(), /^r=abcdefghijklmnop[^,]+,s=[^,]+,i=15000$/);
});
