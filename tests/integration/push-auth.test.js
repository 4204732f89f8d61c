// SPDX-License-Identifier: Apache-2.0
// Who gets in on the push port (docs/security.md, "The push port: who gets
// in" and "Tokens"): token verification through real clients (node:http SSE,
// npm ws), where tokens come from, refusals and their codes, namespaces not
// granted, Origin and CORS, expiry closing both transports and refresh on a
// WebSocket, and start-up checks of the auth configuration.
'use strict';
const { test, describe, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const push = require('./push-support');
const { CHANGECAST } = require('./support');
const A = require('./auth-support');

const { waitUntil, sseUrl, range, sleep } = push;

// ---------------------------------------------------------------- stacks

const secret = A.makeSecret();
const rsa = A.makeRsaKey();
const ec = A.makeEcKey();
const otherRsa = A.makeRsaKey();
const ORIGIN = 'https://app.example.com';
const COOKIE = 'cc_token';


const hsStack = A.lazyPush({ flags: [...A.jwtFlags({ secretFile: secret.file, cookie: COOKIE }), '--push.allowed_origins', ORIGIN] });
// leeway 0: tokens minted with --ttl N expire N seconds from now.
const shortStack = A.lazyPush({ flags: A.jwtFlags({ secretFile: secret.file, leeway: 0 }) });
const rsStack = A.lazyPush({ flags: A.jwtFlags({ publicKeyFile: rsa.file }) });
const jwksFile = A.writeJwks([
  { publicKey: rsa.publicKey, kid: 'rsa-1', alg: 'RS256', use: 'sig' },
  { publicKey: ec.publicKey, kid: 'ec-1', alg: 'ES256' },
]);
const jwksStack = A.lazyPush({ flags: A.jwtFlags({ jwksFile, issuer: 'https://idp.example.com', audience: 'changecast-it' }) });

after(async () => {
  A.closeAll();
  await Promise.all([hsStack.stop(), shortStack.stop(), rsStack.stop(), jwksStack.stop()]);
});
// Tests run one at a time and close what they opened, except inside the
// concurrent suite below, which closes everything once all of it is done.
let concurrent = false;
afterEach(() => {
  if (!concurrent) A.closeAll();
});

// ------------------------------------------------------------- helpers

const coll = (stack, ns) => {
  const [db, c] = ns.split('.');
  return stack.client.db(db).collection(c);
};
const bearer = (token) => ({ Authorization: `Bearer ${token}` });
const mint = (grants, options) => A.mintToken(secret.file, grants, options);
// A WebSocket carrying the token as a Bearer header (npm ws can set one; the
// query parameter and the cookie, which browsers use, are tested on their own).
const wsWith = (stack, token, headers = {}) => A.connectWs(stack.wsUrl, { headers: { ...bearer(token), ...headers } });

// An SSE request on ns with the token as a Bearer header.
const sse = (stack, ns, token, { headers = {}, ...selection } = {}) =>
  A.openStream(sseUrl(stack.pushUrl, { ns, ...selection }), { headers: { ...(token ? bearer(token) : {}), ...headers } });

function assertRefused(sink, status, code, what = '') {
  assert.equal(sink.status, status, `${what} status (body ${sink.body})`);
  assert.equal(sink.json?.error, code, `${what} error code (body ${sink.body})`);
  assert.equal(typeof sink.json?.message, 'string', `${what} a message`);
  if (status === 401) assert.match(sink.headers['www-authenticate'] || '', /^Bearer\b/, `${what} 401 carries WWW-Authenticate: Bearer`);
}

// A WebSocket upgrade with this token: accepted, then closed with 4003 and
// the code as reason.
async function assertWsClosed4003(stack, token, code, connect = () => wsWith(stack, token)) {
  const ws = await connect();
  assert.ok(ws.opened, `the upgrade is accepted (refusal ${JSON.stringify(ws.refusal)}, error ${ws.error?.message})`);
  await ws.waitClosed(`the socket to close with 4003 ${code}`);
  assert.deepEqual(ws.closed, { code: 4003, reason: code });
}

// Writes one document and waits until the sink got it (a stream that works).
async function assertDelivers(stack, ns, sinks, id) {
  await coll(stack, ns).insertOne({ _id: id });
  for (const s of [].concat(sinks)) {
    const got = () => (s.ws ? s.changes() : s.changes).some((m) => (m.event || m.json)?.documentKey?._id === id);
    await waitUntil(got, () => `${ns} _id ${id} delivered (${JSON.stringify(s.messages || s.events).slice(0, 400)})`);
  }
}

// ----------------------------------------------------- valid tokens, control

test('a token from `changecast token` opens an SSE stream and a WebSocket that receive changes', async () => {
  const stack = await hsStack();
  const token = mint(['shop.a1']);
  const stream = await sse(stack, 'shop.a1', token);
  assert.equal(stream.status, 200, stream.body);
  const ws = await wsWith(stack, token);
  assert.ok(ws.opened);
  assert.deepEqual(await ws.subscribe('s', 'shop.a1'), { type: 'subscribed', id: 's' });
  await assertDelivers(stack, 'shop.a1', [stream, ws], 1);
});

test('SSE without any token: 401 token_missing with WWW-Authenticate: Bearer', async () => {
  const stack = await hsStack();
  assertRefused(await sse(stack, 'shop.a1'), 401, 'token_missing');
});

// ------------------------------------------------------------ bad tokens

test('a forged signature is refused: SSE 401 token_invalid, WebSocket upgrade closed 4003 token_invalid', async () => {
  const stack = await hsStack();
  const other = A.makeSecret();
  const good = mint(['shop.a2']);
  const forgedKey = A.mintToken(other.file, ['shop.a2']);
  // The payload of a good token changed after signing (a wider grant).
  const [h, , s] = good.split('.');
  const widened = `${h}.${A.b64url({ ...A.payloadOf(good), changecast: { ns: { 'shop.*': {} } } })}.${s}`;
  // A signature bit flipped.
  const sig = Buffer.from(s, 'base64url');
  sig[0] ^= 1;
  const flipped = `${good.split('.').slice(0, 2).join('.')}.${sig.toString('base64url')}`;
  for (const [what, token] of Object.entries({ forgedKey, widened, flipped })) {
    assertRefused(await sse(stack, 'shop.a2', token), 401, 'token_invalid', what);
    await assertWsClosed4003(stack, token, 'token_invalid');
  }
  assert.equal((await sse(stack, 'shop.a2', good)).status, 200, 'the unaltered token is accepted');
});

test('a token whose header names another algorithm than the key is bound to is refused (HS384, HS512, RS256, repeated alg)', async () => {
  const stack = await hsStack();
  const payload = A.claims({ ns: { 'shop.a3': {} } });
  const tokens = {
    HS384: A.jws({ alg: 'HS384', typ: 'JWT' }, payload, A.signers.hmac(secret.secret, 'sha384')),
    HS512: A.jws({ alg: 'HS512', typ: 'JWT' }, payload, A.signers.hmac(secret.secret, 'sha512')),
    RS256: A.rs256(rsa.privateKey, payload),
    // JSON parsers differ on which of two names wins: refused outright.
    repeated: A.jws('{"alg":"HS256","alg":"HS256","typ":"JWT"}', payload, A.signers.hmac(secret.secret)),
  };
  for (const [what, token] of Object.entries(tokens)) assertRefused(await sse(stack, 'shop.a3', token), 401, 'token_invalid', what);
  await assertWsClosed4003(stack, tokens.HS512, 'token_invalid');
  assert.equal((await sse(stack, 'shop.a3', A.hs256(secret.secret, payload))).status, 200, 'the same claims as HS256 are accepted');
});

test('alg none is refused, with or without a signature part', async () => {
  const stack = await hsStack();
  const payload = A.claims({ ns: { 'shop.a4': {} } });
  const none = A.jws({ alg: 'none', typ: 'JWT' }, payload, A.signers.none());
  const tokens = {
    none,
    noneUpper: A.jws({ alg: 'NONE', typ: 'JWT' }, payload, A.signers.none()),
    noneNoDot: none.replace(/\.$/, ''),
    noneWithHmac: A.jws({ alg: 'none', typ: 'JWT' }, payload, A.signers.hmac(secret.secret)),
  };
  for (const [what, token] of Object.entries(tokens)) assertRefused(await sse(stack, 'shop.a4', token), 401, 'token_invalid', what);
  await assertWsClosed4003(stack, none, 'token_invalid');
});

test('algorithm confusion: with an RS256 public key configured, an HS256 token HMAC-signed with that PEM is refused', async () => {
  const stack = await rsStack();
  const payload = A.claims({ ns: { 'shop.a5': {} } });
  const good = A.rs256(rsa.privateKey, payload);
  const stream = await sse(stack, 'shop.a5', good);
  assert.equal(stream.status, 200, `a good RS256 token is accepted: ${stream.body}`);
  await assertDelivers(stack, 'shop.a5', stream, 'rs');
  // The classic attack: the public key's PEM text (as served, and without
  // its final newline) used as an HMAC secret.
  for (const key of [rsa.publicPem, rsa.publicPem.trimEnd()]) {
    const confused = A.jws({ alg: 'HS256', typ: 'JWT' }, payload, A.signers.hmac(key));
    assertRefused(await sse(stack, 'shop.a5', confused), 401, 'token_invalid', 'HS256 with the PEM as secret');
    await assertWsClosed4003(stack, confused, 'token_invalid');
  }
  assertRefused(await sse(stack, 'shop.a5', A.rs256(otherRsa.privateKey, payload)), 401, 'token_invalid', 'RS256 by another key');
});

test('a JWK Set: RS256 and ES256 tokens are checked with the key their kid names; an unknown or mismatched kid is refused', async () => {
  const stack = await jwksStack();
  const payload = A.claims({ ns: { 'shop.a6': {} }, iss: 'https://idp.example.com', aud: 'changecast-it' });
  const good = { rsa: A.rs256(rsa.privateKey, payload, { kid: 'rsa-1' }), ec: A.es256(ec.privateKey, payload, { kid: 'ec-1' }) };
  for (const [what, token] of Object.entries(good)) {
    const s = await sse(stack, 'shop.a6', token);
    assert.equal(s.status, 200, `${what}: ${s.body}`);
  }
  const bad = {
    unknownKid: A.rs256(rsa.privateKey, payload, { kid: 'nope' }),
    noKid: A.rs256(rsa.privateKey, payload),
    kidOfTheOtherKey: A.rs256(rsa.privateKey, payload, { kid: 'ec-1' }),
    esSignedByRsaKid: A.es256(ec.privateKey, payload, { kid: 'rsa-1' }),
    confusedWithJwk: A.jws({ alg: 'HS256', kid: 'rsa-1' }, payload, A.signers.hmac(rsa.publicPem)),
  };
  for (const [what, token] of Object.entries(bad)) assertRefused(await sse(stack, 'shop.a6', token), 401, 'token_invalid', what);
});

test('auth.issuer and auth.audience: a wrong or missing iss or aud is refused; aud may be an array containing the audience', async () => {
  const stack = await jwksStack();
  const ns = { 'shop.a7': {} };
  const sign = (extra) => A.es256(ec.privateKey, A.claims({ ns, iss: 'https://idp.example.com', aud: 'changecast-it', ...extra }), { kid: 'ec-1' });
  assert.equal((await sse(stack, 'shop.a7', sign({ aud: ['other', 'changecast-it'] }))).status, 200, 'aud array containing the audience');
  for (const [what, extra] of Object.entries({
    wrongIss: { iss: 'https://evil.example.com' },
    noIss: { iss: undefined },
    wrongAud: { aud: 'other' },
    noAud: { aud: undefined },
    audArrayWithout: { aud: ['other', 'more'] },
  })) {
    assertRefused(await sse(stack, 'shop.a7', sign(extra)), 401, 'token_invalid', what);
  }
});

test('a token carrying aud when no audience is configured is refused (meant for another service)', async () => {
  const stack = await hsStack();
  const token = mint(['shop.a7'], { aud: 'another-service' });
  assertRefused(await sse(stack, 'shop.a7', token), 401, 'token_invalid');
  assert.equal((await sse(stack, 'shop.a7', mint(['shop.a7'], { iss: 'anyone' }))).status, 200, 'an iss is fine when no issuer is configured');
});

test('an expired token (past exp by more than the leeway) is refused: SSE 401 token_expired, WebSocket 4003 token_expired', async () => {
  const stack = await hsStack();
  const token = A.hs256(secret.secret, A.claims({ ns: { 'shop.a8': {} }, exp: A.nowS() - 120 }));
  assertRefused(await sse(stack, 'shop.a8', token), 401, 'token_expired');
  await assertWsClosed4003(stack, token, 'token_expired');
});

test('a token not yet valid (nbf later than now plus the leeway) is refused: 401 token_not_yet_valid', async () => {
  const stack = await hsStack();
  const token = A.hs256(secret.secret, A.claims({ ns: { 'shop.a8': {} }, nbf: A.nowS() + 120 }));
  assertRefused(await sse(stack, 'shop.a8', token), 401, 'token_not_yet_valid');
  await assertWsClosed4003(stack, token, 'token_not_yet_valid');
});

test('the leeway (auth.leeway_s, 30 s by default) admits a token expired, or not yet valid, by less than it', async () => {
  const stack = await hsStack();
  const now = A.nowS();
  const late = A.hs256(secret.secret, A.claims({ ns: { 'shop.a8': {} }, exp: now - 10 }));
  const early = A.hs256(secret.secret, A.claims({ ns: { 'shop.a8': {} }, nbf: now + 10 }));
  for (const [what, token] of Object.entries({ late, early })) {
    const s = await sse(stack, 'shop.a8', token);
    assert.equal(s.status, 200, `${what}: ${s.body}`);
    s.close();
  }
  // And with leeway 0 the same late token is refused.
  assertRefused(await sse(await shortStack(), 'shop.a8', late), 401, 'token_expired', 'leeway 0');
});

test('a token without exp is refused (a stream lives as long as its token)', async () => {
  const stack = await hsStack();
  assertRefused(await sse(stack, 'shop.a8', A.hs256(secret.secret, A.claims({ ns: { 'shop.a8': {} }, exp: null }))), 401, 'token_invalid');
});

test('a valid token without the changecast claim is refused 403 claim_missing; a malformed claim 403 claim_invalid', async () => {
  const stack = await hsStack();
  const missing = A.hs256(secret.secret, A.claims({ changecast: undefined, sub: 'u1' }));
  assertRefused(await sse(stack, 'shop.a9', missing), 403, 'claim_missing');
  await assertWsClosed4003(stack, missing, 'claim_missing');
  for (const [what, claim] of Object.entries({
    unknownKey: { ns: { 'shop.a9': {} }, admin: true },
    unknownNsKey: { ns: { 'shop.a9': { filter: {}, write: true } } },
    badFilter: { ns: { 'shop.a9': { filter: { $where: 'true' } } } },
    notAnObject: 'shop.a9',
  })) {
    const token = A.hs256(secret.secret, A.claims({ changecast: claim }));
    assertRefused(await sse(stack, 'shop.a9', token), 403, 'claim_invalid', what);
  }
});

// --------------------------------------------------------------- granting

test('a namespace the claim does not grant: SSE 403 not_granted; WebSocket subscribe error not_granted, the socket stays', async () => {
  const stack = await hsStack();
  const token = mint(['shop.b1']);
  assertRefused(await sse(stack, 'shop.b2', token), 403, 'not_granted');
  assertRefused(await sse(stack, ['shop.b1', 'shop.b2'], token), 403, 'not_granted', 'one of two namespaces not granted');
  assertRefused(await sse(stack, 'shop.*', token), 403, 'not_granted', 'db.* when only db.coll is granted');
  const ws = await wsWith(stack, token);
  const refused = await ws.subscribe('other', 'shop.b2');
  assert.equal(refused.type, 'error');
  assert.equal(refused.code, 'not_granted');
  assert.equal(refused.id, 'other');
  assert.equal((await ws.subscribe('wild', 'shop.*')).code, 'not_granted');
  assert.deepEqual(await ws.subscribe('mine', 'shop.b1'), { type: 'subscribed', id: 'mine' });
  await coll(stack, 'shop.b2').insertOne({ _id: 'not-mine' });
  await assertDelivers(stack, 'shop.b1', ws, 'mine');
  assert.deepEqual(ws.changes().map((m) => m.id), ['mine'], 'nothing of shop.b2 reached the socket');
  assert.ok(ws.open);
});

test('db.* in the claim grants every collection of db, and a db.* subscription; another db stays refused', async () => {
  const stack = await hsStack();
  const token = mint(['shop.*']);
  for (const ns of ['shop.b3', 'shop.*']) {
    const s = await sse(stack, ns, token);
    assert.equal(s.status, 200, `${ns}: ${s.body}`);
  }
  assertRefused(await sse(stack, 'it.orders', token), 403, 'not_granted');
});

// ----------------------------------------------------------- token sources

test('token sources: Authorization Bearer, the access_token query parameter and the auth.cookie cookie each open SSE and WebSocket', async () => {
  const stack = await hsStack();
  const token = mint(['shop.c1']);
  const url = sseUrl(stack.pushUrl, { ns: 'shop.c1' });
  const sources = {
    bearer: [url, bearer(token)],
    bearerLowercaseScheme: [url, { Authorization: `bearer ${token}` }],
    query: [A.withToken(url, token), {}],
    cookie: [url, { Cookie: `theme=dark; ${COOKIE}=${token}; other=1` }],
  };
  const sinks = [];
  for (const [what, [u, headers]] of Object.entries(sources)) {
    const s = await A.openStream(u, { headers });
    assert.equal(s.status, 200, `SSE ${what}: ${s.body}`);
    sinks.push(s);
  }
  for (const [what, [u, headers]] of Object.entries({
    bearer: [stack.wsUrl, bearer(token)],
    query: [A.withToken(stack.wsUrl, token), {}],
    cookie: [stack.wsUrl, { Cookie: `${COOKIE}=${token}` }],
  })) {
    const ws = await A.connectWs(u, { headers });
    assert.ok(ws.opened, `WS ${what}`);
    assert.deepEqual(await ws.subscribe('s', 'shop.c1'), { type: 'subscribed', id: 's' }, `WS ${what}`);
    sinks.push(ws);
  }
  await assertDelivers(stack, 'shop.c1', sinks, 1);
  // Each source is read as the token itself: an expired one is refused as
  // expired (not as malformed) whichever way it came.
  const expired = A.hs256(secret.secret, A.claims({ ns: { 'shop.c1': {} }, exp: A.nowS() - 120 }));
  assertRefused(await A.openStream(A.withToken(url, expired)), 401, 'token_expired', 'SSE query');
  assertRefused(await A.openStream(url, { headers: { Cookie: `${COOKIE}=${expired}` } }), 401, 'token_expired', 'SSE cookie');
  await assertWsClosed4003(stack, expired, 'token_expired', () => A.connectWs(A.withToken(stack.wsUrl, expired)));
  await assertWsClosed4003(stack, expired, 'token_expired', () => A.connectWs(stack.wsUrl, { headers: { Cookie: `${COOKIE}=${expired}` } }));
  // A cookie of another name carries nothing.
  assertRefused(await A.openStream(url, { headers: { Cookie: `access_token=${token}` } }), 401, 'token_missing', 'other cookie');
});

test('the first token source found wins: Bearer over access_token over the cookie', async () => {
  const stack = await hsStack();
  const good = mint(['shop.c2']);
  const bad = A.mintToken(A.makeSecret().file, ['shop.c2']);
  const url = sseUrl(stack.pushUrl, { ns: 'shop.c2' });
  assert.equal((await A.openStream(A.withToken(url, bad), { headers: bearer(good) })).status, 200, 'good Bearer, bad query');
  assertRefused(await A.openStream(A.withToken(url, good), { headers: bearer(bad) }), 401, 'token_invalid', 'bad Bearer, good query');
  assert.equal((await A.openStream(A.withToken(url, good), { headers: { Cookie: `${COOKIE}=${bad}` } })).status, 200, 'good query, bad cookie');
  assertRefused(await A.openStream(A.withToken(url, bad), { headers: { Cookie: `${COOKIE}=${good}` } }), 401, 'token_invalid', 'bad query, good cookie');
});

test('a WebSocket opened without a token: subscribe is answered token_missing, the socket stays, an auth message then lets it subscribe', async () => {
  const stack = await hsStack();
  const ws = await A.connectWs(stack.wsUrl);
  assert.ok(ws.opened);
  const refused = await ws.subscribe('s', 'shop.c3');
  assert.equal(refused.type, 'error');
  assert.equal(refused.code, 'token_missing');
  assert.ok(ws.open);
  const token = mint(['shop.c3']);
  const answer = await ws.request({ type: 'auth', token }, ['authenticated', 'error']);
  assert.deepEqual(answer, { type: 'authenticated', expiresAt: A.payloadOf(token).exp });
  assert.deepEqual(await ws.subscribe('s', 'shop.c3'), { type: 'subscribed', id: 's' });
  await assertDelivers(stack, 'shop.c3', ws, 1);
});

test('an auth message with a token that does not verify, on a socket without one, is answered error and subscribing stays refused', async () => {
  const stack = await hsStack();
  const ws = await A.connectWs(stack.wsUrl);
  const answer = await ws.request({ type: 'auth', token: A.mintToken(A.makeSecret().file, ['shop.c3']) }, ['authenticated', 'error']);
  assert.equal(answer.type, 'error');
  assert.equal(answer.code, 'token_invalid');
  assert.equal((await ws.subscribe('s', 'shop.c3')).code, 'token_missing');
  assert.ok(ws.open);
});

// ----------------------------------------------------------------- origins

test('a foreign Origin is refused 403 origin_not_allowed on SSE and on the WebSocket upgrade, even with a good token', async () => {
  const stack = await hsStack();
  const token = mint(['shop.d1']);
  const foreign = ['https://evil.example', 'http://app.example.com', 'https://app.example.com:8443', `https://127.0.0.1:${stack.changecast.pushPort}`, 'null'];
  for (const origin of foreign) {
    assertRefused(await sse(stack, 'shop.d1', token, { headers: { Origin: origin } }), 403, 'origin_not_allowed', `SSE from ${origin}`);
    const ws = await wsWith(stack, token, { Origin: origin });
    assert.equal(ws.opened, false, `WS upgrade from ${origin} refused`);
    assert.equal(ws.refusal?.status, 403, `WS upgrade from ${origin}: ${JSON.stringify(ws.refusal)}`);
  }
  // Also with the token in a cookie: the cross-site WebSocket hijacking case.
  const hijack = await A.connectWs(stack.wsUrl, { headers: { Origin: 'https://evil.example', Cookie: `${COOKIE}=${token}` } });
  assert.equal(hijack.refusal?.status, 403);
});

test('an allowed Origin gets CORS headers on SSE (Allow-Origin, Allow-Credentials, Vary: Origin) and may open a WebSocket', async () => {
  const stack = await hsStack();
  const token = mint(['shop.d2']);
  const s = await sse(stack, 'shop.d2', token, { headers: { Origin: ORIGIN } });
  assert.equal(s.status, 200, s.body);
  assert.equal(s.headers['access-control-allow-origin'], ORIGIN);
  assert.equal(s.headers['access-control-allow-credentials'], 'true');
  assert.match(s.headers.vary || '', /\bOrigin\b/i);
  const ws = await wsWith(stack, token, { Origin: ORIGIN });
  assert.ok(ws.opened, JSON.stringify(ws.refusal));
  await ws.subscribe('s', 'shop.d2');
  await assertDelivers(stack, 'shop.d2', [s, ws], 1);
  // Refusals to an allowed origin carry CORS headers too, so the page can read them.
  const refused = await sse(stack, 'shop.other', token, { headers: { Origin: ORIGIN } });
  assert.equal(refused.status, 403);
  assert.equal(refused.headers['access-control-allow-origin'], ORIGIN);
});

test('the port\'s own origin (same Host, same scheme) and requests without Origin are allowed', async () => {
  const stack = await hsStack();
  const token = mint(['shop.d3']);
  const own = `http://127.0.0.1:${stack.changecast.pushPort}`;
  const same = await sse(stack, 'shop.d3', token, { headers: { Origin: own } });
  assert.equal(same.status, 200, same.body);
  const bare = await sse(stack, 'shop.d3', token);
  assert.equal(bare.status, 200, bare.body);
  assert.equal(bare.headers['access-control-allow-origin'], undefined, 'no CORS headers without an Origin');
  // Host named differently (localhost): the origin must follow the Host asked for.
  const viaLocalhost = await sse(stack, 'shop.d3', token, {
    headers: { Host: `localhost:${stack.changecast.pushPort}`, Origin: `http://localhost:${stack.changecast.pushPort}` },
  });
  assert.equal(viaLocalhost.status, 200, viaLocalhost.body);
  const ws = await wsWith(stack, token, { Origin: own });
  assert.ok(ws.opened, JSON.stringify(ws.refusal));
});

test('/healthz and /metrics need no token in jwt mode (load balancers and Prometheus probe them)', async () => {
  const stack = await hsStack();
  for (const path of ['/healthz', '/metrics']) {
    const res = await push.httpGet(`${stack.pushUrl}${path}`);
    assert.equal(res.status, 200, `${path}: ${res.body.slice(0, 200)}`);
  }
});

// --------------------------------------------------------------- metrics

test('refusals are counted in /metrics as changecast_refusals_total{reason=<code>}', async () => {
  const stack = await hsStack();
  const before = await A.refusals(stack.pushUrl);
  const good = mint(['shop.e1']);
  await sse(stack, 'shop.e1');
  await sse(stack, 'shop.e1', A.mintToken(A.makeSecret().file, ['shop.e1']));
  await sse(stack, 'shop.e1', A.hs256(secret.secret, A.claims({ ns: { 'shop.e1': {} }, exp: A.nowS() - 100 })));
  await sse(stack, 'shop.e2', good);
  await sse(stack, 'shop.e1', good, { headers: { Origin: 'https://evil.example' } });
  await assertWsClosed4003(stack, 'garbage', 'token_invalid');
  const delta = A.refusalsDelta(before, await A.refusals(stack.pushUrl));
  assert.deepEqual(delta, { token_missing: 1, token_invalid: 2, token_expired: 1, not_granted: 1, origin_not_allowed: 1 });
});

// ----------------------------------------------------- expiry and refresh

// All with ttl-4 s tokens and leeway 0, run side by side to keep the file short.
describe('expiry and refresh (auth.leeway_s 0)', { concurrency: true }, () => {
  before(() => (concurrent = true));
  after(() => {
    concurrent = false;
    A.closeAll();
  });

  test('an SSE stream ends with event: error {"code":"token_expired"} when its token expires', async () => {
    const stack = await shortStack();
    const token = mint(['shop.x1'], { ttl: 4 });
    const s = await sse(stack, 'shop.x1', token);
    assert.equal(s.status, 200, s.body);
    await assertDelivers(stack, 'shop.x1', s, 'before');
    await waitUntil(() => s.ended, 'the stream to end after its token expired');
    const errors = s.of('error');
    assert.equal(errors.length, 1, JSON.stringify(s.events.slice(-3)));
    assert.equal(errors[0].json?.code, 'token_expired');
    assert.ok(A.nowS() >= A.payloadOf(token).exp, 'not before exp');
    assert.equal(s.events.at(-1).type, 'error', 'nothing after the error');
  });

  test('a WebSocket is closed with 4001 token_expired when its token expires', async () => {
    const stack = await shortStack();
    const token = mint(['shop.x2'], { ttl: 4 });
    const ws = await wsWith(stack, token);
    assert.deepEqual(await ws.subscribe('s', 'shop.x2'), { type: 'subscribed', id: 's' });
    await assertDelivers(stack, 'shop.x2', ws, 'before');
    await ws.waitClosed('the socket to close after its token expired');
    assert.equal(ws.closed.code, 4001);
    assert.equal(ws.closed.reason, 'token_expired');
    assert.ok(A.nowS() >= A.payloadOf(token).exp, 'not before exp');
  });

  test('a WebSocket auth message before expiry is answered authenticated with the new exp; subscriptions go on past the old exp without a gap', async () => {
    const stack = await shortStack();
    const first = mint(['shop.x3'], { ttl: 4 });
    const ws = await wsWith(stack, first);
    assert.deepEqual(await ws.subscribe('s', 'shop.x3'), { type: 'subscribed', id: 's' });
    const c = coll(stack, 'shop.x3');
    let seq = 0;
    let refreshed = null;
    const oldExp = A.payloadOf(first).exp;
    // Writes go on before, across and after the refresh and the old exp.
    while (A.nowS() <= oldExp + 1 || seq < 10) {
      seq += 1;
      await c.insertOne({ _id: seq, seq });
      if (seq === 5) {
        const fresh = mint(['shop.x3'], { ttl: '1h' });
        refreshed = await ws.request({ type: 'auth', token: fresh }, ['authenticated', 'error']);
        assert.deepEqual(refreshed, { type: 'authenticated', expiresAt: A.payloadOf(fresh).exp });
      }
      await sleep(100);
    }
    await waitUntil(() => ws.changes('s').length >= seq || ws.closed, () => `${seq} changes (got ${ws.changes('s').length})`);
    assert.equal(ws.closed, null, `the socket stays open past the old exp (${JSON.stringify(ws.closed)})`);
    assert.deepEqual(ws.changes('s').map((m) => m.event.fullDocument.seq), range(1, seq), 'every change, once, in order');
    assert.ok(refreshed);
  });

  test('a refresh with a token that no longer grants a namespace ends that subscription with error not_granted; the others go on', async () => {
    const stack = await shortStack();
    const ws = await wsWith(stack, mint(['shop.x4', 'shop.x5'], { ttl: '1h' }));
    await ws.subscribe('keep', 'shop.x4');
    await ws.subscribe('lose', 'shop.x5');
    const answer = await ws.request({ type: 'auth', token: mint(['shop.x4'], { ttl: '1h' }) }, ['authenticated']);
    assert.equal(answer.type, 'authenticated');
    await waitUntil(() => ws.of('error', 'lose').length, 'error not_granted for the subscription the new token drops');
    assert.equal(ws.of('error', 'lose')[0].code, 'not_granted');
    await coll(stack, 'shop.x5').insertOne({ _id: 'dropped' });
    await assertDelivers(stack, 'shop.x4', ws, 'kept');
    assert.deepEqual(ws.changes().map((m) => m.id), ['keep']);
    // Its id is free again, and shop.x5 is refused now.
    assert.equal((await ws.subscribe('lose', 'shop.x5')).code, 'not_granted');
  });

  test('a WebSocket that never sends a token is closed with 4001 token_missing about 10 s after it opened', async () => {
    const stack = await shortStack();
    const opened = Date.now();
    const ws = await A.connectWs(stack.wsUrl);
    assert.ok(ws.opened);
    await ws.waitClosed('the tokenless socket to close');
    assert.deepEqual(ws.closed, { code: 4001, reason: 'token_missing' });
    assert.ok(Date.now() - opened >= 9000, `not before its 10 s (closed after ${Date.now() - opened} ms)`);
  });

  test('a refresh with a token that does not verify is answered error; the old token stays in force until it expires (then 4001)', async () => {
    const stack = await shortStack();
    const first = mint(['shop.x6'], { ttl: 4 });
    const ws = await wsWith(stack, first);
    await ws.subscribe('s', 'shop.x6');
    const bad = A.mintToken(A.makeSecret().file, ['shop.x6'], { ttl: '1h' });
    const answer = await ws.request({ type: 'auth', token: bad }, ['authenticated', 'error']);
    assert.equal(answer.type, 'error');
    assert.equal(answer.code, 'token_invalid');
    await assertDelivers(stack, 'shop.x6', ws, 'still');
    await ws.waitClosed('the socket to close at the old exp');
    assert.equal(ws.closed.code, 4001);
  });
});

// ------------------------------------------------------------ key reload

test('SIGHUP re-reads the key file: tokens of the new secret are accepted, of the old one refused; an unusable file keeps the keys in force', async () => {
  const dir = require('./support').tempDir('cc-auth-reload');
  const live = require('node:path').join(dir, 'secret');
  const first = A.makeSecret(dir);
  require('node:fs').copyFileSync(first.file, live);
  const stack = await push.startPush({ flags: A.jwtFlags({ secretFile: live }) });
  try {
    const token = (s) => A.hs256(s.secret, A.claims({ ns: { 'shop.r1': {} } }));
    assert.equal((await sse(stack, 'shop.r1', token(first))).status, 200);
    const second = A.makeSecret(dir);
    require('node:fs').copyFileSync(second.file, live);
    stack.changecast.proc.kill('SIGHUP');
    await stack.changecast.waitFor(/event=reloaded what=auth/);
    assert.equal((await sse(stack, 'shop.r1', token(second))).status, 200, 'the new secret');
    assertRefused(await sse(stack, 'shop.r1', token(first)), 401, 'token_invalid', 'the old secret');
    // Too short to be a secret: refused, and the second secret stays.
    require('node:fs').writeFileSync(live, 'short\n');
    stack.changecast.proc.kill('SIGHUP');
    await stack.changecast.waitFor(/event=reload_failed what=auth/);
    assert.equal((await sse(stack, 'shop.r1', token(second))).status, 200, 'the keys in force stay');
  } finally {
    A.closeAll();
    await stack.stop();
  }
});

// ------------------------------------------------------ start-up checks

function checkConfig(args) {
  try {
    const stdout = execFileSync(CHANGECAST, ['--check-config', '--changes.expose', 'shop.*', ...args], { stdio: 'pipe', encoding: 'utf8' });
    return { status: 0, output: stdout };
  } catch (err) {
    return { status: err.status, output: `${err.stdout}${err.stderr}` };
  }
}

test('auth.mode none is refused at start-up on a non-loopback push.listen unless auth.allow_anonymous_public (checked by --check-config)', () => {
  const refused = checkConfig(['--auth.mode', 'none', '--push.listen', '0.0.0.0:8080']);
  assert.equal(refused.status, 2, refused.output);
  assert.match(refused.output, /allow_anonymous_public/);
  const publicOk = checkConfig(['--auth.mode', 'none', '--push.listen', '0.0.0.0:8080', '--auth.allow_anonymous_public', 'on']);
  assert.equal(publicOk.status, 0, publicOk.output);
  for (const listen of ['127.0.0.1:8080', '127.0.0.2:8080', '[::1]:8080', 'localhost:8080']) {
    const loopback = checkConfig(['--auth.mode', 'none', '--push.listen', listen]);
    assert.equal(loopback.status, 0, `${listen}: ${loopback.output}`);
  }
  for (const listen of ['[::]:8080', '10.1.2.3:8080']) {
    const open = checkConfig(['--auth.mode', 'none', '--push.listen', listen]);
    assert.equal(open.status, 2, `${listen}: ${open.output}`);
  }
  // --check-config runs the same checks as start-up, before anything binds (src/main.c).
});

test('jwt mode needs exactly one key source (checked by --check-config)', () => {
  const none = checkConfig(['--auth.mode', 'jwt', '--push.listen', '127.0.0.1:8080']);
  assert.equal(none.status, 2, none.output);
  const two = checkConfig(['--auth.mode', 'jwt', '--push.listen', '127.0.0.1:8080', '--auth.jwt_secret_file', secret.file, '--auth.jwt_public_key_file', rsa.file]);
  assert.equal(two.status, 2, two.output);
  const one = checkConfig(['--auth.mode', 'jwt', '--push.listen', '127.0.0.1:8080', '--auth.jwt_secret_file', secret.file]);
  assert.equal(one.status, 0, one.output);
});
