// SPDX-License-Identifier: Apache-2.0
// Live queries (docs/live-queries.md): a snapshot that turns into changes
// with no gap and no duplicate, state sync with conflation, documents
// leaving and entering a filter, read-your-writes, whole transactions,
// and the snapshot cap. Against the stand-in, through the wire proxy, with
// the Node driver writing.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startPush, openSse, sseUrl, sleep, waitUntil } = require('./push-support');
const { newView, feedSse, expected, plain, startWriter, watermarkPast } = require('./live-support');

test('a snapshot taken while a writer runs at full speed, then its changes: the view equals a find afterwards, 20 runs, no gap, no duplicate', async () => {
  const stack = await startPush({ flags: ['--push.watermark_ms', '100'] });
  try {
    for (let run = 1; run <= 20; run++) {
      const coll = stack.client.db('shop').collection(`live${run}`);
      const filter = run % 2 ? { status: 'open' } : {};
      const writer = startWriter(coll);
      await sleep(50 + (run % 5) * 20);
      let sink;
      let writes;
      try {
        sink = await openSse(sseUrl(stack.pushUrl, { ns: [`shop.live${run}`], snapshot: true, filter }));
        const before = writer.count();
        await waitUntil(() => writer.count() >= before + 20, 'twenty writes after the snapshot request');
      } finally {
        writes = await writer.stop();
      }
      assert.equal(sink.status, 200, sink.body);
      await watermarkPast(stack.client, sink);
      const view = newView();
      feedSse(sink, view);
      sink.close();
      assert.ok(view.snapshotDone, 'snapshot-end arrived');
      const begin = sink.events.find((e) => e.type === 'snapshot-begin');
      assert.equal(begin.json.count, sink.events.filter((e) => e.type === 'doc').length, 'count matches the documents sent');
      const end = sink.events.find((e) => e.type === 'snapshot-end');
      assert.equal(end.id, end.json.token, 'snapshot-end carries its token as the SSE id');
      assert.ok(writes > 20, `the writer wrote (${writes})`);
      assert.deepEqual(view.problems.filter((p) => !p.startsWith('_id') || filter.status === undefined), [], `run ${run}`);
      assert.deepEqual(plain(view.sorted()), plain(await expected(coll, filter)), `run ${run}: view equals find`);
      for (const c of sink.changes) assert.ok(c.id > end.id, 'every change is after the snapshot');
    }
  } finally {
    await stack.stop();
  }
});
