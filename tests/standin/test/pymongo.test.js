// SPDX-License-Identifier: Apache-2.0
// PyMongo 3.11 (Debian's python3-pymongo, run with /usr/bin/python3): its
// OP_QUERY isMaster handshake, CRUD and a multi-batch cursor.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('child_process');
const { startStandin } = require('../../lib/harness');

const PYTHON = '/usr/bin/python3';
const hasPymongo = spawnSync(PYTHON, ['-c', 'import pymongo'], { timeout: 10000 }).status === 0;

const SCRIPT = `
import json, sys
import pymongo
uri = sys.argv[1]
c = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, appname="pymongo-test")
db = c.py
db.items.insert_many([{"_id": i, "v": i * 2} for i in range(250)])
out = {}
out["version"] = pymongo.version
out["server"] = c.server_info()["version"]
out["count"] = db.items.count_documents({"v": {"$gte": 100}})
out["cursor"] = [d["_id"] for d in db.items.find({}, batch_size=40).sort("_id", -1)][:3]
out["cursor_len"] = len(list(db.items.find({}, batch_size=40)))
db.items.update_one({"_id": 1}, {"$set": {"v": "x"}})
out["updated"] = db.items.find_one({"_id": 1})
out["deleted"] = db.items.delete_many({"v": {"$lt": 10}}).deleted_count
try:
    db.items.insert_one({"_id": 100})
except pymongo.errors.DuplicateKeyError as e:
    out["dup"] = e.code
out["primary"] = list(c.primary)
print(json.dumps(out))
`;

test('PyMongo 3.11 handshakes over OP_QUERY and runs CRUD and a cursor', async (t) => {
  // scripts/setup installs python3-pymongo: missing, it is a failure, not a skip.
  assert.ok(hasPymongo, 'python3-pymongo is not installed (scripts/setup installs it)');
  const s = await startStandin();
  t.after(() => s.stop());
  const r = await new Promise((resolve) => {
    const { spawn } = require('child_process');
    const p = spawn(PYTHON, ['-c', SCRIPT, s.uri]);
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
  assert.equal(r.code, 0, r.err);
  const out = JSON.parse(r.out);
  assert.match(out.version, /^3\./);
  assert.equal(out.server, '7.0.14');
  assert.equal(out.count, 200);
  assert.deepEqual(out.cursor, [249, 248, 247]);
  assert.equal(out.cursor_len, 250);
  assert.deepEqual(out.updated, { _id: 1, v: 'x' });
  assert.equal(out.deleted, 4);
  assert.equal(out.dup, 11000);
  assert.deepEqual(out.primary, ['127.0.0.1', s.port]);
});
