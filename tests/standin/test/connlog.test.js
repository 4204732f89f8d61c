// SPDX-License-Identifier: Apache-2.0
// --log-connections: one logfmt line per accept, handshake and close, with
// the peer address and the handshake's appName.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { MongoClient } = require('mongodb');
const { startStandin } = require('../../lib/harness');

async function waitFor(fn, ms = 3000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('connection log records peer and appName of each handshake', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'standin-connlog-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'conns.log');
  const s = await startStandin(['--log-connections', file]);
  t.after(() => s.stop());
  const client = await new MongoClient(s.uri, { appName: 'log "me"' }).connect();
  await client.db('x').command({ ping: 1 });
  await client.close();
  const text = await waitFor(() => {
    const t2 = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    return t2.includes('event=close') && t2;
  });
  const lines = text.trim().split('\n');
  for (const line of lines) assert.match(line, /^conn=\d+ event=(accept|handshake|close) peer=127\.0\.0\.1:\d+( appName=".*")?$/);
  const handshakes = lines.filter((l) => l.includes('event=handshake'));
  assert.ok(handshakes.length >= 2, 'monitoring and pooled connections both handshake');
  for (const h of handshakes) assert.ok(h.endsWith(' appName="log \\"me\\""'), h);
  const accepts = lines.filter((l) => l.includes('event=accept'));
  assert.equal(accepts.length, handshakes.length);
  const [, id, port] = accepts[0].match(/^conn=(\d+) event=accept peer=127\.0\.0\.1:(\d+)$/);
  assert.ok(handshakes.some((h) => h.startsWith(`conn=${id} event=handshake peer=127.0.0.1:${port} `)));
});
