// SPDX-License-Identifier: Apache-2.0
// PyMongo 3.11, whose handshake is legacy OP_QUERY isMaster, through changecast.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');
const { promisify } = require('node:util');
const { useChangecast } = require('./support');

const fixture = useChangecast();

test('PyMongo sees a router and runs CRUD and a multi-batch cursor through changecast', async () => {
  const { stdout } = await promisify(execFile)('/usr/bin/python3', [path.join(__dirname, 'py/pymongo_client.py'), fixture.changecast.uri], { timeout: 60000 });
  const results = Object.assign({}, ...stdout.trim().split('\n').map((line) => JSON.parse(line)));
  assert.equal(results.hello_msg, 'isdbgrid');
  assert.deepEqual(results.hello_leaks, []);
  assert.deepEqual(results.server_types, ['Mongos']);
  assert.deepEqual(results.found, { _id: 1, name: 'widget', qty: 7 });
  assert.equal(results.duplicate, 11000);
  assert.equal(results.deleted, 1);
  assert.equal(results.cursor_in_order, true);
  // As against a real mongos: PyMongo refuses exhaust cursors on a router.
  assert.match(results.exhaust, /[Ee]xhaust cursors are not supported by mongos/);
  // PyMongo 3.11 handshakes with legacy OP_QUERY: changecast rewrote those.
  assert.doesNotMatch(fixture.changecast.output, /frame_rejected/);
});
