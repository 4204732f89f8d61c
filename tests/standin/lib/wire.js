// SPDX-License-Identifier: Apache-2.0
// MongoDB wire protocol codec for the stand-in: a frame reader fed bytes that
// yields whole messages (no I/O here), decoders for OP_MSG, OP_QUERY and
// OP_COMPRESSED, and encoders for OP_MSG, OP_REPLY and OP_COMPRESSED replies.
// Follows the "MongoDB Wire Protocol" reference and the OP_MSG and
// OP_COMPRESSED driver specifications (message-framing is little-endian:
// messageLength, requestID, responseTo, opCode).
'use strict';
const zlib = require('zlib');
const BSON = require('bson');

const OP_REPLY = 1;
const OP_QUERY = 2004;
const OP_COMPRESSED = 2012;
const OP_MSG = 2013;

// OP_MSG flag bits (OP_MSG spec, "flagBits").
const MSG_CHECKSUM_PRESENT = 1 << 0;
const MSG_MORE_TO_COME = 1 << 1;
const MSG_EXHAUST_ALLOWED = 1 << 16;

// OP_REPLY responseFlags: AwaitCapable is always set by modern servers.
const REPLY_QUERY_FAILURE = 1 << 1;
const REPLY_AWAIT_CAPABLE = 1 << 3;

// OP_COMPRESSED compressor ids (compression spec).
const COMPRESSOR_IDS = { noop: 0, snappy: 1, zlib: 2, zstd: 3 };
const COMPRESSOR_NAMES = { 0: 'noop', 1: 'snappy', 2: 'zlib', 3: 'zstd' };
const SUPPORTED_COMPRESSORS = ['zlib', 'noop'];

const HEADER_BYTES = 16;
const MAX_MESSAGE_BYTES = 48000000; // maxMessageSizeBytes as hello reports it

// Documents in commands keep int64 values that do not fit a double as Long
// (cursor ids); smaller ones become plain numbers, as drivers expect.
const DESERIALIZE_OPTIONS = { promoteLongs: true, promoteValues: true, promoteBuffers: false };

class WireError extends Error {}

// Accumulates bytes from a socket and yields complete frames
// {requestID, responseTo, opCode, payload} where payload excludes the header.
class FrameReader {
  constructor(maxBytes = MAX_MESSAGE_BYTES) {
    this.maxBytes = maxBytes;
    this.chunks = [];
    this.buffered = 0;
  }

  push(chunk) {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  // Returns the next frame or null when more bytes are needed. Throws
  // WireError on a length the protocol forbids (caller closes the socket).
  next() {
    if (this.buffered < 4) return null;
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    const buf = this.chunks[0];
    const length = buf.readInt32LE(0);
    if (length < HEADER_BYTES || length > this.maxBytes) {
      throw new WireError(`message length ${length} outside [${HEADER_BYTES}, ${this.maxBytes}]`);
    }
    if (this.buffered < length) return null;
    const frame = {
      requestID: buf.readInt32LE(4),
      responseTo: buf.readInt32LE(8),
      opCode: buf.readInt32LE(12),
      payload: buf.subarray(HEADER_BYTES, length),
    };
    const rest = buf.subarray(length);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return frame;
  }
}

// CRC-32C (Castagnoli), used by the OP_MSG checksum (OP_MSG spec, "Checksum").
const CRC32C_TABLE = (() => {
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[i] = c;
  }
  return table;
})();

