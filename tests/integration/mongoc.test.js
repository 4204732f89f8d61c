// SPDX-License-Identifier: Apache-2.0
// libmongoc applications (tests/integration/c/mongoc_client.c) directly
// against the stand-in and through changecast.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');
const { promisify } = require('node:util');
const { BIN_DIR, useChangecast } = require('./support');

const CLIENT = path.join(BIN_DIR, 'it_mongoc_client');
const fixture = useChangecast();

async function run(uri, scenario) {
  const { stdout } = await promisify(execFile)(CLIENT, [uri, scenario], { timeout: 60000 });
  return stdout.trim().split('\n');
}

test('libmongoc CRUD through changecast', async () => {
  const lines = await run(fixture.changecast.uri, 'crud');
  assert.deepEqual(lines, [
    'inserted { "insertedCount" : 1 }',
    'updated { "modifiedCount" : 1, "matchedCount" : 1, "upsertedCount" : 0 }',
    'found { "_id" : 1, "name" : "widget", "qty" : 7 }',
    'deleted { "deletedCount" : 1 }',
    'count 0',
  ]);
});

test('libmongoc reads 250 documents in batches of 40 through changecast', async () => {
  assert.deepEqual(await run(fixture.changecast.uri, 'cursor'), ['cursor seen=250 in_order=1']);
});

test('libmongoc sees changecast as a router', async () => {
  const [line] = await run(fixture.changecast.uri, 'hello');
  const reply = JSON.parse(line.replace(/^hello /, ''));
  assert.equal(reply.msg, 'isdbgrid');
  assert.equal(reply.setName, undefined);
});

for (const [target, scenario] of [
  ['the stand-in', 'watch'],
  ['the stand-in', 'client-watch'],
  ['changecast', 'watch'],
  ['changecast', 'client-watch'],
]) {
  test(`libmongoc ${scenario === 'watch' ? 'mongoc_collection_watch' : 'mongoc_client_watch'} against ${target}`, async () => {
    const uri = target === 'changecast' ? fixture.changecast.uri : fixture.standin.uri;
    const lines = await run(uri, scenario);
    const events = lines.filter((l) => l.startsWith('event ')).map((l) => JSON.parse(l.slice(6)));
    assert.equal(events.length, 3);
    assert.deepEqual(events.map((e) => e.operationType), ['insert', 'insert', 'insert']);
    assert.deepEqual(events.map((e) => e.fullDocument.n), [0, 1, 2]);
    assert.deepEqual(events[0].ns, { db: 'it_mongoc', coll: 'watched' });
    assert.match(events[0]._id._data, /^[0-9A-Fa-f]+$/);
    assert.ok(lines.includes('events 3'));
  });
}
