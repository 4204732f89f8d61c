// SPDX-License-Identifier: Apache-2.0
// TLS on the push port (docs/security.md, "TLS"): SSE through curl and
// node:https and WebSocket through npm ws, trusting a CA made at test time by
// certs/make-dev-certs.sh; plain HTTP to the TLS port refused; client
// certificates with push.tls_client_ca_file; SIGHUP loading a new
// certificate for new connections.
'use strict';
const { test, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const tls = require('node:tls');
const { spawn } = require('node:child_process');
const push = require('./push-support');
const { makeCerts, tempDir } = require('./support');
const A = require('./auth-support');

// Known bug, with its test below:
// src/push/server.c reload() loads the certificate into the live SSL_CTX
// before it knows the key matches: OpenSSL then drops the old key, the key
// load fails, and every new handshake fails until a good SIGHUP.
const { waitUntil, sseUrl } = push;

const certs = makeCerts();
const file = (name, dir = certs) => path.join(dir, name);
const ca = fs.readFileSync(file('ca.pem'));

const tlsFlags = (dir) => ['--auth.mode', 'none', '--push.tls_cert_file', file('server.pem', dir), '--push.tls_key_file', file('server.key', dir)];
const tlsStack = A.lazyPush({ flags: [...tlsFlags(certs), '--push.heartbeat_ms', '1000'] });
const mutualStack = A.lazyPush({ flags: [...tlsFlags(certs), '--push.tls_client_ca_file', file('ca.pem')] });
// The reload test serves certificates from a directory it rewrites.
const liveDir = tempDir('cc-push-certs');
for (const name of ['server.pem', 'server.key']) fs.copyFileSync(file(name), file(name, liveDir));
const reloadStack = A.lazyPush({ flags: tlsFlags(liveDir) });

after(async () => {
  A.closeAll();
  await Promise.all([tlsStack.stop(), mutualStack.stop(), reloadStack.stop()]);
});
afterEach(() => A.closeAll());

const httpsUrl = (stack) => `https://127.0.0.1:${stack.changecast.pushPort}`;
const wssUrl = (stack) => `wss://127.0.0.1:${stack.changecast.pushPort}/v1/ws`;
const coll = (stack, name) => stack.client.db('shop').collection(name);

// curl -N with extra arguments: {out, done}; out fills with stdout and
// stderr, done resolves on exit. With until(stdout) given, curl is stopped
// once it is true.
function curl(args, { until } = {}) {
  const out = { code: null, signal: null, stdout: '', stderr: '', exited: false };
  const proc = spawn('curl', ['-sS', '-N', '--max-time', '20', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => {
    out.stdout += d;
    if (until && until(out.stdout)) proc.kill('SIGTERM');
  });
  proc.stderr.on('data', (d) => (out.stderr += d));
  const done = new Promise((resolve) =>
    proc.on('exit', (code, signal) => {
      Object.assign(out, { code, signal, exited: true });
      resolve(out);
    }),
  );
  return { out, done };
}

// The serial number of the certificate the push port presents now.
function peerSerial(port) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

// Whether a TLS handshake trusting `caPem` succeeds.
function handshake(port, caPem) {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => {
      socket.destroy();
      resolve({ ok: true });
    });
    socket.on('error', (err) => resolve({ ok: false, error: err }));
  });
}

// Browsers use HTTP/2 over TLS when the server offers it by ALPN. changecast
// offers http/1.1 only; a client asking for h2 must still get a working
// stream (over HTTP/2 lws closed SSE streams after ~5 s and the Host-based
// origin check refused the port's own origin).
for (const version of ['--http1.1', '--http2']) {
  test(`SSE over TLS with curl --cacert (the test CA) and ${version}: TLS 1.2 or later, and a change arrives`, async () => {
    const stack = await tlsStack();
    const id = version === '--http2' ? 2 : 1;
    const url = sseUrl(httpsUrl(stack), { ns: `shop.t1v${id}` });
    // The change's documentKey, from curl's raw output.
    const seen = { test: (o) => o.split('\n').some((l) => l.startsWith('data: ') && JSON.parse(l.slice(6)).documentKey?._id === id) };
    const { out, done } = curl(['-v', '-i', version, '--cacert', file('ca.pem'), '-H', 'Accept: text/event-stream', url], { until: (o) => seen.test(o) });
    await waitUntil(() => /^retry:/m.test(out.stdout) || out.exited, () => `the stream to start (curl: ${out.stderr.slice(-400)})`);
    assert.match(out.stdout, /^HTTP\/(1\.1|2) 200/m, out.stderr);
    assert.match(out.stderr, /SSL connection using TLSv1\.[23]\b/);
    await coll(stack, `t1v${id}`).insertOne({ _id: id });
    const result = await done;
    assert.match(result.stdout, /event: change/, `${result.stdout}\n${result.stderr.slice(-400)}`);
    assert.ok(seen.test(result.stdout), result.stdout);
  });
}

