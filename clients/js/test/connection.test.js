// SPDX-License-Identifier: Apache-2.0
// Connection behaviour that needs no server: reconnect delays (exponential
// backoff with full jitter, capped) against a port where nothing listens,
// over both transports, and tokens fetched through getToken again only when
// close to their `exp`. What needs a server is in
// tests/integration/client-lib.test.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createRequire } from 'node:module';
import { connect, backoffDelay, jwtExpiry } from '../changecast.js';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');
const { EventSource } = require('eventsource');

// A loopback port nobody listens on (bound, then released).
function closedPort() {
    return new Promise((resolve) => {
        const server = net.createServer();
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

function retries(conn, count) {
    return new Promise((resolve) => {
        const seen = [];
        const off = conn.on('retry', (d) => {
            seen.push(d);
            if (seen.length === count) {
                off();
                resolve(seen);
            }
        });
    });
}

const jwt = (claims) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

test('backoffDelay: full jitter below min(cap, base * 2^attempt)', () => {
    const bounds = { baseMs: 100, capMs: 5000 };
    for (let attempt = 0; attempt < 12; attempt++) {
        const ceiling = Math.min(5000, 100 * 2 ** attempt);
        assert.equal(backoffDelay(attempt, bounds, () => 0), 0, 'the lowest draw waits 0');
        assert.equal(backoffDelay(attempt, bounds, () => 0.999999), Math.floor(0.999999 * ceiling));
        for (let k = 0; k < 50; k++) {
            const d = backoffDelay(attempt, bounds);
            assert.ok(d >= 0 && d < ceiling, `attempt ${attempt}: ${d} in [0, ${ceiling})`);
        }
    }
    assert.equal(backoffDelay(1000, bounds, () => 0.5), 2500, 'huge attempt counts stay at the cap');
});

for (const transport of ['ws', 'sse']) {
    test(`${transport}: reconnect attempts to a refused port back off exponentially with jitter, capped`, async () => {
        const port = await closedPort();
        const conn = connect(`http://127.0.0.1:${port}`, { transport, WebSocket, EventSource, backoff: { baseMs: 10, capMs: 80 }, random: () => 0.999999 });
        try {
            conn.subscribe({ ns: 'shop.orders' }, () => {});
            const seen = await retries(conn, 7);
            assert.deepEqual(seen.map((d) => d.attempt), [1, 2, 3, 4, 5, 6, 7]);
            assert.deepEqual(seen.map((d) => d.delayMs), [9, 19, 39, 79, 79, 79, 79], 'doubling from the base up to the cap');
            assert.equal(conn.state, 'connecting', 'never open, so still connecting');
        } finally {
            conn.close();
        }
        assert.equal(conn.state, 'closed');
    });
}

test('random draws spread the delays over [0, ceiling)', async () => {
    const port = await closedPort();
    const conn = connect(`http://127.0.0.1:${port}`, { transport: 'ws', WebSocket, backoff: { baseMs: 40, capMs: 40 } });
    try {
        const seen = await retries(conn, 12);
        for (const d of seen) assert.ok(d.delayMs >= 0 && d.delayMs < 40, String(d.delayMs));
        assert.ok(new Set(seen.map((d) => d.delayMs)).size > 1, 'not one fixed delay');
    } finally {
        conn.close();
    }
});

test('getToken is called again before a reconnect only when the token is near its exp', async () => {
    assert.equal(jwtExpiry(jwt({ exp: 1700000000 })), 1700000000 * 1000);
    assert.equal(jwtExpiry('not a jwt'), null);
    const port = await closedPort();
    for (const [lifetimeS, expectCalls] of [[3600, 1], [10, 6]]) {
        let calls = 0;
        const getToken = async () => {
            calls += 1;
            return jwt({ sub: 'u', exp: Math.floor(Date.now() / 1000) + lifetimeS });
        };
        const conn = connect(`http://127.0.0.1:${port}`, { transport: 'ws', WebSocket, getToken, refreshMarginMs: 30000, backoff: { baseMs: 5, capMs: 5 } });
        try {
            await retries(conn, 6);
            assert.equal(calls, expectCalls, `a token valid for ${lifetimeS} s`);
        } finally {
            conn.close();
        }
    }
});

test('connect refuses a transport it has no constructor for', () => {
    assert.throws(() => connect('http://127.0.0.1:1', { transport: 'sse' }), /EventSource/);
});
