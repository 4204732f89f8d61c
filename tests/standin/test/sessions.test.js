// SPDX-License-Identifier: Apache-2.0
// The logical session cache as $listLocalSessions shows it (MongoDB 7.0
// reference), through the official Node driver: every command naming a
// session refreshes it; without authentication its uid is the SHA-256 of
// the empty user name; endSessions removes it.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { standinWithClient } = require('../../lib/harness');

const NO_USER_UID = '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='; // SHA-256 of ""

test('$listLocalSessions lists the sessions commands named, {_id: {id, uid}, lastUse}; endSessions removes one', async (t) => {
  const { client } = await standinWithClient(t);
  const admin = client.db('admin');
  const session = client.startSession();
  await client.db('sess').collection('c').insertOne({ _id: 1 }, { session });
  const id = session.id.id.toString('hex');
  const list = (spec = {}, extra = []) => admin.aggregate([{ $listLocalSessions: spec }, ...extra]).toArray();
  const mine = (rows) => rows.filter((r) => r._id.id.toString('hex') === id);

  const [row] = mine(await list());
  assert.deepEqual(Object.keys(row), ['_id', 'lastUse']);
  assert.deepEqual(Object.keys(row._id), ['id', 'uid']);
  assert.equal(row._id.uid.toString('base64'), NO_USER_UID);
  assert.ok(row.lastUse instanceof Date && Date.now() - row.lastUse < 60000);
  assert.equal(mine(await list({ allUsers: true })).length, 1);
  assert.equal(mine(await list({ users: [{ user: 'someone', db: 'admin' }] })).length, 0);
  assert.equal(mine(await list({}, [{ $match: { '_id.id': session.id.id } }])).length, 1);

  await admin.command({ endSessions: [session.id] });
  assert.equal(mine(await list()).length, 0);
  await session.endSession();

  await assert.rejects(client.db('sess').aggregate([{ $listLocalSessions: {} }]).toArray(), (e) => e.code === 73);
  await assert.rejects(admin.aggregate([{ $match: {} }, { $listLocalSessions: {} }]).toArray(), (e) => e.code === 40602);
  await assert.rejects(admin.aggregate([{ $listLocalSessions: 1 }]).toArray(), (e) => e.code === 14);
});
