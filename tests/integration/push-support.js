// SPDX-License-Identifier: Apache-2.0
// Helpers for the push-port integration tests (push-*.test.js): changecast
// started with change capture and a push port in front of a stand-in, the
// three kinds of subscriber the tests use (SSE over node:http or curl, npm
// `eventsource`, npm `ws`), a writer that numbers its documents, and a wait
// that fails with a clear message instead of asserting timing.
'use strict';
const http = require('node:http');
const zlib = require('node:zlib');
const crypto = require('node:crypto');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { EventSource } = require('eventsource');
const WebSocket = require('ws');
const { MongoClient } = require('mongodb');
const { startStandin, startChangecast, tempDir } = require('./support');

const EXPOSE = 'it.orders,it.chat,shop.*';
const WAIT_MS = 15000;

// ---------------------------------------------------------------- waiting

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls predicate until it is truthy; after timeoutMs fails with
// "timed out after N s waiting for <what>" where what may be a function
// (called at failure time, so it can say what was seen).
async function waitUntil(predicate, what, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) {
      const text = typeof what === 'function' ? await what() : what;
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${text}`);
    }
    await sleep(25);
  }
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// ------------------------------------------------------------- processes

function pushFlags({ tokenFile, extra = [] } = {}) {
  return [
    '--push.listen', '127.0.0.1:0',
    '--changes.expose', EXPOSE,
    '--changes.token_file', tokenFile || path.join(tempDir('cc-token'), 'token'),
    '--push.flush_ms', '5',
    '--auth.mode', 'none', // auth tests give their own
    ...extra,
  ];
}

// A stand-in (or the one given) and a changecast with capture and a push
// port in front of it, plus a driver client writing through changecast's
// wire proxy. Resolves once the capture stream is open.
async function startPush({ standinArgs = [], flags = [], tokenFile, standin, upstreamUri, waitForPrimary = true, waitCapture = true } = {}) {
  const own = !standin;
  standin = standin || (await startStandin(standinArgs));
  let changecast;
  try {
    changecast = await startChangecast(standin.port, pushFlags({ tokenFile, extra: flags }), { upstreamUri, waitForPrimary });
    if (!changecast.pushUrl) throw new Error(`changecast's ready line names no push port:\n${changecast.output}`);
    if (waitCapture) await changecast.waitFor(/event=capture_started/, WAIT_MS);
  } catch (err) {
    await changecast?.stop().catch(() => {});
    if (own) await standin.stop();
    throw err;
  }
  const client = new MongoClient(changecast.uri, { serverSelectionTimeoutMS: 15000, appName: 'it-push-writer' });
  await client.connect();
  const stack = {
    fixture: false,
    standin,
    changecast,
    client,
    pushUrl: changecast.pushUrl,
    wsUrl: `ws://127.0.0.1:${changecast.pushPort}/v1/ws`,
    async stop() {
      await client.close().catch(() => {});
      let status;
      try {
        status = await changecast.stop();
      } finally {
        if (own) await standin.stop();
        if (!stack.fixture) dumpLogs(stack);
      }
      return status;
    },
  };
  return stack;
}

// With PUSH_TEST_LOGDIR set, leaves changecast's and the stand-in's logs
// there (for reading a failure after the run).
function dumpLogs(s, name = path.basename(require.main?.filename || process.argv[1] || 'push', '.js')) {
  const dir = process.env.PUSH_TEST_LOGDIR;
  if (!dir || !s?.changecast) return;
  require('node:fs').mkdirSync(dir, { recursive: true });
  const stamp = `${name}-${process.pid}-${Date.now()}`;
  require('node:fs').writeFileSync(path.join(dir, `${stamp}.changecast.log`), s.changecast.output);
  if (s.standin?.output !== undefined) require('node:fs').writeFileSync(path.join(dir, `${stamp}.standin.log`), s.standin.output);
}

// Registers before/after hooks running one push stack for a whole file.
function usePush(options = {}) {
  const { before, after } = require('node:test');
  const fixture = {};
  before(async () => {
    Object.assign(fixture, await startPush(options), { fixture: true });
  });
  after(async () => {
    closeAll();
    try {
      await fixture.stop?.();
    } finally {
      dumpLogs(fixture);
    }
  });
  return fixture;
}

// --------------------------------------------------------------- writing

// Inserts {_id: seq, seq, ...extra(seq)} for seq = from..to, one statement
// at a time, in order.
async function writeSeq(coll, from, to, extra = () => ({})) {
  for (let seq = from; seq <= to; seq++) await coll.insertOne({ _id: seq, seq, ...extra(seq) });
}

