// SPDX-License-Identifier: Apache-2.0
// Helpers for the push-port authorization tests (push-auth*.test.js,
// push-limits.test.js, push-tls.test.js): tokens and keys, and subscribers
// that can carry headers, cookies, an Origin, a client address or a CA.
//
// HS256 tokens for ordinary use come from `changecast token` (the daemon's own
// minting, as a developer would run it). Everything a minting tool would never
// produce (forged signatures, other algorithms, `alg: none`, algorithm
// confusion, `nbf`, past `exp`, RS256/ES256/JWKS) is written here by hand with
// node:crypto: a compact JWS is base64url(header) "." base64url(payload) "."
// base64url(signature) (RFC 7515 section 7.1), nothing more.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const WebSocket = require('ws');
const { CHANGECAST, tempDir } = require('./support');
const push = require('./push-support');

const nowS = () => Math.floor(Date.now() / 1000);
const b64url = (data) => Buffer.from(typeof data === 'string' ? data : JSON.stringify(data)).toString('base64url');

// ------------------------------------------------------------------ keys

// A fresh HS256 secret file: 64 hex characters and a trailing newline (which
// the daemon ignores). `secret` is the HMAC key it stands for.
function makeSecret(dir = tempDir('cc-auth')) {
  const secret = crypto.randomBytes(32).toString('hex');
  const file = path.join(dir, `secret-${crypto.randomBytes(4).toString('hex')}`);
  fs.writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return { file, secret };
}

// An RSA 2048 key pair; the public key also as a PEM file (SPKI).
function makeRsaKey(dir = tempDir('cc-auth')) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' });
  const file = path.join(dir, `rsa-${crypto.randomBytes(4).toString('hex')}.pem`);
  fs.writeFileSync(file, publicPem);
  return { publicKey, privateKey, publicPem, file };
}

// An EC P-256 key pair; the public key also as a PEM file.
function makeEcKey(dir = tempDir('cc-auth')) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' });
  const file = path.join(dir, `ec-${crypto.randomBytes(4).toString('hex')}.pem`);
  fs.writeFileSync(file, publicPem);
  return { publicKey, privateKey, publicPem, file };
}

// A JWK Set file from [{publicKey, kid, alg?, use?}] (RFC 7517).
function writeJwks(entries, dir = tempDir('cc-auth')) {
  const keys = entries.map(({ publicKey, kid, alg, use }) => {
    const jwk = publicKey.export({ format: 'jwk' });
    return { ...jwk, kid, ...(alg ? { alg } : {}), ...(use ? { use } : {}) };
  });
  const file = path.join(dir, `jwks-${crypto.randomBytes(4).toString('hex')}.json`);
  fs.writeFileSync(file, JSON.stringify({ keys }, null, 2));
  return file;
}

// ---------------------------------------------------------------- tokens

// Signers: functions from the signing input (a Buffer) to the signature.
const signers = {
  hmac: (secret, hash = 'sha256') => (input) => crypto.createHmac(hash, secret).update(input).digest(),
  rsa: (privateKey, hash = 'sha256') => (input) => crypto.sign(hash, input, privateKey),
  // JWS ES256 signatures are r || s, 32 bytes each (RFC 7518 section 3.4), not DER.
  ec: (privateKey) => (input) => crypto.sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
  none: () => () => Buffer.alloc(0),
};

