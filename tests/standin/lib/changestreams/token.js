// SPDX-License-Identifier: Apache-2.0
// Change-stream resume tokens, encoded the way MongoDB 6.0+ encodes them: the
// `_data` string is the upper-case hex of a KeyString (V1) of the tuple
//   (clusterTime, version=2, tokenType, txnOpIndex, fromInvalidate, uuid|null,
//    eventIdentifier)
// (server: src/mongo/db/pipeline/resume_token.cpp, "We encode the resume token
// as a KeyString with the sequence ..."). KeyString is memcmp-ordered, so two
// `_data` strings compare lexicographically in stream order: by clusterTime,
// then high-water-mark (tokenType 0) before events (128), then txnOpIndex,
// then the event before its invalidate. Clients such as changecast may rely
// on that, as they may on MongoDB.
//
// Only the prefix up to the uuid is ever decoded: it is unique per event in
// the stand-in. The eventIdentifier is encoded for realism (and so that a
// token from another stream's namespace is told apart) with a subset of the
// KeyString value encodings; see CHANGESTREAMS.md for where it departs.
'use strict';
const { MongoError } = require('../errors');

const TOKEN_VERSION = 2;
const TYPE_HWM = 0; // ResumeTokenData::kHighWaterMarkToken
const TYPE_EVENT = 128; // ResumeTokenData::kEventToken

// KeyString CType bytes (src/mongo/db/storage/key_string.cpp).
const CT = {
  minKey: 0x0a, undefined: 0x0f, nullish: 0x14,
  numericZero: 0x29, numericPos1: 0x2b, numericPosLarge: 0x33, numericNeg1: 0x27,
  numericNegLarge: 0x1f,
  string: 0x3c, object: 0x46, array: 0x50, binData: 0x5a, oid: 0x64,
  boolFalse: 0x6e, boolTrue: 0x6f, date: 0x78, timestamp: 0x82, maxKey: 0xf0,
  end: 0x04,
};

// ---- encoding -------------------------------------------------------------

function u32(n) {
  return (n >>> 0).toString(16).padStart(8, '0');
}

function bytesHex(bytes) {
  return Buffer.from(bytes).toString('hex');
}

// Non-negative or negative integer as KeyString stores integral numbers: the
// magnitude shifted left one bit (the low bit flags a fractional part), in the
// fewest big-endian bytes, the byte count folded into the CType; negative
// values have their bytes inverted so that they sort below.
function encodeInteger(v) {
  let big = BigInt(v);
  if (big === 0n) return CT.numericZero.toString(16);
  const negative = big < 0n;
  if (negative) big = -big;
  let shifted = big << 1n;
  const bytes = [];
  while (shifted > 0n) {
    bytes.unshift(Number(shifted & 0xffn));
    shifted >>= 8n;
  }
  if (bytes.length > 8) return encodeDouble(Number(v));
  if (!negative) return (CT.numericPos1 + bytes.length - 1).toString(16) + bytesHex(bytes);
  return (CT.numericNeg1 - (bytes.length - 1)).toString(16) + bytesHex(bytes.map((b) => 0xff & ~b));
}

// Non-integral doubles: stored as the IEEE bits behind the large-magnitude
// CType. Ordered among themselves, not byte-identical to MongoDB (departure).
function encodeDouble(d) {
  const buf = Buffer.alloc(8);
  buf.writeDoubleBE(Math.abs(d));
  if (d >= 0) return CT.numericPosLarge.toString(16) + buf.toString('hex');
  return CT.numericNegLarge.toString(16) + Buffer.from(buf.map((b) => 0xff & ~b)).toString('hex');
}

// Strings and field names: UTF-8 with NUL escaped as 00 FF, then a 00.
function encodeCString(s) {
  const raw = Buffer.from(String(s), 'utf8');
  let out = '';
  for (const b of raw) out += b === 0 ? '00ff' : b.toString(16).padStart(2, '0');
  return out + '00';
}

function uuidBytes(uuid) {
  if (uuid == null) return null;
  if (typeof uuid === 'string') return Buffer.from(uuid.replace(/-/g, ''), 'hex');
  if (uuid.buffer instanceof Uint8Array) return Buffer.from(uuid.buffer).subarray(0, 16);
  if (uuid instanceof Uint8Array) return Buffer.from(uuid);
  return null;
}

function encodeBinData(bytes, subtype) {
  const len = bytes.length;
  const size = len < 0xff ? len.toString(16).padStart(2, '0') : 'ff' + u32(len);
  return CT.binData.toString(16) + size + subtype.toString(16).padStart(2, '0') + bytesHex(bytes);
}

// One value with its CType byte first (KeyString's _appendBsonValue).
function encodeValue(v) {
  if (v === null) return CT.nullish.toString(16);
  if (v === undefined) return CT.undefined.toString(16);
  switch (typeof v) {
    case 'string': return CT.string.toString(16) + encodeCString(v);
    case 'boolean': return (v ? CT.boolTrue : CT.boolFalse).toString(16);
    case 'bigint': return encodeInteger(v);
    case 'number': return Number.isInteger(v) ? encodeInteger(v) : encodeDouble(v);
    default: break;
  }
  if (v instanceof Date) {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64BE(BigInt(v.getTime()));
    buf[0] ^= 0x80; // flip the sign bit so that negative dates sort first
    return CT.date.toString(16) + buf.toString('hex');
  }
  if (Array.isArray(v)) return CT.array.toString(16) + v.map(encodeValue).join('') + '00';
  switch (v._bsontype) {
    case 'ObjectId': return CT.oid.toString(16) + v.toHexString();
    case 'Long': return encodeInteger(BigInt(v.toString()));
    case 'Int32': case 'Double': return encodeValue(v.valueOf());
    case 'Timestamp': return CT.timestamp.toString(16) + u32(v.t) + u32(v.i);
    case 'Binary': return encodeBinData(Buffer.from(v.buffer).subarray(0, v.position), v.sub_type);
    case 'MinKey': return CT.minKey.toString(16);
    case 'MaxKey': return CT.maxKey.toString(16);
    case undefined: break;
    default: return encodeValue(String(v)); // Decimal128, regex, code: departure
  }
  return CT.object.toString(16) + encodeObjectBody(v);
}

