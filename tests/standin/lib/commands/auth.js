// SPDX-License-Identifier: Apache-2.0
// SCRAM-SHA-1 and SCRAM-SHA-256 server side (RFC 5802, RFC 7677) through
// saslStart/saslContinue, as the driver authentication spec describes the
// conversation with mongod:
//   saslStart {mechanism, payload: "n,,n=user,r=<client nonce>"}
//     -> {conversationId, done: false, payload: "r=<nonce>,s=<salt>,i=<n>"}
//   saslContinue {payload: "c=biws,r=<nonce>,p=<proof>"}
//     -> {done: true (skipEmptyExchange) | false, payload: "v=<signature>"}
//   [saslContinue {payload: ""} -> {done: true, payload: ""}]
// SCRAM-SHA-1 hashes the MongoDB password digest md5("user:mongo:pass");
// SCRAM-SHA-256 uses the password itself (SASLprep is the identity for
// ASCII passwords, the only ones the stand-in accepts).
'use strict';
const crypto = require('crypto');
const { Binary } = require('bson');
const { MongoError } = require('../errors');

const MECHANISMS = {
  'SCRAM-SHA-1': { hash: 'sha1', bytes: 20, iterations: 10000 },
  'SCRAM-SHA-256': { hash: 'sha256', bytes: 32, iterations: 15000 },
};

function authFailed() {
  return new MongoError(18, 'AuthenticationFailed', 'Authentication failed.');
}

function hmac(hash, key, data) {
  return crypto.createHmac(hash, key).update(data).digest();
}

function h(hash, data) {
  return crypto.createHash(hash).update(data).digest();
}

// Users from --auth user:pass, defined in the admin database with the root
// role. Salted passwords are derived once, at start-up.
class Users {
  constructor(spec) {
    this.users = new Map(); // "db.user" -> {user, db, creds: {mech -> {salt, saltedPassword}}}
    if (!spec) return;
    const i = spec.indexOf(':');
    const user = spec.slice(0, i);
    const pass = spec.slice(i + 1);
    const creds = {};
    for (const [mech, m] of Object.entries(MECHANISMS)) {
      const salt = crypto.randomBytes(mech === 'SCRAM-SHA-1' ? 16 : 28);
      const secret = mech === 'SCRAM-SHA-1' ? crypto.createHash('md5').update(`${user}:mongo:${pass}`).digest('hex') : pass;
      creds[mech] = { salt, saltedPassword: crypto.pbkdf2Sync(secret, salt, m.iterations, m.bytes, m.hash) };
    }
    this.users.set(`admin.${user}`, { user, db: 'admin', creds });
  }

  get enabled() {
    return this.users.size > 0;
  }

  find(db, user) {
    return this.users.get(`${db}.${user}`) || null;
  }

  // hello's saslSupportedMechs: "db.user"
  mechanismsFor(dbUser) {
    return this.users.has(dbUser) ? Object.keys(MECHANISMS) : null;
  }
}

function parseAttributes(text) {
  const out = {};
  for (const part of text.split(',')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

function payloadText(p) {
  if (p instanceof Binary) return Buffer.from(p.buffer).toString('utf8');
  if (typeof p === 'string') return p;
  if (Buffer.isBuffer(p)) return p.toString('utf8');
  return '';
}

function reply(conversationId, done, text) {
  return { conversationId, done, payload: new Binary(Buffer.from(text, 'utf8')) };
}

// saslStart: checks the mechanism and user, answers the server-first message.
function saslStart(req) {
  const { cmd, conn, ctx, db } = req;
  const mech = MECHANISMS[cmd.mechanism];
  if (!mech) {
    throw new MongoError(334, 'MechanismUnavailable', `Received authentication for mechanism ${cmd.mechanism} which is not enabled`);
  }
  const clientFirst = payloadText(cmd.payload);
  if (!clientFirst.startsWith('n,')) throw authFailed();
  const bare = clientFirst.slice(clientFirst.indexOf(',', 2) + 1);
  const attrs = parseAttributes(bare);
  const username = (attrs.n || '').replace(/=2C/g, ',').replace(/=3D/g, '=');
  const user = ctx.users.find(db, username);
  if (!user || !attrs.r) {
    // mongod answers an unknown user only once the proof arrives; failing
    // here is what drivers see too (an AuthenticationFailed reply).
    throw authFailed();
  }
  const { salt } = user.creds[cmd.mechanism];
  const nonce = attrs.r + crypto.randomBytes(24).toString('base64');
  const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${mech.iterations}`;
  conn.sasl = {
    mechanism: cmd.mechanism, user, clientFirstBare: bare, serverFirst, nonce, step: 1,
    skipEmptyExchange: !!(cmd.options && cmd.options.skipEmptyExchange),
  };
  return reply(1, false, serverFirst);
}

function saslContinue(req) {
  const { cmd, conn } = req;
  const s = conn.sasl;
  if (!s || cmd.conversationId !== 1) {
    throw new MongoError(17, 'ProtocolError', 'No SASL session state found');
  }
  if (s.step === 2) {
    conn.sasl = null;
    return reply(1, true, '');
  }
  const mech = MECHANISMS[s.mechanism];
  const clientFinal = payloadText(cmd.payload);
  const attrs = parseAttributes(clientFinal);
  const withoutProof = clientFinal.slice(0, clientFinal.lastIndexOf(',p='));
  if (attrs.r !== s.nonce || !attrs.p) {
    conn.sasl = null;
    throw authFailed();
  }
  const { saltedPassword } = s.user.creds[s.mechanism];
  const authMessage = `${s.clientFirstBare},${s.serverFirst},${withoutProof}`;
  const clientKey = hmac(mech.hash, saltedPassword, 'Client Key');
  const storedKey = h(mech.hash, clientKey);
  const clientSignature = hmac(mech.hash, storedKey, authMessage);
  const proof = Buffer.from(attrs.p, 'base64');
  const expected = Buffer.alloc(clientKey.length);
  for (let i = 0; i < clientKey.length; i++) expected[i] = clientKey[i] ^ clientSignature[i];
  if (proof.length !== expected.length || !crypto.timingSafeEqual(proof, expected)) {
    conn.sasl = null;
    throw authFailed();
  }
  const serverKey = hmac(mech.hash, saltedPassword, 'Server Key');
  const serverSignature = hmac(mech.hash, serverKey, authMessage).toString('base64');
  conn.user = { user: s.user.user, db: s.user.db };
  if (s.skipEmptyExchange) {
    conn.sasl = null;
    return reply(1, true, `v=${serverSignature}`);
  }
  s.step = 2;
  return reply(1, false, `v=${serverSignature}`);
}

function logout(req) {
  req.conn.user = null;
  return {};
}

// hello's speculativeAuthenticate: the saslStart it carries, run inline
// (authentication spec, "Speculative Authentication"). A failure leaves the
// field out and the driver falls back to a normal conversation.
function speculativeSaslStart(req, embedded) {
  try {
    return saslStart({ ...req, cmd: embedded, db: embedded.db || 'admin' });
  } catch (e) {
    if (e instanceof MongoError) return null;
    throw e;
  }
}

module.exports = { Users, MECHANISMS, speculativeSaslStart, commands: { saslStart, saslContinue, logout } };
