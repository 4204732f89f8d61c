// SPDX-License-Identifier: Apache-2.0
// The demo page in a real browser: Debian's chromium, headless, driven by
// npm playwright-core. The page is served by changecast's push port (`/`,
// with /v1/client.js); documents are written through changecast's wire port
// with the Node driver and by the demo writer's form. Then the capture
// stream's upstream connection is cut (failCommand) and changecast itself is
// restarted on the same port: the page must say it is reconnecting, then
// show the change made meanwhile and the next one, with no duplicate row.
// A screenshot is left in build/artifacts/demo.png (CHANGECAST_ARTIFACTS
// overrides the folder).
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { MongoClient } = require('mongodb');
const { chromium } = require('playwright-core');
const harness = require('../lib/harness');
const { ROOT, startStandin, tempDir } = require('../integration/support');
const { startPush, httpGet, metrics, metricSum, WAIT_MS } = require('../integration/push-support');

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const ARTIFACTS = process.env.CHANGECAST_ARTIFACTS || path.join(ROOT, 'build', 'artifacts');
const DEMO_FLAGS = ['--push.demo', 'on', '--auth.mode', 'none'];
const NS = 'shop.orders';

const row = (id) => `#docs tbody tr[data-key='${JSON.stringify(id)}']`;
const cell = (id, field) => `${row(id)} td[data-field="${field}"]`;

// Resolves once the cell of document `id` reads `text`; how long that took.
async function cellShows(page, id, field, text) {
  const started = Date.now();
  await page.waitForFunction(
    ([sel, want]) => document.querySelector(sel)?.textContent === want,
    [cell(id, field), text],
    { timeout: WAIT_MS },
  ).catch(async (err) => {
    const seen = await page.evaluate((sel) => document.querySelector(sel)?.textContent, cell(id, field));
    throw new Error(`the page never showed ${field}=${text} for ${JSON.stringify(id)} (it shows ${JSON.stringify(seen)}): ${err.message}`);
  });
  return Date.now() - started;
}

async function startWriter(wireUri, origin) {
  return harness.startProcess(process.execPath, [path.join(ROOT, 'scripts/demo-writer.js'), wireUri, '--http-port', '0', '--origin', origin, '--interval-ms', '0', '--ns', NS], {
    readyPattern: /writer ready http=127\.0\.0\.1:(\d+)/,
  });
}