// ----------------------------------------------------------- SSE parsing

// An incremental text/event-stream parser (WHATWG rules: LF, CRLF or CR
// line ends; "field: value" with one optional space; blank line dispatches).
function sseParser(sink) {
  let buffer = '';
  let data = [];
  let event = '';
  let id = null;
  const line = (text) => {
    if (text === '') {
      if (data.length) {
        const body = data.join('\n');
        let json;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        if (id !== null) sink.lastEventId = id;
        sink.events.push({ type: event || 'message', id, data: body, json });
      }
      data = [];
      event = '';
      id = null;
      return;
    }
    if (text.startsWith(':')) {
      sink.comments.push(text.slice(1).replace(/^ /, ''));
      sink.lines.push(text);
      return;
    }
    sink.lines.push(text);
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    const value = colon < 0 ? '' : text.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id') id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) sink.retry = Number(value);
  };
  return (chunk) => {
    buffer += chunk;
    for (;;) {
      const m = buffer.match(/\r\n|\r|\n/);
      if (!m) break;
      // A lone CR at the very end may be the first half of CRLF.
      if (m[0] === '\r' && m.index === buffer.length - 1) break;
      line(buffer.slice(0, m.index));
      buffer = buffer.slice(m.index + m[0].length);
    }
  };
}

function newSink(kind) {
  return {
    kind,
    status: null,
    headers: {},
    events: [],
    comments: [],
    lines: [],
    retry: null,
    lastEventId: null,
    ended: false,
    error: null,
    get changes() {
      return this.events.filter((e) => e.type === 'change');
    },
    get resets() {
      return this.events.filter((e) => e.type === 'reset');
    },
    get seqs() {
      return this.changes.map((e) => e.json?.fullDocument?.seq);
    },
  };
}

const live = new Set();

// GET url with node:http. Resolves once the response headers are in: for a
// 200 the sink then keeps filling with events; for anything else it
// resolves after the whole body, with body and json.
// Fills a sink from an HTTP response: for a 200 the event stream (done()
// once the headers are in), for anything else the whole body as body and
// json (done() at its end).
function readSseResponse(res, sink, done) {
  sink.status = res.statusCode;
  sink.headers = res.headers;
  if (res.headers['content-encoding'] === 'gzip') {
    // Streaming: each event must inflate as it arrives, with no end.
    const gunzip = zlib.createGunzip();
    gunzip.on('error', (err) => (sink.error = err));
    sink.compressedBytes = 0;
    res.on('data', (d) => (sink.compressedBytes += d.length));
    res.pipe(gunzip);
    res.on('close', () => (sink.ended = true));
    gunzip.setEncoding('utf8');
    gunzip.on('data', sseParser(sink));
    return done();
  }
  res.setEncoding('utf8');
  if (res.statusCode !== 200) {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => {
      sink.body = body;
      try {
        sink.json = JSON.parse(body);
      } catch {
        sink.json = undefined;
      }
      sink.ended = true;
      live.delete(sink);
      done();
    });
    return;
  }
  res.on('data', sseParser(sink));
  res.on('end', () => (sink.ended = true));
  res.on('close', () => (sink.ended = true));
  res.on('error', (err) => {
    sink.error = err;
    sink.ended = true;
  });
  done();
}

function openSse(url, { headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const sink = newSink('http');
    const req = http.get(url, { agent: false, headers: { Accept: 'text/event-stream', ...headers } });
    sink.close = () => {
      req.destroy();
      live.delete(sink);
    };
    live.add(sink);
    req.setTimeout(0);
    req.on('error', (err) => {
      sink.error = err;
      sink.ended = true;
      reject(err);
    });
    req.on('response', (res) => readSseResponse(res, sink, () => resolve(sink)));
  });
}

// The same with curl -N (no buffering) -i (headers first); `compressed`
// asks for gzip and has curl inflate it (--compressed).
function openCurlSse(url, { headers = {}, compressed = false } = {}) {
  return new Promise((resolve, reject) => {
    const sink = newSink('curl');
    const args = ['-sS', '-N', '-i', '-H', 'Accept: text/event-stream', ...(compressed ? ['--compressed'] : [])];
    for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
    args.push(url);
    const proc = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    sink.proc = proc;
    sink.stderr = '';
    let head = '';
    let feed = null;
    let settled = false;
    sink.close = () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      live.delete(sink);
    };
    live.add(sink);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => (sink.stderr += d));
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      if (feed) return feed(chunk);
      head += chunk;
      const end = head.search(/\r?\n\r?\n/);
      if (end < 0) return;
      const block = head.slice(0, end).split(/\r?\n/);
      const rest = head.slice(end).replace(/^\r?\n\r?\n/, '');
      sink.status = Number(block[0].split(' ')[1]);
      for (const h of block.slice(1)) {
        const i = h.indexOf(':');
        if (i > 0) sink.headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
      }
      feed = sseParser(sink);
      settled = true;
      resolve(sink);
      if (rest) feed(rest);
    });
    proc.on('exit', () => {
      sink.ended = true;
      live.delete(sink);
      if (!settled) reject(new Error(`curl ${url} exited before a response: ${sink.stderr}`));
    });
  });
}