test('an SSE stream over TLS stays open across heartbeats with HTTP/2 as with HTTP/1.1 (7 heartbeats, then a change still arrives)', async () => {
  const stack = await tlsStack();
  const runs = ['--http1.1', '--http2'].map((version, i) => {
    const id = `long${i}`;
    const seen = (o) => o.split('\n').some((l) => l.startsWith('data: ') && JSON.parse(l.slice(6)).documentKey?._id === id);
    const url = sseUrl(httpsUrl(stack), { ns: 'shop.t1long' });
    return { version, id, ...curl(['-i', version, '--max-time', '30', '--cacert', file('ca.pem'), url], { until: seen }) };
  });
  const beats = (o) => (o.match(/^: heartbeat$/gm) || []).length;
  for (const r of runs) {
    await waitUntil(() => beats(r.out.stdout) >= 7 || r.out.exited, () => `7 heartbeats over ${r.version} (got ${beats(r.out.stdout)})`, 20000);
    assert.equal(r.out.exited, false, `${r.version}: the stream is still open after 7 heartbeats (curl exit ${r.out.code}: ${r.out.stderr})`);
  }
  for (const r of runs) await coll(stack, 't1long').insertOne({ _id: r.id });
  for (const r of runs) {
    const result = await r.done;
    assert.match(result.stdout, /event: change/, `${r.version}: ${result.stderr}`);
  }
});

test('curl without the test CA fails verification; with it /healthz answers', async () => {
  const stack = await tlsStack();
  const untrusted = await curl(['--max-time', '5', `${httpsUrl(stack)}/healthz`]).done;
  assert.equal(untrusted.code, 60, `curl without the CA fails verification: ${untrusted.stderr}`);
  const trusted = await curl(['--max-time', '5', '--cacert', file('ca.pem'), `${httpsUrl(stack)}/healthz`]).done;
  assert.equal(trusted.code, 0, trusted.stderr);
  assert.match(trusted.stdout, /"status"/);
});

test('SSE over node:https and a WebSocket over wss (npm ws) trusting the test CA receive changes; without the CA the handshake fails', async () => {
  const stack = await tlsStack();
  const sse = await A.openStream(sseUrl(httpsUrl(stack), { ns: 'shop.t2' }), { ca });
  assert.equal(sse.status, 200, sse.body ?? sse.error?.message);
  const ws = await A.connectWs(wssUrl(stack), { ca });
  assert.ok(ws.opened, ws.error?.message);
  assert.equal((await ws.subscribe('s', 'shop.t2')).type, 'subscribed');
  await coll(stack, 't2').insertOne({ _id: 1 });
  await waitUntil(() => sse.changes.length && ws.changes('s').length, 'the change on both');
  assert.equal(sse.changes[0].json.documentKey._id, 1);
  const untrusted = await A.connectWs(wssUrl(stack));
  assert.equal(untrusted.opened, false);
  assert.match(untrusted.error?.message || '', /certificate/);
});

test('the TLS port\'s own origin (https, same host and port) is allowed over HTTP/1.1 and HTTP/2; its http:// twin is foreign', async () => {
  const stack = await tlsStack();
  const own = httpsUrl(stack);
  const status = async (version, origin) => {
    const r = await curl(['-sS', '-i', version, '--max-time', '5', '--cacert', file('ca.pem'), '-H', `Origin: ${origin}`, sseUrl(own, { ns: 'shop.t6' })], { until: (o) => /\r?\n\r?\n/.test(o) }).done;
    return { status: Number((r.stdout.match(/^HTTP\/[\d.]+ (\d+)/) || [])[1]), out: r.stdout.slice(0, 300) };
  };
  for (const version of ['--http1.1', '--http2']) {
    const same = await status(version, own);
    assert.equal(same.status, 200, `${version} same origin: ${same.out}`);
    const twin = await status(version, own.replace('https:', 'http:'));
    assert.equal(twin.status, 403, `${version} http:// origin: ${twin.out}`);
  }
  const ws = await A.connectWs(wssUrl(stack), { ca, headers: { Origin: own } });
  assert.ok(ws.opened, JSON.stringify(ws.refusal));
});