function crc32c(buf) {
  let crc = -1;
  for (let i = 0; i < buf.length; i++) crc = CRC32C_TABLE[(crc ^ buf[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

function readCString(buf, offset) {
  const end = buf.indexOf(0, offset);
  if (end < 0) throw new WireError('unterminated cstring');
  return { value: buf.toString('utf8', offset, end), next: end + 1 };
}

function readDocument(buf, offset) {
  if (offset + 5 > buf.length) throw new WireError('truncated BSON document');
  const size = buf.readInt32LE(offset);
  if (size < 5 || offset + size > buf.length) throw new WireError(`bad BSON document size ${size}`);
  return { doc: BSON.deserialize(buf.subarray(offset, offset + size), DESERIALIZE_OPTIONS), next: offset + size };
}

// OP_MSG: flagBits, then sections; kind 0 is the body, kind 1 a document
// sequence {identifier, documents} that belongs to the body under that name.
function decodeOpMsg(payload, header) {
  const flags = payload.readUInt32LE(0);
  let end = payload.length;
  if (flags & MSG_CHECKSUM_PRESENT) {
    end -= 4;
    const expected = payload.readUInt32LE(end);
    const whole = Buffer.concat([header, payload.subarray(0, end)]);
    if (crc32c(whole) !== expected) throw new WireError('OP_MSG checksum mismatch');
  }
  // Bits 2-15 are required bits: a server must reject unknown ones.
  if (flags & 0xfffc) throw new WireError(`OP_MSG has unknown required flag bits ${flags & 0xfffc}`);
  let offset = 4;
  let body = null;
  const sequences = [];
  while (offset < end) {
    const kind = payload[offset++];
    if (kind === 0) {
      if (body) throw new WireError('OP_MSG has more than one body section');
      const r = readDocument(payload, offset);
      body = r.doc;
      offset = r.next;
    } else if (kind === 1) {
      const size = payload.readInt32LE(offset);
      const sectionEnd = offset + size;
      if (size < 5 || sectionEnd > end) throw new WireError(`bad document sequence size ${size}`);
      const id = readCString(payload, offset + 4);
      const documents = [];
      let p = id.next;
      while (p < sectionEnd) {
        const r = readDocument(payload, p);
        documents.push(r.doc);
        p = r.next;
      }
      sequences.push({ identifier: id.value, documents });
      offset = sectionEnd;
    } else {
      throw new WireError(`OP_MSG section kind ${kind} unknown`);
    }
  }
  if (!body) throw new WireError('OP_MSG without a body section');
  return { flags, body, sequences };
}

// OP_QUERY (legacy): only used by old drivers for the isMaster handshake.
function decodeOpQuery(payload) {
  const flags = payload.readInt32LE(0);
  const ns = readCString(payload, 4);
  const numberToSkip = payload.readInt32LE(ns.next);
  const numberToReturn = payload.readInt32LE(ns.next + 4);
  const q = readDocument(payload, ns.next + 8);
  return { flags, fullCollectionName: ns.value, numberToSkip, numberToReturn, query: q.doc };
}

function decompress(compressorId, data, uncompressedSize) {
  let out;
  if (compressorId === COMPRESSOR_IDS.noop) out = data;
  else if (compressorId === COMPRESSOR_IDS.zlib) out = zlib.inflateSync(data);
  else throw new WireError(`compressor ${COMPRESSOR_NAMES[compressorId] || compressorId} not supported`);
  if (out.length !== uncompressedSize) {
    throw new WireError(`decompressed ${out.length} bytes, header said ${uncompressedSize}`);
  }
  return out;
}

// Decodes a frame into {opCode, requestID, responseTo, compressor, ...}:
// OP_MSG adds {flags, body, sequences}; OP_QUERY adds the query fields.
// OP_COMPRESSED is unwrapped and the inner message decoded; `compressor`
// then names the compressor the reply must use (compression spec: "the
// server replies with the same compressor the client used").
function decodeFrame(frame) {
  let { opCode, payload } = frame;
  let compressor = null;
  if (opCode === OP_COMPRESSED) {
    const originalOpcode = payload.readInt32LE(0);
    const uncompressedSize = payload.readInt32LE(4);
    const compressorId = payload[8];
    payload = decompress(compressorId, payload.subarray(9), uncompressedSize);
    compressor = COMPRESSOR_NAMES[compressorId];
    opCode = originalOpcode;
  }
  const msg = { opCode, requestID: frame.requestID, responseTo: frame.responseTo, compressor };
  if (opCode === OP_MSG) {
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeInt32LE(HEADER_BYTES + payload.length, 0);
    header.writeInt32LE(frame.requestID, 4);
    header.writeInt32LE(frame.responseTo, 8);
    header.writeInt32LE(OP_MSG, 12);
    Object.assign(msg, decodeOpMsg(payload, header));
  } else if (opCode === OP_QUERY) {
    Object.assign(msg, decodeOpQuery(payload));
  }
  return msg;
}

function header(length, requestID, responseTo, opCode) {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeInt32LE(length, 0);
  h.writeInt32LE(requestID, 4);
  h.writeInt32LE(responseTo, 8);
  h.writeInt32LE(opCode, 12);
  return h;
}

function wrap(opCode, body, requestID, responseTo, compressor) {
  if (!compressor) return Buffer.concat([header(HEADER_BYTES + body.length, requestID, responseTo, opCode), body]);
  const compressed = compressor === 'zlib' ? zlib.deflateSync(body) : body;
  const pre = Buffer.allocUnsafe(9);
  pre.writeInt32LE(opCode, 0);
  pre.writeInt32LE(body.length, 4);
  pre[8] = COMPRESSOR_IDS[compressor];
  const length = HEADER_BYTES + 9 + compressed.length;
  return Buffer.concat([header(length, requestID, responseTo, OP_COMPRESSED), pre, compressed]);
}

function encodeOpMsg(doc, { requestID, responseTo, moreToCome = false, compressor = null }) {
  const bson = BSON.serialize(doc);
  const flags = Buffer.allocUnsafe(5);
  flags.writeUInt32LE(moreToCome ? MSG_MORE_TO_COME : 0, 0);
  flags[4] = 0; // section kind 0: body
  return wrap(OP_MSG, Buffer.concat([flags, bson]), requestID, responseTo, compressor);
}

function encodeOpReply(doc, { requestID, responseTo, queryFailure = false, compressor = null }) {
  const bson = BSON.serialize(doc);
  const fixed = Buffer.alloc(20);
  fixed.writeInt32LE(REPLY_AWAIT_CAPABLE | (queryFailure ? REPLY_QUERY_FAILURE : 0), 0);
  // cursorID (int64) 0, startingFrom 0, numberReturned 1
  fixed.writeInt32LE(0, 12);
  fixed.writeInt32LE(1, 16);
  return wrap(OP_REPLY, Buffer.concat([fixed, bson]), requestID, responseTo, compressor);
}

// Client-side encoders, used by the stand-in's own tests to speak raw wire.
function encodeOpMsgRequest(doc, { requestID, flags = 0, sequences = [], checksum = false, compressor = null }) {
  const parts = [Buffer.alloc(4), Buffer.from([0]), BSON.serialize(doc)];
  for (const seq of sequences) {
    const docs = seq.documents.map((d) => BSON.serialize(d));
    const id = Buffer.from(seq.identifier + '\0', 'utf8');
    const size = Buffer.alloc(4);
    size.writeInt32LE(4 + id.length + docs.reduce((n, d) => n + d.length, 0), 0);
    parts.push(Buffer.from([1]), size, id, ...docs);
  }
  parts[0].writeUInt32LE(flags | (checksum ? MSG_CHECKSUM_PRESENT : 0), 0);
  let body = Buffer.concat(parts);
  if (checksum) {
    const h = header(HEADER_BYTES + body.length + 4, requestID, 0, OP_MSG);
    const sum = Buffer.alloc(4);
    sum.writeUInt32LE(crc32c(Buffer.concat([h, body])), 0);
    body = Buffer.concat([body, sum]);
  }
  return wrap(OP_MSG, body, requestID, 0, compressor);
}

function encodeOpQueryRequest(ns, doc, { requestID, numberToReturn = -1 }) {
  const nsBuf = Buffer.from(ns + '\0', 'utf8');
  const fixed = Buffer.alloc(8);
  fixed.writeInt32LE(0, 0);
  fixed.writeInt32LE(numberToReturn, 4);
  const body = Buffer.concat([Buffer.alloc(4), nsBuf, fixed, BSON.serialize(doc)]);
  return wrap(OP_QUERY, body, requestID, 0, null);
}

// Decodes a reply frame (OP_MSG or OP_REPLY, possibly compressed) into
// {opCode, flags, doc, requestID, responseTo}; for tests.
function decodeReply(frame) {
  let { opCode, payload } = frame;
  let compressor = null;
  if (opCode === OP_COMPRESSED) {
    const inner = payload.readInt32LE(0);
    compressor = COMPRESSOR_NAMES[payload[8]];
    payload = decompress(payload[8], payload.subarray(9), payload.readInt32LE(4));
    opCode = inner;
  }
  if (opCode === OP_REPLY) {
    return { opCode, flags: payload.readInt32LE(0), doc: readDocument(payload, 20).doc, requestID: frame.requestID, responseTo: frame.responseTo, compressor };
  }
  const flags = payload.readUInt32LE(0);
  return { opCode, flags, doc: readDocument(payload, 5).doc, requestID: frame.requestID, responseTo: frame.responseTo, compressor };
}

module.exports = {
  OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG,
  MSG_CHECKSUM_PRESENT, MSG_MORE_TO_COME, MSG_EXHAUST_ALLOWED,
  SUPPORTED_COMPRESSORS, MAX_MESSAGE_BYTES,
  WireError, FrameReader, crc32c,
  decodeFrame, encodeOpMsg, encodeOpReply,
  encodeOpMsgRequest, encodeOpQueryRequest, decodeReply,
};