// npm eventsource. Listens for `change` and `reset`; lastEventId, if given,
// goes out as the Last-Event-ID header of the first request (a browser's
// EventSource would send its own on reconnect). With reconnect false the
// source is closed at its first error instead of retrying.
function openEventSource(url, { lastEventId, reconnect = false } = {}) {
  const sink = newSink('eventsource');
  let first = true;
  const es = new EventSource(url, {
    fetch: (input, init) => {
      const headers = { ...(init.headers || {}) };
      if (first && lastEventId && !headers['Last-Event-ID']) headers['Last-Event-ID'] = lastEventId;
      first = false;
      return fetch(input, { ...init, headers }).then((res) => {
        sink.status = res.status;
        return res;
      });
    },
  });
  sink.es = es;
  sink.errors = [];
  sink.lastEventId = lastEventId || null;
  const push = (type) => (e) => {
    let json;
    try {
      json = JSON.parse(e.data);
    } catch {
      json = undefined;
    }
    const id = type === 'change' ? e.lastEventId : null;
    if (type === 'change') sink.lastEventId = e.lastEventId;
    sink.events.push({ type, id, data: e.data, json });
  };
  es.addEventListener('change', push('change'));
  es.addEventListener('reset', push('reset'));
  sink.opened = new Promise((resolve, reject) => {
    es.addEventListener('open', () => resolve(sink));
    es.addEventListener('error', (e) => {
      sink.errors.push(e);
      if (!reconnect) {
        es.close();
        sink.ended = true;
      }
      reject(new Error(`EventSource ${url}: ${e.message || 'error'} (${e.code ?? 'no status'})`));
    });
  });
  sink.opened.catch(() => {});
  sink.close = () => {
    es.close();
    sink.ended = true;
    live.delete(sink);
  };
  live.add(sink);
  return sink;
}

// npm ws with subprotocol changecast.v1. Resolves once open.
// `perMessageDeflate` as npm ws takes it: offered by default, as browsers do.
function openWs(wsUrl, { autoPong = true, protocol = 'changecast.v1', perMessageDeflate = true } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, protocol, { autoPong, perMessageDeflate });
    const c = {
      ws,
      messages: [],
      pings: 0,
      closed: null,
      send(obj) {
        ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
      },
      of(type, id) {
        return this.messages.filter((m) => m.type === type && (id === undefined || m.id === id));
      },
      changes(id) {
        return this.of('change', id);
      },
      seqs(id) {
        return this.changes(id).map((m) => m.event?.fullDocument?.seq);
      },
      lastToken(id) {
        const list = this.changes(id);
        return list.length ? list[list.length - 1].token : null;
      },
      // Sends obj and waits for the first later message that answers it
      // (same id, one of the given types).
      async request(obj, types) {
        const start = this.messages.length;
        this.send(obj);
        const answer = () => this.messages.slice(start).find((m) => types.includes(m.type) && (obj.id === undefined || m.id == null || m.id === obj.id));
        return waitUntil(answer, () => `a ${types.join('/')} answering ${JSON.stringify(obj).slice(0, 200)}; got ${JSON.stringify(this.messages.slice(start)).slice(0, 500)}`);
      },
      subscribe(id, ns, more = {}) {
        return this.request({ type: 'subscribe', id, ns, ...more }, ['subscribed', 'error', 'reset']);
      },
      close() {
        if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.terminate();
        live.delete(c);
      },
      get open() {
        return ws.readyState === WebSocket.OPEN;
      },
    };
    live.add(c);
    ws.on('ping', () => (c.pings += 1));
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        c.messages.push({ type: '<binary>', data });
        return;
      }
      try {
        c.messages.push(JSON.parse(data.toString('utf8')));
      } catch {
        c.messages.push({ type: '<unparsable>', data: data.toString('utf8') });
      }
    });
    ws.on('close', (code, reason) => {
      c.closed = { code, reason: reason.toString() };
      live.delete(c);
    });
    ws.on('error', (err) => {
      c.error = err;
      reject(err);
    });
    ws.on('open', () => resolve(c));
  });
}

