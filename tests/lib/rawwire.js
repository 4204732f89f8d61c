// SPDX-License-Identifier: Apache-2.0
// A raw MongoDB wire-protocol client for tests that must see exact frames
// (flags, responseTo, OP_REPLY, OP_COMPRESSED), which drivers hide.
'use strict';
const net = require('net');
const wire = require('../standin/lib/wire');

class RawClient {
  // localAddress: another 127.x address, to count as another client.
  static connect(port, host = '127.0.0.1', { localAddress } = {}) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host, localAddress }, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.reader = new wire.FrameReader();
    this.replies = [];
    this.waiters = [];
    this.closed = false;
    this.nextId = 1;
    socket.on('data', (d) => {
      this.reader.push(d);
      for (let f = this.reader.next(); f; f = this.reader.next()) {
        const r = wire.decodeReply(f);
        const w = this.waiters.shift();
        if (w) w.resolve(r);
        else this.replies.push(r);
      }
    });
    this.closedAt = null;
    socket.on('close', () => {
      this.closed = true;
      this.closedAt = Date.now();
      for (const w of this.waiters.splice(0)) w.reject(new Error('connection closed'));
    });
    socket.on('error', () => {});
  }

  // Next reply frame, or rejects after timeoutMs / on close.
  next(timeoutMs = 5000) {
    if (this.replies.length) return Promise.resolve(this.replies.shift());
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const w = { resolve: (r) => { clearTimeout(t); resolve(r); }, reject: (e) => { clearTimeout(t); reject(e); } };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  // Sends an OP_MSG; options: flags, sequences, checksum, compressor.
  send(doc, options = {}) {
    const requestID = this.nextId++;
    this.socket.write(wire.encodeOpMsgRequest(doc, { requestID, ...options }));
    return requestID;
  }

  // The first `bytes` of an OP_MSG, as a client that stalls mid-message sends.
  sendPart(doc, bytes) {
    this.socket.write(wire.encodeOpMsgRequest(doc, { requestID: this.nextId++ }).subarray(0, bytes));
  }

  async command(doc, options = {}) {
    const requestID = this.send(doc, options);
    const r = await this.next(options.timeoutMs);
    r.requestTo = requestID;
    return r;
  }

  sendQuery(ns, doc) {
    const requestID = this.nextId++;
    this.socket.write(wire.encodeOpQueryRequest(ns, doc, { requestID }));
    return requestID;
  }

  close() {
    this.socket.destroy();
  }
}

module.exports = { RawClient };
