// SPDX-License-Identifier: Apache-2.0
// Several instances, as operators run them (docs/deploy.md, "Several
// instances"): each names itself in MongoDB (appName) and in its log; a
// client resuming on an instance whose capture is behind its token is told
// so; /healthz can fail an instance whose capture lags; a deployment slow to
// answer at start-up is not reported as having no primary before
// wire.primary_wait_ms.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startStandin, tempDir } = require('./support');
const push = require('./push-support');

const { startPush, openSse, sseUrl, httpGet, waitUntil, writeSeq } = push;

test('an instance names itself in the appName of its connections to MongoDB and in every log line', async () => {
  const logFile = path.join(tempDir('cc-connlog'), 'connections.log');
  const standin = await startStandin(['--log-connections', logFile]);
  const s = await startPush({ standin, flags: ['--auth.mode', 'none', '--instance.name', 'eu-1'] });
  try {
    await waitUntil(() => {
      const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
      return ['capture', 'monitor'].every((role) => log.includes(`appName="changecast-${role}@eu-1"`));
    }, 'the capture and monitor connections named changecast-<role>@eu-1 in the stand-in');
    const lines = s.changecast.output.split('\n').filter((l) => l.startsWith('ts='));
    assert.ok(lines.length > 3);
    for (const line of lines) assert.match(line, /^ts=\S+ level=\w+ instance=eu-1 /);
  } finally {
    await s.stop();
    await standin.stop();
  }
});

test('a client resuming on an instance whose capture is behind its token is told so, then gets exactly the events after its token', async () => {
  const standin = await startStandin();
  const ahead = await startPush({ standin, flags: ['--auth.mode', 'none', '--instance.name', 'ahead'] });
  const behind = await startPush({ standin, flags: ['--auth.mode', 'none', '--instance.name', 'behind'] });
  try {
    const orders = ahead.client.db('it').collection('orders');
    const first = await openSse(sseUrl(ahead.pushUrl, { ns: 'it.orders' }));
    // Hold the second instance's capture back while three events happen.
    await behind.client.db('admin').command({
      configureFailPoint: 'failCommand',
      mode: { times: 1 },
      data: { failCommands: ['getMore'], appName: 'changecast-capture@behind', blockConnection: true, blockTimeMS: 4000 },
    });
    await writeSeq(orders, 1, 3);
    await waitUntil(() => first.events.filter((e) => e.type === 'change').length === 3, 'three events on the first instance');
    const token = first.events.filter((e) => e.type === 'change')[2].id;
    first.close();

    const moved = await openSse(sseUrl(behind.pushUrl, { ns: 'it.orders', lastEventId: token }));
    await waitUntil(() => moved.events.some((e) => e.type === 'capture_behind'), () => `a capture_behind notice (got ${JSON.stringify(moved.events)})`);
    const notice = moved.events.find((e) => e.type === 'capture_behind').json;
    assert.equal(typeof notice.message, 'string');
    assert.equal(typeof notice.lag_ms, 'number');
    await writeSeq(orders, 4, 5);
    await waitUntil(() => moved.events.filter((e) => e.type === 'change').length >= 2, () => `the events after the token (got ${JSON.stringify(moved.events.map((e) => e.type))})`, 20000);
    assert.deepEqual(
      moved.events.filter((e) => e.type === 'change').map((e) => e.json.fullDocument.seq),
      [4, 5],
      'nothing at or before the token again, nothing after it missing',
    );
    moved.close();
  } finally {
    push.closeAll();
    await behind.stop();
    await ahead.stop();
    await standin.stop();
  }
});

test('/healthz answers 503 lagging while capture is further behind than push.healthz_max_lag_ms, 200 again once it caught up', async () => {
  const s = await startPush({ flags: ['--auth.mode', 'none', '--push.healthz_max_lag_ms', '1500'] });
  try {
    const healthy = await httpGet(`${s.pushUrl}/healthz`);
    assert.equal(healthy.status, 200, healthy.body);
    assert.equal(healthy.json.status, 'ok');
    assert.equal(healthy.json.max_lag_ms, 1500);
    await s.client.db('admin').command({
      configureFailPoint: 'failCommand',
      mode: { times: 1 },
      data: { failCommands: ['getMore'], appName: 'changecast-capture@it', blockConnection: true, blockTimeMS: 5000 },
    });
    const lagging = await waitUntil(async () => {
      const r = await httpGet(`${s.pushUrl}/healthz`);
      return r.status === 503 ? r : null;
    }, '/healthz 503 while capture is held back');
    assert.equal(lagging.json.status, 'lagging');
    assert.ok(lagging.json.lag_ms > 1500, lagging.body);
    await waitUntil(async () => (await httpGet(`${s.pushUrl}/healthz`)).status === 200, '/healthz 200 once capture caught up', 20000);
  } finally {
    await s.stop();
  }
});

test('a deployment slow to answer its first handshake is not reported as having no primary before wire.primary_wait_ms', async () => {
  const standin = await startStandin();
  const { MongoClient } = require('mongodb');
  const admin = new MongoClient(standin.uri, { directConnection: true });
  try {
    await admin.connect();
    await admin.db('admin').command({
      configureFailPoint: 'failCommand',
      mode: { times: 5 },
      // Every handshake, changecast's monitor's first among them (a fail
      // point's appName is only known once a handshake has set it).
      data: { failCommands: ['hello', 'isMaster'], blockConnection: true, blockTimeMS: 3000 },
    });
    const s = await startPush({ standin, flags: ['--auth.mode', 'none', '--wire.primary_wait_ms', '8000'] });
    try {
      assert.doesNotMatch(s.changecast.output, /event=no_primary/);
      assert.match(s.changecast.output, /event=primary_known/);
    } finally {
      await s.stop();
    }
  } finally {
    await admin.close();
    await standin.stop();
  }
});