// A raw TCP subscriber that sends its request and then never reads: SSE by
// a GET, or WebSocket by an upgrade and one subscribe message. The socket
// is paused, so the kernel's buffers fill and the server's writes stall.
function openStalled(port, send, { localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    const c = { socket, closed: false, error: null, received: '' };
    socket.on('connect', async () => {
      await send(socket);
      socket.pause();
      resolve(c);
    });
    socket.on('error', (err) => {
      c.error = err;
      reject(err);
    });
    socket.on('close', () => (c.closed = true));
    c.close = () => {
      socket.destroy();
      live.delete(c);
    };
    live.add(c);
    // Reading resumes only when a test drains it on purpose.
    c.drain = () => {
      socket.setEncoding('latin1');
      socket.on('data', (d) => (c.received += d));
      socket.resume();
    };
  });
}

function openStalledSse(port, pathAndQuery, options) {
  return openStalled(port, (socket) => socket.write(`GET ${pathAndQuery} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`), options);
}

// A client frame (RFC 6455 5.2): FIN + text, masked, with a 7- or 16-bit length.
function maskedTextFrame(text) {
  const payload = Buffer.from(text, 'utf8');
  const mask = crypto.randomBytes(4);
  const head = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, mask, payload.map((b, i) => b ^ mask[i % 4])]);
}

function openStalledWs(port, subscribe, options) {
  const key = crypto.randomBytes(16).toString('base64');
  const upgrade = `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: changecast.v1\r\n\r\n`;
  // The subscribe message follows the 101 answer; then nothing is read.
  const send = (socket) =>
    new Promise((resolve) => {
      let answer = '';
      const onData = (d) => {
        answer += d.toString('latin1');
        if (!answer.includes('\r\n\r\n')) return;
        socket.off('data', onData);
        socket.write(maskedTextFrame(JSON.stringify({ type: 'subscribe', ...subscribe })));
        resolve();
      };
      socket.on('data', onData);
      socket.write(upgrade);
    });
  return openStalled(port, send, options);
}

// Closes every subscriber still open (tests call this in finally blocks).
function closeAll() {
  for (const c of [...live]) {
    try {
      c.close();
    } catch {
      // already gone
    }
  }
}

// ------------------------------------------------------------------ HTTP

function httpGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, body, json });
      });
    });
    req.setTimeout(WAIT_MS, () => req.destroy(new Error(`GET ${url}: no complete answer within ${WAIT_MS / 1000} s`)));
    req.on('error', reject);
  });
}

// Prometheus text format: [{name, labels: {k: v}, value}], comments skipped.
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)(\s+\d+)?$/);
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels = {};
    for (const l of (m[3] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

async function metrics(pushUrl) {
  const res = await httpGet(`${pushUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${res.body}`);
  return { text: res.body, samples: parseMetrics(res.body), headers: res.headers };
}

// Sum of the samples whose name matches nameRe and whose labels match
// every entry of labelMatch (a label value or a RegExp).
function metricSum(samples, nameRe, labelMatch = {}) {
  return samples
    .filter((s) => nameRe.test(s.name))
    .filter((s) => Object.entries(labelMatch).every(([k, v]) => (v instanceof RegExp ? v.test(s.labels[k] ?? '') : s.labels[k] === v)))
    .reduce((sum, s) => sum + s.value, 0);
}

function sseUrl(pushUrl, { ns = [], filter, ops, lastEventId, snapshot, format, sort, limit } = {}) {
  const q = new URLSearchParams();
  if (snapshot) q.set('snapshot', '1');
  if (format !== undefined) q.set('format', format);
  if (sort !== undefined) q.set('sort', JSON.stringify(sort));
  if (limit !== undefined) q.set('limit', String(limit));
  for (const n of [].concat(ns)) q.append('ns', n);
  if (filter !== undefined) q.set('filter', typeof filter === 'string' ? filter : JSON.stringify(filter));
  if (ops !== undefined) q.set('ops', [].concat(ops).join(','));
  if (lastEventId !== undefined) q.set('lastEventId', lastEventId);
  return `${pushUrl}/v1/events?${q}`;
}

module.exports = {
  EXPOSE,
  WAIT_MS,
  sleep,
  waitUntil,
  range,
  pushFlags,
  startPush,
  usePush,
  writeSeq,
  sseParser,
  readSseResponse,
  openSse,
  openCurlSse,
  openEventSource,
  openWs,
  openStalledSse,
  openStalledWs,
  closeAll,
  dumpLogs,
  httpGet,
  parseMetrics,
  metrics,
  metricSum,
  sseUrl,
};