// Object body: (CType, field name, value)* then 00.
function encodeObjectBody(obj) {
  let out = '';
  for (const [k, val] of Object.entries(obj)) {
    if (val === undefined) continue;
    const enc = encodeValue(val);
    out += enc.slice(0, 2) + encodeCString(k) + enc;
  }
  return out + '00';
}

// The resume token of an event. `ts` is a bson Timestamp; `eventIdentifier`
// is {operationType, documentKey} or {operationType, operationDescription}
// (resume_token.cpp, ResumeTokenData constructor, v2 tokens).
function makeEventToken({ ts, txnOpIndex = 0, fromInvalidate = false, uuid = null, eventIdentifier }) {
  const u = uuidBytes(uuid);
  const hex =
    CT.timestamp.toString(16) + u32(ts.t) + u32(ts.i) +
    encodeInteger(TOKEN_VERSION) + encodeInteger(TYPE_EVENT) + encodeInteger(txnOpIndex) +
    (fromInvalidate ? CT.boolTrue : CT.boolFalse).toString(16) +
    (u ? encodeBinData(u, 4) : CT.nullish.toString(16)) +
    encodeValue(eventIdentifier) +
    '04';
  return { _data: hex.toUpperCase() };
}

// A high-water-mark token: "every event before clusterTime `ts` was seen".
// It sorts before any event token of the same clusterTime.
function makeHighWaterMarkToken(ts) {
  const hex =
    CT.timestamp.toString(16) + u32(ts.t) + u32(ts.i) +
    encodeInteger(TOKEN_VERSION) + encodeInteger(TYPE_HWM) + encodeInteger(0) +
    CT.boolFalse.toString(16) + CT.nullish.toString(16) + '04';
  return { _data: hex.toUpperCase() };
}

// ---- decoding -------------------------------------------------------------

function badToken(msg, code = 50811, codeName = 'Location50811') {
  return new MongoError(code, codeName, msg);
}

// Reads one non-negative integer at `pos` of `buf`; returns [value, nextPos].
function readInteger(buf, pos) {
  const ct = buf[pos];
  if (ct === CT.numericZero) return [0, pos + 1];
  const n = ct - CT.numericPos1 + 1;
  if (n < 1 || n > 8 || pos + 1 + n > buf.length) throw badToken('invalid resume token: bad integer');
  let v = 0n;
  for (let k = 0; k < n; k++) v = (v << 8n) | BigInt(buf[pos + 1 + k]);
  return [Number(v >> 1n), pos + 1 + n];
}

// Accepts the user's {_data[, _typeBits]} and returns the decoded prefix plus
// the normalised hex; throws MongoDB's errors for malformed tokens
// (resume_token.cpp: ResumeToken(const Document&) and getData()).
function decodeToken(tokenDoc) {
  const data = tokenDoc && tokenDoc._data;
  if (typeof data !== 'string') {
    throw new MongoError(40647, 'Location40647',
      `Bad resume token: _data of missing or of wrong type. Expected string, got ${shortJson(tokenDoc)}`);
  }
  if (data.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(data)) {
    throw new MongoError(9, 'FailedToParse', 'resume token string was not a valid hex string');
  }
  const buf = Buffer.from(data, 'hex');
  if (buf.length === 0) throw new MongoError(40649, 'Location40649', 'invalid empty resume token');
  if (buf[0] !== CT.timestamp || buf.length < 9) {
    throw badToken('invalid resume token: expected a clusterTime');
  }
  const t = buf.readUInt32BE(1);
  const i = buf.readUInt32BE(5);
  let pos = 9;
  let version;
  [version, pos] = readInteger(buf, pos);
  if (version !== 1 && version !== 2) {
    throw new MongoError(50795, 'Location50795', 'Invalid Resume Token: only supports version 0, 1 and 2');
  }
  let tokenType;
  [tokenType, pos] = readInteger(buf, pos);
  if (tokenType !== TYPE_EVENT && tokenType !== TYPE_HWM) {
    throw new MongoError(51057, 'Location51057', `Token type ${tokenType} not recognized`);
  }
  let txnOpIndex;
  [txnOpIndex, pos] = readInteger(buf, pos);
  if (buf[pos] !== CT.boolFalse && buf[pos] !== CT.boolTrue) {
    throw new MongoError(50872, 'Location50872', 'Resume Token does not contain fromInvalidate');
  }
  const fromInvalidate = buf[pos] === CT.boolTrue;
  return {
    hex: data.toUpperCase(),
    t, i, version, txnOpIndex, fromInvalidate,
    isHighWaterMark: tokenType === TYPE_HWM,
  };
}

function shortJson(v) {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

module.exports = { makeEventToken, makeHighWaterMarkToken, decodeToken, encodeValue };
