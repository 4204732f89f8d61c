// SPDX-License-Identifier: Apache-2.0
// SSE clients that leave are noticed at once and cost nothing afterwards:
// libwebsockets 4.1 stops reading an event-stream connection, so without a
// watcher a closed client makes the poll loop spin (design.md, pitfalls).
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { startPush, openSse, sseUrl, waitUntil, metrics, metricSum } = require('./push-support');

// CPU clock ticks (user + system) the process has used so far.
function cpuTicks(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

test('an idle SSE client that disconnects is dropped as client_gone and leaves changecast idle', async () => {
  const stack = await startPush({ flags: ['--push.heartbeat_ms', '60000'] });
  try {
    const clients = [];
    for (let i = 0; i < 5; i++) clients.push(await openSse(sseUrl(stack.pushUrl, { ns: ['it.orders'] })));
    await waitUntil(async () => metricSum((await metrics(stack.pushUrl)).samples, /subscribers/, { transport: 'sse' }) === 5, 'five SSE subscribers');
    for (const client of clients) client.close();
    // Noticed without any write to them (the heartbeat is a minute away).
    await waitUntil(() => (stack.changecast.output.match(/event=dropped reason=client_gone/g) || []).length === 5, 'five client_gone drops');
    const pid = stack.changecast.proc.pid;
    const before = cpuTicks(pid);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const used = cpuTicks(pid) - before;
    // A spinning loop burns ~200 ticks in 2 s; an idle one next to nothing.
    assert.ok(used < 50, `changecast used ${used} clock ticks in 2 s with no subscribers`);
    assert.equal(metricSum((await metrics(stack.pushUrl)).samples, /subscribers/, { transport: 'sse' }), 0);
  } finally {
    await stack.stop();
  }
});
