// SPDX-License-Identifier: Apache-2.0
// One client connection: reads frames, runs its requests one at a time in
// arrival order (as mongod does per connection; a blocked or awaiting
// request holds up only its own connection), writes replies, and streams
// exhaust replies:
// - OP_MSG with moreToCome from the client (w:0 writes) gets no reply;
// - OP_MSG with exhaustAllowed for an awaitable hello, or for a getMore whose
//   cursor stays open, is answered with moreToCome and the server keeps
//   answering (each reply's responseTo = the previous reply's requestID)
//   until a reply without moreToCome or the connection closes (OP_MSG spec,
//   "exhaustAllowed"; server-monitoring spec, "Streaming Protocol").
// - OP_QUERY on <db>.$cmd is accepted only for hello/isMaster, answered with
//   OP_REPLY, as mongod 6.0+ does after the legacy opcodes' removal.
'use strict';
const { Long } = require('bson');
const wire = require('./wire');
const { CloseConnection } = require('./dispatch');
const { codeName } = require('./codes');

let nextRequestId = 1;
function requestId() {
  nextRequestId = (nextRequestId + 1) | 0 || 1;
  return nextRequestId;
}

class Connection {
  constructor(server, socket, id) {
    this.server = server;
    this.socket = socket;
    this.id = id;
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort;
    this.closed = false;
    this.helloSeen = false;
    this.appName = undefined;
    this.user = null;
    this.sasl = null;
    this.compressors = [];
    this.closeHandlers = new Set();
    this.reader = new wire.FrameReader();
    this.queue = [];
    this.busy = false;
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', () => this.close('socket_error'));
    socket.on('close', () => this.close('peer_closed'));
  }

  // Registers fn to run when the connection closes; returns an unregister
  // function. A waiting getMore or awaitable hello uses it to stop early.
  onClose(fn) {
    if (this.closed) {
      queueMicrotask(fn);
      return () => {};
    }
    this.closeHandlers.add(fn);
    return () => this.closeHandlers.delete(fn);
  }

  close(reason) {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.server.connections.delete(this);
    this.server.connlog.close(this);
    if (reason !== 'peer_closed' && reason !== 'socket_error' && reason !== 'shutdown') {
      process.stderr.write(`level=info conn=${this.id} event=close reason=${reason}\n`);
    }
    for (const fn of this.closeHandlers) fn();
    this.closeHandlers.clear();
  }

  onData(chunk) {
    this.reader.push(chunk);
    try {
      for (let frame = this.reader.next(); frame; frame = this.reader.next()) this.queue.push(frame);
    } catch (e) {
      process.stderr.write(`level=warn conn=${this.id} event=frame_rejected reason=${JSON.stringify(e.message)}\n`);
      this.close('bad_frame');
      return;
    }
    if (!this.busy) this.pump();
  }

  async pump() {
    this.busy = true;
    while (this.queue.length && !this.closed) {
      const frame = this.queue.shift();
      try {
        await this.handle(frame);
      } catch (e) {
        if (e instanceof CloseConnection) {
          this.close('failpoint_close_connection');
        } else {
          process.stderr.write(`level=warn conn=${this.id} event=request_failed reason=${JSON.stringify(e.message)}\n`);
          this.close('bad_request');
        }
      }
    }
    this.busy = false;
  }

  send(buf) {
    if (!this.closed) this.socket.write(buf);
  }

  async handle(frame) {
    const msg = wire.decodeFrame(frame);
    if (msg.opCode === wire.OP_MSG) return this.handleOpMsg(msg);
    if (msg.opCode === wire.OP_QUERY) return this.handleOpQuery(msg);
    throw new Error(`opcode ${msg.opCode} is not supported`);
  }

  async handleOpMsg(msg) {
    const cmd = msg.body;
    for (const seq of msg.sequences) cmd[seq.identifier] = seq.documents;
    const name = Object.keys(cmd)[0];
    const exhaust = (msg.flags & wire.MSG_EXHAUST_ALLOWED) !== 0;
    let reply = await this.server.run(this, cmd, { exhaust });
    if (msg.flags & wire.MSG_MORE_TO_COME) return; // the client wants no reply
    let responseTo = msg.requestID;
    let next = cmd;
    for (;;) {
      const more = exhaust && !this.closed && this.continuesExhaust(name, next, reply);
      const id = requestId();
      this.send(wire.encodeOpMsg(reply, { requestID: id, responseTo, moreToCome: more, compressor: msg.compressor }));
      if (!more) return;
      responseTo = id;
      next = this.nextInvocation(name, next);
      reply = await this.server.run(this, next, { exhaust });
      if (this.closed) return;
    }
  }

  continuesExhaust(name, cmd, reply) {
    if (Number(reply.ok) !== 1) return false;
    if (this.server.isHello(name)) return cmd.maxAwaitTimeMS !== undefined;
    if (name === 'getMore') return !!reply.cursor && !Long.fromValue(reply.cursor.id).isZero();
    return false;
  }

  // The next command of an exhaust stream: the same one, with a hello's
  // topologyVersion brought up to date (so it awaits the next change).
  nextInvocation(name, cmd) {
    if (!this.server.isHello(name)) return cmd;
    return { ...cmd, topologyVersion: this.server.topology.topologyVersion() };
  }

  async handleOpQuery(msg) {
    const ns = msg.fullCollectionName;
    const dot = ns.indexOf('.');
    const db = ns.slice(0, dot);
    const coll = ns.slice(dot + 1);
    let reply;
    if (coll !== '$cmd') {
      reply = { $err: 'OP_QUERY is no longer supported. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal', code: 5739101, ok: 0 };
      this.send(wire.encodeOpReply(reply, { requestID: requestId(), responseTo: msg.requestID, queryFailure: true }));
      return;
    }
    let query = msg.query;
    if (query.$query !== undefined) query = query.$query;
    else if (query.query !== undefined && Object.keys(query)[0] === 'query') query = query.query;
    const name = Object.keys(query)[0];
    if (this.server.isHello(name)) {
      reply = await this.server.run(this, { ...query, $db: db });
    } else {
      reply = this.server.stamp({
        ok: 0,
        errmsg: `Unsupported OP_QUERY command: ${name}. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal`,
        code: 352,
        codeName: codeName(352),
      });
    }
    this.send(wire.encodeOpReply(reply, { requestID: requestId(), responseTo: msg.requestID, compressor: msg.compressor }));
  }
}

module.exports = { Connection };