test('plain HTTP to the TLS push port is refused: the connection is closed without an HTTP answer', async () => {
  const stack = await tlsStack();
  const plain = await A.openStream(`http://127.0.0.1:${stack.changecast.pushPort}/v1/events?ns=shop.t3`);
  assert.equal(plain.status, null, `no HTTP status (got ${plain.status} ${plain.body})`);
  assert.ok(plain.error, 'the request failed');
  const healthz = await A.openStream(`http://127.0.0.1:${stack.changecast.pushPort}/healthz`);
  assert.equal(healthz.status, null);
  const ws = await A.connectWs(`ws://127.0.0.1:${stack.changecast.pushPort}/v1/ws`);
  assert.equal(ws.opened, false);
  // The port still serves TLS afterwards.
  assert.ok((await handshake(stack.changecast.pushPort, ca)).ok);
});

test('with push.tls_client_ca_file a client certificate from that CA is required', async () => {
  const stack = await mutualStack();
  const client = { cert: fs.readFileSync(file('client.pem')), key: fs.readFileSync(file('client.key')) };
  const withCert = await A.openStream(sseUrl(httpsUrl(stack), { ns: 'shop.t4' }), { ca, ...client });
  assert.equal(withCert.status, 200, withCert.body ?? withCert.error?.message);
  const ws = await A.connectWs(wssUrl(stack), { ca, ...client });
  assert.ok(ws.opened, ws.error?.message);
  const without = await A.openStream(sseUrl(httpsUrl(stack), { ns: 'shop.t4' }), { ca });
  assert.equal(without.status, null, 'no answer without a client certificate');
  const wsWithout = await A.connectWs(wssUrl(stack), { ca });
  assert.equal(wsWithout.opened, false);
  // A certificate from another CA is refused as well.
  const other = makeCerts();
  const foreign = await A.openStream(sseUrl(httpsUrl(stack), { ns: 'shop.t4' }), { ca, cert: fs.readFileSync(file('client.pem', other)), key: fs.readFileSync(file('client.key', other)) });
  assert.equal(foreign.status, null);
});

test('SIGHUP loads a new certificate for new connections (serial changes); a stream opened before keeps going', async () => {
  const stack = await reloadStack();
  const port = stack.changecast.pushPort;
  const firstSerial = await peerSerial(port);
  const before = await A.openStream(sseUrl(httpsUrl(stack), { ns: 'shop.t5' }), { ca });
  assert.equal(before.status, 200);
  const second = makeCerts(); // a new CA: only the reloaded certificate verifies against it
  for (const name of ['server.pem', 'server.key']) fs.copyFileSync(file(name, second), file(name, liveDir));
  stack.changecast.proc.kill('SIGHUP');
  const secondSerial = await waitUntil(async () => {
    const serial = await peerSerial(port).catch(() => null);
    return serial && serial !== firstSerial ? serial : null;
  }, 'a new serial after SIGHUP');
  assert.notEqual(secondSerial, firstSerial);
  assert.ok((await handshake(port, fs.readFileSync(file('ca.pem', second)))).ok, 'the new certificate verifies with the new CA');
  assert.equal((await handshake(port, ca)).ok, false, 'and no longer with the old one');
  await coll(stack, 't5').insertOne({ _id: 1 });
  await waitUntil(() => before.changes.length, 'the stream opened before the reload still delivers');
});

test('a SIGHUP whose new certificate and key do not match keeps serving the old certificate', async () => {
  const dir = tempDir('cc-push-certs-bad');
  for (const name of ['server.pem', 'server.key']) fs.copyFileSync(file(name), file(name, dir));
  const stack = await push.startPush({ flags: tlsFlags(dir) });
  try {
    const port = stack.changecast.pushPort;
    const before = await peerSerial(port);
    // A certificate replaced before its key (as a careless copy would do).
    const other = makeCerts();
    fs.copyFileSync(file('server.pem', other), file('server.pem', dir));
    stack.changecast.proc.kill('SIGHUP');
    await stack.changecast.waitFor(/event=reload_failed what=push_tls/);
    assert.equal(await peerSerial(port), before, 'the old certificate is still served');
    assert.ok((await handshake(port, ca)).ok, 'and still verifies');
    const sse = await A.openStream(sseUrl(httpsUrl(stack), { ns: 'shop.t7' }), { ca });
    assert.equal(sse.status, 200, sse.body ?? sse.error?.message);
    sse.close();
  } finally {
    await stack.stop();
  }
});
