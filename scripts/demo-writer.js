// SPDX-License-Identifier: Apache-2.0
// The demo's writer: an ordinary application using the official Node.js
// driver, pointed at changecast's wire port. Every second it changes an
// order (mostly upserts, now and then a delete); every document carries
// `writtenAt` (epoch ms) so the demo page can show write-to-screen latency.
//
// It also serves the demo page's form on a small HTTP endpoint (127.0.0.1
// only): `POST /write` with `{"ns": "shop.orders", "_id": ..., "fields":
// {...}}` writes through the proxy in a driver session and answers
// `{"operationTime": {"t": .., "i": ..}, "_id": .., "ns": .., "writtenAt": ..}`,
// which the page hands to `waitFor`. CORS admits only the push port's origin.
//
//   node scripts/demo-writer.js [mongodb-uri] [--http-port 8081]
//       [--origin http://127.0.0.1:8080]... [--interval-ms 1000] [--ns shop.orders]
//
// Prints `writer ready http=127.0.0.1:<port>` once it listens.
'use strict';
const http = require('node:http');
const { MongoClient } = require('mongodb');

const USAGE = 'usage: demo-writer.js [mongodb-uri] [--http-port N] [--origin URL]... [--interval-ms N] [--ns db.coll]';
const NS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const MAX_BODY = 16 * 1024;

function parseArgs(argv) {
    const opts = { uri: 'mongodb://127.0.0.1:27018/', httpPort: 8081, origins: [], intervalMs: 1000, ns: 'shop.orders' };
    for (let k = 0; k < argv.length; k++) {
        const arg = argv[k];
        const value = () => {
            if (k + 1 >= argv.length) throw new Error(`${arg} needs a value`);
            return argv[++k];
        };
        if (arg === '--http-port') opts.httpPort = Number(value());
        else if (arg === '--origin') opts.origins.push(...value().split(',').map((s) => s.trim()).filter(Boolean));
        else if (arg === '--interval-ms') opts.intervalMs = Number(value());
        else if (arg === '--ns') opts.ns = value();
        else if (!arg.startsWith('--')) opts.uri = arg;
        else throw new Error(`unknown option ${arg}`);
    }
    if (!Number.isInteger(opts.httpPort) || opts.httpPort < 0 || opts.httpPort > 65535) throw new Error('--http-port must be 0..65535');
    if (!Number.isFinite(opts.intervalMs) || opts.intervalMs < 0) throw new Error('--interval-ms must be >= 0 (0: no periodic writes)');
    if (!NS.test(opts.ns)) throw new Error('--ns must be db.coll');
    if (!opts.origins.length) opts.origins = ['http://127.0.0.1:8080', 'http://localhost:8080'];
    return opts;
}

function collectionOf(client, ns) {
    const dot = ns.indexOf('.');
    return client.db(ns.slice(0, dot)).collection(ns.slice(dot + 1));
}

// The periodic writer: ten orders moving through their statuses; every
// 15th tick one of them is deleted (and comes back on its next upsert).
function startTicking(client, { ns, intervalMs }) {
    if (!intervalMs) return () => {};
    const orders = collectionOf(client, ns);
    const statuses = ['new', 'paid', 'packed', 'shipped', 'delivered'];
    let tick = 0;
    let busy = false;
    const timer = setInterval(async () => {
        if (busy) return; // never pile up writes behind a slow upstream
        busy = true;
        tick += 1;
        const id = `order-${(tick % 10) + 1}`;
        try {
            if (tick % 15 === 0) {
                await orders.deleteOne({ _id: id });
                console.log(`deleted ${id}`);
            } else {
                const status = statuses[tick % statuses.length];
                await orders.updateOne(
                    { _id: id },
                    { $set: { status, total: Math.round((10 + ((tick * 37) % 190)) * 100) / 100, writtenAt: Date.now(), updatedAt: new Date() }, $inc: { revision: 1 } },
                    { upsert: true },
                );
                console.log(`wrote ${id} status=${status}`);
            }
        } catch (err) {
            console.error(`write failed: ${err.message}`);
        } finally {
            busy = false;
        }
    }, intervalMs);
    return () => clearInterval(timer);
}

function reply(res, status, body, headers = {}) {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
    res.end(text);
}

