#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// The stand-in's own speed, so a benchmark never mistakes it for
// changecast's cost: insert round-trip latency with the official Node
// driver, and sustained inserts per second while one change stream is open
// and delivering. Each case runs ROUNDS times; medians are reported.
//   node bench/standin.js [--rounds 3] [--seconds 4] [--clients 8]
'use strict';
const { MongoClient } = require('mongodb');
const { startStandin } = require('../tests/lib/harness');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const ROUNDS = arg('rounds', 3);
const SECONDS = arg('seconds', 4);
const CLIENTS = arg('clients', 8);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function latencyRound(uri) {
  const client = new MongoClient(uri);
  await client.connect();
  const coll = client.db('bench').collection('latency');
  const samples = [];
  for (let i = 0; i < 2000; i++) {
    const start = process.hrtime.bigint();
    await coll.insertOne({ i });
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  await client.close();
  return median(samples.slice(200)); // after warm-up
}

async function throughputRound(uri) {
  const watcher = new MongoClient(uri);
  await watcher.connect();
  const stream = watcher.db('bench').collection('rate').watch([], { maxAwaitTimeMS: 200 });
  await stream.tryNext();
  let delivered = 0;
  let streaming = true;
  const reader = (async () => {
    while (streaming) {
      if (await stream.tryNext()) delivered++;
    }
  })();
  const writer = new MongoClient(uri, { maxPoolSize: CLIENTS });
  await writer.connect();
  const coll = writer.db('bench').collection('rate');
  let inserted = 0;
  const until = Date.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (Date.now() < until) {
        await coll.insertOne({ at: Date.now() });
        inserted++;
      }
    }),
  );
  const deadline = Date.now() + 10000;
  while (delivered < inserted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  streaming = false;
  await stream.close();
  await reader.catch(() => {});
  await writer.close();
  await watcher.close();
  return { rate: inserted / SECONDS, inserted, delivered };
}

async function main() {
  const latencies = [];
  const rates = [];
  for (let round = 0; round < ROUNDS; round++) {
    const standin = await startStandin();
    try {
      latencies.push(await latencyRound(standin.uri));
      const { rate, inserted, delivered } = await throughputRound(standin.uri);
      if (delivered !== inserted) throw new Error(`the change stream delivered ${delivered} of ${inserted}`);
      rates.push(rate);
    } finally {
      await standin.stop();
    }
  }
  console.log('round\tinsert_p50_ms\tinserts_per_s_with_stream');
  latencies.forEach((l, i) => console.log(`${i + 1}\t${l.toFixed(3)}\t${rates[i].toFixed(0)}`));
  const rate = median(rates);
  console.log(
    `standin insert p50 ${median(latencies).toFixed(3)} ms (target < 1 ms); ` +
      `${rate.toFixed(0)} inserts/s with a change stream open, ${CLIENTS} clients (target 5000)` +
      (rate < 5000 ? ' -- BELOW TARGET: the stand-in (or this one-process Node load) limits benchmarks above this rate' : ''),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
