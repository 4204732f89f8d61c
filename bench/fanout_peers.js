#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// The Node peers of the fan-out benchmark (bench/fanout.sh), written the way
// such servers are usually written, one process each:
//   --mode ws     `ws` WebSocketServer on /sub; POST /pub sends the body to
//                 every open client
//   --mode sse    GET /sub is an event stream; POST /pub writes the body as
//                 one event to every open response
//   --mode watch  GET /sub is an event stream; the server opens one driver
//                 watch() change stream on --mongo URI (db bench, collection
//                 events) and writes each change (relaxed Extended JSON, its
//                 resume token as the id) to every open response
// Like changecast, each keeps at most --max-buffered bytes (1 MiB) waiting
// for one client and drops a client past that, so a slow reader costs
// memory bounded the same way.
//   node bench/fanout_peers.js --mode ws|sse|watch --port 0 [--mongo URI] [--deflate]
// Prints `peer ready port=N` on stdout when it listens (and, for watch, once
// its change stream is open).
'use strict';
const http = require('node:http');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const mode = arg('mode', 'sse');
const port = Number(arg('port', '0'));
const maxBuffered = Number(arg('max-buffered', String(1 << 20)));

const clients = new Set();
let dropped = 0;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

function sseWrite(text) {
  for (const res of clients) {
    if (res.writableLength > maxBuffered) {
      dropped++;
      clients.delete(res);
      res.destroy();
      continue;
    }
    res.write(text);
  }
}

function sseSubscribe(req, res) {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
  });
  res.write(': ok\n\n');
  clients.add(res);
  req.on('close', () => clients.delete(res));
}

async function main() {
  let wss = null;
  const server = http.createServer(async (req, res) => {
    const path = req.url.split('?')[0];
    if (req.method === 'POST' && path === '/pub' && mode !== 'watch') {
      const body = await readBody(req);
      if (mode === 'ws') {
        const text = body.toString('utf8');
        for (const ws of wss.clients) {
          if (ws.bufferedAmount > maxBuffered) {
            dropped++;
            ws.terminate();
            continue;
          }
          ws.send(text);
        }
      } else {
        sseWrite(`data: ${body.toString('utf8')}\n\n`);
      }
      res.writeHead(200, { 'Content-Length': '2' });
      res.end('ok');
    } else if (req.method === 'GET' && path === '/sub' && mode !== 'ws') {
      sseSubscribe(req, res);
    } else if (req.method === 'GET' && path === '/stats') {
      const body = JSON.stringify({ clients: mode === 'ws' ? wss.clients.size : clients.size, dropped });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    } else {
      res.writeHead(404, { 'Content-Length': '0' });
      res.end();
    }
  });
  server.maxHeadersCount = 100;
  server.keepAliveTimeout = 120000;
  server.requestTimeout = 0;
  server.headersTimeout = 60000;

  if (mode === 'ws') {
    const { WebSocketServer } = require('ws');
    // --deflate: permessage-deflate as ws offers it by default (a zlib
    // stream per connection, context taken over between messages).
    wss = new WebSocketServer({ server, path: '/sub', perMessageDeflate: process.argv.includes('--deflate') });
  } else if (mode === 'watch') {
    const { MongoClient, BSON } = require('mongodb');
    const uri = arg('mongo', null);
    if (!uri) throw new Error('--mode watch needs --mongo URI');
    const client = new MongoClient(uri);
    await client.connect();
    const stream = client.db('bench').collection('events').watch([], { fullDocument: 'updateLookup' });
    stream.on('change', (change) => {
      const token = change._id._data;
      sseWrite(`id: ${token}\nevent: change\ndata: ${BSON.EJSON.stringify(change, { relaxed: true })}\n\n`);
    });
    stream.on('error', (err) => {
      console.error(`peer watch error: ${err.message}`);
      process.exit(1);
    });
    // The stream is open upstream once its first getMore is waiting.
    await new Promise((resolve) => {
      stream.once('resumeTokenChanged', resolve);
      setTimeout(resolve, 1500);
    });
  } else if (mode !== 'sse') {
    throw new Error(`unknown --mode ${mode}`);
  }

  server.listen(port, '127.0.0.1', 4096, () => {
    process.stdout.write(`peer ready port=${server.address().port} mode=${mode}\n`);
  });
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(`peer failed: ${err.stack || err}`);
  process.exit(1);
});