function readJson(req) {
    return new Promise((resolve, reject) => {
        let size = 0;
        const chunks = [];
        req.on('data', (chunk) => {
            size += chunk.length;
            if (size > MAX_BODY) {
                reject(Object.assign(new Error(`body larger than ${MAX_BODY} bytes`), { status: 413 }));
                req.destroy();
                return;
            }
            chunks.push(chunk);
        });
        req.on('end', () => {
            try {
                const text = Buffer.concat(chunks).toString('utf8');
                resolve(text ? JSON.parse(text) : {});
            } catch {
                reject(Object.assign(new Error('body is not JSON'), { status: 400 }));
            }
        });
        req.on('error', reject);
    });
}

// One write in a session: the session's operationTime is the cluster time
// of this write, what waitFor needs to know when the page shows it.
async function writeOnce(client, body, defaultNs) {
    const ns = body.ns ?? defaultNs;
    if (typeof ns !== 'string' || !NS.test(ns) || ns.includes('.system.')) throw Object.assign(new Error('ns must be db.coll'), { status: 400 });
    const fields = body.fields ?? {};
    if (typeof fields !== 'object' || Array.isArray(fields) || fields === null) throw Object.assign(new Error('fields must be an object'), { status: 400 });
    for (const key of Object.keys(fields)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || key === '_id') throw Object.assign(new Error(`field name ${JSON.stringify(key)} not allowed`), { status: 400 });
    }
    const id = body._id ?? `web-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
    const writtenAt = Date.now();
    const session = client.startSession();
    try {
        await collectionOf(client, ns).updateOne(
            { _id: id },
            { $set: { ...fields, writtenAt, updatedAt: new Date() }, $inc: { revision: 1 } },
            { upsert: true, session },
        );
        const t = session.operationTime;
        if (!t) throw new Error('the driver session has no operationTime (is the upstream a replica set?)');
        return { operationTime: { t: t.t, i: t.i }, _id: id, ns, writtenAt };
    } finally {
        await session.endSession();
    }
}

function startHttp(client, opts) {
    const allowed = new Set(opts.origins);
    const server = http.createServer(async (req, res) => {
        const origin = req.headers.origin;
        const cors = origin && allowed.has(origin)
            ? { 'Access-Control-Allow-Origin': origin, Vary: 'Origin', 'Access-Control-Allow-Methods': 'POST, OPTIONS', 'Access-Control-Allow-Headers': 'Content-Type', 'Access-Control-Max-Age': '600' }
            : { Vary: 'Origin' };
        if (origin && !allowed.has(origin)) return reply(res, 403, { error: 'origin_not_allowed', message: `origin ${origin} is not ${[...allowed].join(' or ')}` }, cors);
        const path = req.url.split('?')[0];
        if (path !== '/write') return reply(res, 404, { error: 'not_found', message: 'POST /write' }, cors);
        if (req.method === 'OPTIONS') {
            res.writeHead(204, cors);
            return res.end();
        }
        if (req.method !== 'POST') return reply(res, 405, { error: 'method_not_allowed', message: 'POST /write' }, { ...cors, Allow: 'POST, OPTIONS' });
        try {
            const body = await readJson(req);
            const result = await writeOnce(client, body, opts.ns);
            console.log(`http write ${result.ns} ${JSON.stringify(result._id)} t=${result.operationTime.t}.${result.operationTime.i}`);
            reply(res, 200, result, cors);
        } catch (err) {
            reply(res, err.status || 500, { error: err.status ? 'bad_request' : 'write_failed', message: err.message }, cors);
        }
    });
    return new Promise((resolve, reject) => {
        server.on('error', reject);
        server.listen(opts.httpPort, '127.0.0.1', () => resolve(server));
    });
}

async function main() {
    let opts;
    try {
        opts = parseArgs(process.argv.slice(2));
    } catch (err) {
        console.error(`demo-writer: ${err.message}\n${USAGE}`);
        process.exit(2);
    }
    const client = new MongoClient(opts.uri, { appName: 'changecast-demo-writer' });
    await client.connect();
    const stopTicking = startTicking(client, opts);
    const server = await startHttp(client, opts);
    console.log(`writer ready http=127.0.0.1:${server.address().port} ns=${opts.ns}`);
    const stop = async () => {
        setTimeout(() => process.exit(0), 3000).unref(); // even if the upstream never answers
        stopTicking();
        server.close();
        server.closeAllConnections?.();
        await client.close();
        process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
