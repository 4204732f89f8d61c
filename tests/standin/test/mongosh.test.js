// SPDX-License-Identifier: Apache-2.0
// mongosh 2.x connects (with its start-up commands) and runs CRUD.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawn } = require('child_process');
const { startStandin } = require('../../lib/harness');

const MONGOSH = path.join(__dirname, '..', '..', '..', 'node_modules', '.bin', 'mongosh');

function run(args) {
  return new Promise((resolve) => {
    const p = spawn(MONGOSH, args, { env: { ...process.env, MONGOSH_NO_UPDATE_CHECK: '1' } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

test('mongosh connects to the replica set and runs CRUD', async (t) => {
  const s = await startStandin();
  t.after(() => s.stop());
  const script = 'db.c.insertOne({a:1}); db.c.updateOne({a:1},{$set:{b:2}}); print(JSON.stringify(db.c.find({},{_id:0}).toArray())); print(db.hello().setName); print(db.version())';
  const r = await run([`${s.uri}`, '--quiet', '--norc', '--eval', script]);
  assert.equal(r.code, 0, r.err + r.out);
  const lines = r.out.trim().split('\n');
  assert.deepEqual(lines, ['[{"a":1,"b":2}]', 'rs0', '7.0.14']);
});