// A compact JWS from a header object (or raw header JSON text), a payload
// object and a signer.
function jws(header, payload, sign) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${sign(Buffer.from(input)).toString('base64url')}`;
}

// A token payload: a `changecast` claim granting `ns` (an object as in
// docs/security.md: {"shop.orders": {"filter": ..., "fields": [...]}}), exp
// `ttl` seconds from now, and whatever else is passed (exp, nbf, iss, aud,
// sub, changecast); a key passed as undefined or null is left out.
function claims({ ns = {}, ttl = 3600, ...rest } = {}) {
  const now = nowS();
  const out = { iat: now, exp: now + ttl, changecast: { ns } };
  for (const [k, v] of Object.entries(rest)) {
    if (v === undefined || v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

const hs256 = (secret, payload, header = {}) => jws({ alg: 'HS256', typ: 'JWT', ...header }, payload, signers.hmac(secret));
const rs256 = (privateKey, payload, header = {}) => jws({ alg: 'RS256', typ: 'JWT', ...header }, payload, signers.rsa(privateKey));
const es256 = (privateKey, payload, header = {}) => jws({ alg: 'ES256', typ: 'JWT', ...header }, payload, signers.ec(privateKey));

// `changecast token`: grants is [{ns, filter?, fields?}], options ttl (e.g.
// '1h' or 3), iss, aud, sub, kid.
function mintToken(secretFile, grants, { ttl = '1h', iss, aud, sub, kid } = {}) {
  const args = ['token', '--secret-file', secretFile];
  for (const g of [].concat(grants)) {
    const { ns, filter, fields } = typeof g === 'string' ? { ns: g } : g;
    args.push('--ns', ns);
    if (filter !== undefined) args.push('--filter', JSON.stringify(filter));
    if (fields !== undefined) args.push('--fields', fields.join(','));
  }
  args.push('--ttl', String(ttl));
  if (iss) args.push('--iss', iss);
  if (aud) args.push('--aud', aud);
  if (sub) args.push('--sub', sub);
  if (kid) args.push('--kid', kid);
  return execFileSync(CHANGECAST, args, { encoding: 'utf8' }).trim();
}

// The decoded payload of a compact JWS (no verification: for reading exp).
const payloadOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));

// changecast flags for jwt mode with one key source.
function jwtFlags({ secretFile, publicKeyFile, jwksFile, leeway, issuer, audience, cookie } = {}) {
  const flags = ['--auth.mode', 'jwt'];
  if (secretFile) flags.push('--auth.jwt_secret_file', secretFile);
  if (publicKeyFile) flags.push('--auth.jwt_public_key_file', publicKeyFile);
  if (jwksFile) flags.push('--auth.jwks_file', jwksFile);
  if (leeway !== undefined) flags.push('--auth.leeway_s', String(leeway));
  if (issuer) flags.push('--auth.issuer', issuer);
  if (audience) flags.push('--auth.audience', audience);
  if (cookie) flags.push('--auth.cookie', cookie);
  return flags;
}

// ----------------------------------------------------------- subscribers

const live = new Set();

// GET an SSE URL (http or https) with headers, from a chosen local address,
// trusting `ca`. Resolves once headers are in: a 200 keeps filling
// sink.events (parsed by push-support's sseParser); anything else resolves
// after its body with body and json. A connection the server closes or
// resets before answering resolves with status null and sink.error set
// (refusals of connections are outcomes here, not exceptions).
function openStream(url, { headers = {}, localAddress, ca, cert, key } = {}) {
  const lib = url.startsWith('https:') ? https : http;
  return new Promise((resolve) => {
    const sink = {
      status: null,
      headers: {},
      events: [],
      comments: [],
      lines: [],
      ended: false,
      error: null,
      get changes() {
        return this.events.filter((e) => e.type === 'change');
      },
      of(type) {
        return this.events.filter((e) => e.type === type);
      },
    };
    const req = lib.get(url, { agent: false, headers: { Accept: 'text/event-stream', ...headers }, localAddress, ca, cert, key });
    sink.close = () => {
      req.destroy();
      live.delete(sink);
    };
    live.add(sink);
    req.setTimeout(0);
    req.on('error', (err) => {
      sink.error = err;
      sink.ended = true;
      live.delete(sink);
      resolve(sink);
    });
    req.on('response', (res) => push.readSseResponse(res, sink, () => resolve(sink)));
  });
}

// A WebSocket (subprotocol changecast.v1) with optional headers (Origin,
// Authorization, Cookie), local address and CA. Always resolves with a
// client: `opened` true once the upgrade succeeded; otherwise `refusal`
// holds {status, headers, body} of the HTTP answer, or `error` the socket
// error. `closed` becomes {code, reason} when the socket closes.
function connectWs(url, { headers = {}, localAddress, ca, cert, key, protocol = 'changecast.v1' } = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocol, { headers, localAddress, ca, cert, key, perMessageDeflate: false, handshakeTimeout: push.WAIT_MS });
    const c = {
      ws,
      opened: false,
      refusal: null,
      error: null,
      closed: null,
      messages: [],
      send(obj) {
        ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
      },
      of(type, id) {
        return this.messages.filter((m) => m.type === type && (id === undefined || m.id === id));
      },
      changes(id) {
        return this.of('change', id);
      },
      async request(obj, types) {
        const start = this.messages.length;
        this.send(obj);
        const answer = () => this.messages.slice(start).find((m) => types.includes(m.type) && (obj.id === undefined || m.id == null || m.id === obj.id));
        return push.waitUntil(
          () => answer() || (this.closed && { type: '<closed>', ...this.closed }),
          () => `a ${types.join('/')} answering ${JSON.stringify(obj).slice(0, 200)}; got ${JSON.stringify(this.messages.slice(start)).slice(0, 500)}`,
        );
      },
      subscribe(id, ns, more = {}) {
        return this.request({ type: 'subscribe', id, ns, ...more }, ['subscribed', 'error', 'reset']);
      },
      waitClosed(what = 'the socket to close') {
        return push.waitUntil(() => this.closed, () => `${what} (messages ${JSON.stringify(this.messages).slice(0, 400)})`);
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
    ws.on('message', (data, isBinary) => {
      if (isBinary) return c.messages.push({ type: '<binary>', data });
      try {
        c.messages.push(JSON.parse(data.toString('utf8')));
      } catch {
        c.messages.push({ type: '<unparsable>', data: data.toString('utf8') });
      }
    });
    ws.on('unexpected-response', (req, res) => {
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
        c.refusal = { status: res.statusCode, headers: res.headers, body, json };
        c.closed = { code: null, reason: 'refused' };
        req.destroy();
        live.delete(c);
        resolve(c);
      });
    });
    ws.on('close', (code, reason) => {
      c.closed = { code, reason: reason.toString() };
      live.delete(c);
      resolve(c);
    });
    ws.on('error', (err) => {
      c.error = err;
      if (!c.opened) {
        c.closed = c.closed || { code: null, reason: err.message };
        resolve(c);
      }
    });
    ws.on('open', () => {
      c.opened = true;
      resolve(c);
    });
  });
}

function closeAll() {
  for (const c of [...live]) {
    try {
      c.close();
    } catch {
      // already gone
    }
  }
  push.closeAll();
}

// ---------------------------------------------------------------- metrics

// {reason: count} of changecast_refusals_total.
async function refusals(pushUrl) {
  const { samples } = await push.metrics(pushUrl);
  const out = {};
  for (const s of samples) if (s.name === 'changecast_refusals_total') out[s.labels.reason] = (out[s.labels.reason] || 0) + s.value;
  return out;
}

// How much each reason grew between two refusals() readings.
function refusalsDelta(before, after) {
  const out = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[k] || 0) - (before[k] || 0);
    if (d) out[k] = d;
  }
  return out;
}

// A URL with access_token appended.
const withToken = (url, token) => `${url}${url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}`;

// A push stack started on first use, so a stack that cannot start fails
// only the tests that need it; stop() is a no-op when it never started.
function lazyPush(options) {
  let started;
  const get = () => (started ||= push.startPush(options));
  get.stop = async () => {
    if (!started) return;
    const stack = await started.catch(() => null);
    await stack?.stop();
  };
  return get;
}

module.exports = {
  lazyPush,
  nowS,
  b64url,
  makeSecret,
  makeRsaKey,
  makeEcKey,
  writeJwks,
  signers,
  jws,
  claims,
  hs256,
  rs256,
  es256,
  mintToken,
  payloadOf,
  jwtFlags,
  openStream,
  connectWs,
  closeAll,
  refusals,
  refusalsDelta,
  withToken,
};
