// SPDX-License-Identifier: Apache-2.0
// The command line: one ready line on stdout, --port 0, --host, --replset,
// clean exit on SIGTERM and SIGINT, usage errors.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('child_process');
const { startStandin, startProcess, freePort, STANDIN } = require('../../lib/harness');
const { RawClient } = require('../../lib/rawwire');

test('prints exactly one ready line and exits 0 on SIGTERM', async () => {
  const s = await startStandin();
  const c = await RawClient.connect(s.port);
  assert.equal((await c.command({ ping: 1, $db: 'admin' })).doc.ok, 1);
  const code = await s.stop();
  assert.equal(code, 0);
  c.close();
});

test('exits 0 on SIGINT with connections open', async () => {
  const p = await startProcess(process.execPath, [STANDIN, '--port', '0'], { readyPattern: /standin ready port=(\d+) version=7\.0\n/ });
  const c = await RawClient.connect(Number(p.match[1]));
  c.send({ hello: 1, topologyVersion: { processId: (await c.command({ hello: 1, $db: 'admin' })).doc.topologyVersion.processId, counter: 6 }, maxAwaitTimeMS: 10000, $db: 'admin' });
  p.proc.kill('SIGINT');
  assert.equal(await p.exited, 0);
  assert.equal(p.stdout(), `standin ready port=${p.match[1]} version=7.0\n`, 'stdout holds the ready line only');
});

test('--port N, --host and --replset are honoured', async () => {
  const port = await freePort();
  const s = await startStandin(['--port', String(port), '--host', '127.0.0.1', '--replset', 'other']);
  try {
    assert.equal(s.port, port);
    const c = await RawClient.connect(port);
    const hello = (await c.command({ hello: 1, $db: 'admin' })).doc;
    assert.equal(hello.setName, 'other');
    assert.deepEqual(hello.hosts, [`127.0.0.1:${port}`]);
    c.close();
  } finally {
    await s.stop();
  }
});

test('bad arguments exit 2 with a usage message on stderr', () => {
  for (const args of [[], ['--port', 'x'], ['--port', '0', '--version', '6.0'], ['--port', '0', '--bogus']]) {
    const r = spawnSync(process.execPath, [STANDIN, ...args], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2, args.join(' '));
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /usage:/);
  }
});
