// SPDX-License-Identifier: Apache-2.0
// The push port serves the browser client at /v1/client.js, the exposed
// namespaces at /v1/namespaces, and the demo page at / only with
// push.demo = on: all embedded in the binary at build time.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startPush, EXPOSE } = require('./push-support');

const root = path.join(__dirname, '..', '..');

async function get(url) {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
}

test('the client library and the namespaces are always served; the demo page only with push.demo = on', async () => {
  const plain = await startPush();
  try {
    const client = await get(`${plain.pushUrl}/v1/client.js`);
    assert.equal(client.status, 200);
    assert.equal(client.type, 'text/javascript; charset=utf-8');
    assert.ok(client.body.equals(fs.readFileSync(path.join(root, 'clients/js/changecast.js'))), 'the file as in the repository');
    const namespaces = await get(`${plain.pushUrl}/v1/namespaces`);
    assert.deepEqual(JSON.parse(namespaces.body).namespaces, EXPOSE.split(','));
    assert.equal((await get(`${plain.pushUrl}/`)).status, 404);
    assert.equal((await get(`${plain.pushUrl}/app.js`)).status, 404);
  } finally {
    await plain.stop();
  }
  const demo = await startPush({ flags: ['--push.demo', 'on'] });
  try {
    for (const [url, file, type] of [
      ['/', 'share/demo/index.html', 'text/html; charset=utf-8'],
      ['/app.js', 'share/demo/app.js', 'text/javascript; charset=utf-8'],
      ['/style.css', 'share/demo/style.css', 'text/css; charset=utf-8'],
    ]) {
      const page = await get(`${demo.pushUrl}${url}`);
      assert.equal(page.status, 200, url);
      assert.equal(page.type, type);
      assert.ok(page.body.equals(fs.readFileSync(path.join(root, file))), url);
    }
  } finally {
    await demo.stop();
  }
});
