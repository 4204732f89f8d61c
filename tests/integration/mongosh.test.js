// SPDX-License-Identifier: Apache-2.0
// mongosh, as a person would use it, pointed at changecast.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');
const { promisify } = require('node:util');
const { ROOT, useChangecast } = require('./support');

const fixture = useChangecast();

test('mongosh inserts and queries through changecast', async () => {
  const script = `
    db.people.insertMany([{name: "ada", born: 1815}, {name: "grace", born: 1906}, {name: "alan", born: 1912}]);
    const found = db.people.find({born: {$gt: 1900}}, {_id: 0}).sort({born: 1}).toArray();
    print(JSON.stringify(found));
    print(JSON.stringify(db.hello().msg));
  `;
  const { stdout } = await promisify(execFile)(
    path.join(ROOT, 'node_modules/.bin/mongosh'),
    [`${fixture.changecast.uri}it_mongosh`, '--quiet', '--norc', '--eval', script],
    { timeout: 60000, env: { ...process.env, MONGOSH_NO_UPDATE_CHECK: '1', DO_NOT_TRACK: '1' } },
  );
  const lines = stdout.trim().split('\n');
  assert.deepEqual(JSON.parse(lines[0]), [{ name: 'grace', born: 1906 }, { name: 'alan', born: 1912 }]);
  assert.equal(JSON.parse(lines[1]), 'isdbgrid');
});