test('the demo page shows live rows, highlights changes, waits for its own writes, and survives a cut capture stream and a changecast restart without duplicates', async (t) => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: scripts/setup installs Debian's chromium`);
  const standin = await startStandin();
  const tokenFile = path.join(tempDir('cc-demo-token'), 'token');
  const pushPort = await harness.freePort();
  const flags = [...DEMO_FLAGS, '--push.listen', `127.0.0.1:${pushPort}`, '--push.watermark_ms', '200'];
  let s;
  let writer;
  let browser;
  const direct = new MongoClient(standin.uri, { serverSelectionTimeoutMS: 15000 });
  try {
    s = await startPush({ standin, tokenFile, flags });
    assert.equal(s.changecast.pushPort, pushPort, 'changecast listens on the port the page is loaded from');
    const index = await httpGet(`${s.pushUrl}/`);
    assert.equal(index.status, 200, `the push port serves the demo page at / with push.demo on (got ${index.status} ${index.body.slice(0, 200)})`);
    const client = await httpGet(`${s.pushUrl}/v1/client.js`);
    assert.equal(client.status, 200, 'the push port serves the client library at /v1/client.js');
    assert.equal(client.body, fs.readFileSync(path.join(ROOT, 'clients/js/changecast.js'), 'utf8'), '/v1/client.js is clients/js/changecast.js');

    writer = await startWriter(s.changecast.uri, s.pushUrl);
    const writerUrl = `http://127.0.0.1:${writer.match[1]}`;
    // A shop with an order already in it (the snapshot shows it).
    const orders = s.client.db('shop').collection('orders');
    await orders.insertOne({ _id: 'o0', status: 'delivered', total: 5, writtenAt: Date.now() });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
    const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
    const problems = [];
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    await page.goto(`${s.pushUrl}/?ns=${NS}&writer=${encodeURIComponent(writerUrl)}`);
    await page.waitForSelector('#connection[data-state="open"]', { timeout: WAIT_MS });
    await page.waitForSelector('#store-status[data-status="live"]', { timeout: WAIT_MS });

    assert.equal(await page.textContent(cell('o0', 'status')), 'delivered', 'the snapshot is on the page');

    // A row appears, then changes.
    await orders.insertOne({ _id: 'o1', status: 'new', total: 10, writtenAt: Date.now() });
    const appeared = await cellShows(page, 'o1', 'status', 'new');
    await orders.updateOne({ _id: 'o1' }, { $set: { status: 'paid', writtenAt: Date.now() }, $inc: { revision: 1 } });
    const changed = await cellShows(page, 'o1', 'status', 'paid');
    t.diagnostic(`insert on screen after ${appeared} ms, update after ${changed} ms (browser-side waits)`);
    assert.match(await page.textContent('#latency-last'), /^\d+ ms$/, 'the latency readout shows write-to-screen time from writtenAt');

    // A delete is highlighted, then the row goes.
    await orders.insertOne({ _id: 'o2', status: 'new', writtenAt: Date.now() });
    await cellShows(page, 'o2', 'status', 'new');
    await orders.deleteOne({ _id: 'o2' });
    await page.waitForSelector(`${row('o2')}[data-deleted="true"].flash-delete`, { timeout: WAIT_MS });
    await page.waitForSelector(row('o2'), { state: 'detached', timeout: WAIT_MS });

    // The form writes through the demo writer; waitFor says when it is on screen.
    await page.fill('#write-form [name=_id]', 'form-1');
    await page.selectOption('#write-form [name=status]', 'shipped');
    await page.fill('#write-form [name=note]', 'from the browser');
    await page.click('#write-form button[type=submit]');
    await page.waitForSelector('#write-result.ok', { timeout: WAIT_MS });
    assert.match(await page.textContent('#write-result'), /"form-1" on screen \d+ ms after the click/);
    assert.equal(await page.textContent(cell('form-1', 'note')), 'from the browser', 'the row is there when waitFor resolved');

    // The capture stream's upstream connection is cut: capture resumes by
    // itself and the page goes on.
    const { ok } = await s.client.db('admin').command({ configureFailPoint: 'failCommand', mode: { times: 1 }, data: { failCommands: ['getMore'], appName: 'changecast-capture@it', closeConnection: true } });
    assert.equal(ok, 1);
    await orders.updateOne({ _id: 'o1' }, { $set: { status: 'packed', writtenAt: Date.now() }, $inc: { revision: 1 } });
    await cellShows(page, 'o1', 'status', 'packed');

    // changecast restarts on the same port: the page reconnects, resumes from
    // its token (the change made while it was down arrives), then the next.
    await s.client.close();
    await s.changecast.stop();
    await page.waitForSelector('#connection[data-state="reconnecting"]', { timeout: WAIT_MS });
    await direct.connect();
    await direct.db('shop').collection('orders').updateOne({ _id: 'o1' }, { $set: { status: 'shipped', writtenAt: Date.now() }, $inc: { revision: 1 } });
    s = await startPush({ standin, tokenFile, flags });
    await page.waitForSelector('#connection[data-state="open"]', { timeout: WAIT_MS });
    await cellShows(page, 'o1', 'status', 'shipped');
    const again = s.client.db('shop').collection('orders');
    await again.updateOne({ _id: 'o1' }, { $set: { status: 'delivered', writtenAt: Date.now() }, $inc: { revision: 1 } });
    await cellShows(page, 'o1', 'status', 'delivered');
    await again.insertOne({ _id: 'o3', status: 'new', writtenAt: Date.now() });
    await cellShows(page, 'o3', 'status', 'new');

    // No duplicate rows: one per document, exactly the collection's.
    const keys = await page.$$eval('#docs tbody tr:not([data-deleted])', (trs) => trs.map((tr) => tr.dataset.key));
    const ids = (await again.find({}, { projection: { _id: 1 } }).toArray()).map((d) => JSON.stringify(d._id));
    assert.equal(new Set(keys).size, keys.length, `no key twice: ${keys}`);
    assert.deepEqual([...keys].sort(), [...ids].sort());
    assert.equal(await page.textContent('#count'), `${ids.length} documents`);
    assert.deepEqual(problems, []);

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const shot = path.join(ARTIFACTS, 'demo.png');
    await page.screenshot({ path: shot });
    t.diagnostic(`screenshot: ${shot}`);
  } finally {
    await browser?.close().catch(() => {});
    await writer?.stop().catch(() => {});
    await direct.close().catch(() => {});
    if (s) await s.stop().catch(() => {});
    await standin.stop();
  }
});

// Chromium offers permessage-deflate and accepts gzip by itself: over each
// transport the page's connection is compressed (counted by changecast) and
// its rows converge to the collection, large documents included.
test('the demo page with compression negotiated, over WebSocket and over SSE: the rows converge', async () => {
  const standin = await startStandin();
  const pushPort = await harness.freePort();
  let s;
  let browser;
  try {
    s = await startPush({ standin, flags: [...DEMO_FLAGS, '--push.listen', `127.0.0.1:${pushPort}`] });
    const orders = s.client.db('shop').collection('orders');
    const lines = Array.from({ length: 20 }, (_, k) => ({ sku: `SKU-${k}`, qty: k + 1 }));
    await orders.insertOne({ _id: 'big0', status: 'new', total: 1, lines, writtenAt: Date.now() });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
    for (const transport of ['ws', 'sse']) {
      const page = await browser.newPage();
      await page.goto(`${s.pushUrl}/?ns=${NS}&transport=${transport}`);
      await page.waitForSelector('#store-status[data-status="live"]', { timeout: WAIT_MS });
      assert.equal(await page.textContent(cell('big0', 'status')), (await orders.findOne({ _id: 'big0' })).status, 'the snapshot');
      for (let i = 1; i <= 3; i++) {
        await orders.insertOne({ _id: `${transport}${i}`, status: 'new', total: i, lines, writtenAt: Date.now() });
        await orders.updateOne({ _id: 'big0' }, { $set: { status: `${transport}-${i}` } });
      }
      await cellShows(page, 'big0', 'status', `${transport}-3`);
      await cellShows(page, `${transport}3`, 'status', 'new');
      const keys = await page.$$eval('#docs tbody tr', (rows) => rows.map((r) => JSON.parse(r.dataset.key)));
      const ids = (await orders.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id);
      assert.deepEqual([...keys].sort(), [...ids].sort(), `${transport}: the rows are the collection's`);
      const { samples } = await metrics(s.pushUrl);
      assert.equal(metricSum(samples, /^changecast_compressed_connections_total$/, { transport }), 1, `${transport}: Chromium's connection was compressed`);
      await page.close();
    }
  } finally {
    await browser?.close().catch(() => {});
    if (s) await s.stop().catch(() => {});
    await standin.stop();
  }
});
