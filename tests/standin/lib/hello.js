// SPDX-License-Identifier: Apache-2.0
// The handshake reply (hello / isMaster / ismaster) of a one-member replica
// set's primary, or of a standalone with --standalone, with the fields and
// field order mongod gives (repl/replication_info.cpp, hello_response.cpp):
// [compression], [helloOk], topologyVersion, hosts, setName, setVersion,
// isWritablePrimary|ismaster, secondary, primary, me, electionId, lastWrite,
// maxBsonObjectSize, maxMessageSizeBytes, maxWriteBatchSize, localTime,
// logicalSessionTimeoutMinutes, connectionId, minWireVersion, maxWireVersion,
// readOnly, [saslSupportedMechs], [speculativeAuthenticate].
// isImplicitDefaultMajorityWC is only sent by shard servers, so not here.
//
// Awaitable hello (server-monitoring spec, "Streaming Protocol"): a request
// carrying the current topologyVersion and maxAwaitTimeMS waits that long,
// or until the topology changes (replSetStepDown), before answering.
'use strict';
const { ObjectId, Long, Double } = require('bson');
const { MongoError } = require('./errors');
const { SUPPORTED_COMPRESSORS } = require('./wire');

const VERSIONS = {
  '7.0': { version: '7.0.14', versionArray: [7, 0, 14, 0], maxWireVersion: 21 },
  '8.0': { version: '8.0.4', versionArray: [8, 0, 4, 0], maxWireVersion: 25 },
};

const HELLO_NAMES = new Set(['hello', 'isMaster', 'ismaster']);

class Topology {
  constructor({ host, port, setName, standalone }) {
    this.me = `${host}:${port}`;
    this.setName = setName;
    this.standalone = standalone;
    this.processId = new ObjectId();
    // A fresh primary has moved through STARTUP, STARTUP2, SECONDARY and
    // PRIMARY, each step bumping the counter; the value is not meaningful.
    this.counter = Long.fromNumber(6);
    this.term = 1;
    this.electionId = electionIdFor(this.term);
    this.primary = true;
    this.waiters = new Set();
  }

  topologyVersion() {
    return { processId: this.processId, counter: this.counter };
  }

  // Every state change bumps the counter and answers awaiting hellos at once
  // (server-monitoring spec: "the server MUST respond immediately").
  changed() {
    this.counter = this.counter.add(1);
    for (const wake of [...this.waiters]) wake();
  }

  // Resolves after ms, when the topology changes, or when conn closes.
  waitForChange(ms, conn) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        off();
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      const off = conn.onClose(done);
      this.waiters.add(done);
    });
  }

  // replSetStepDown on a one-member set: SECONDARY for `seconds`, then an
  // election in a new term makes it PRIMARY again with a new electionId.
  stepDown(seconds) {
    this.primary = false;
    this.changed();
    clearTimeout(this.electionTimer);
    this.electionTimer = setTimeout(() => {
      this.term += 1;
      this.electionId = electionIdFor(this.term);
      this.primary = true;
      this.changed();
    }, seconds * 1000);
    this.electionTimer.unref();
  }
}

// electionId is an ObjectId made of 0x7fffffff and the term (protocol version 1).
function electionIdFor(term) {
  return ObjectId.createFromHexString(`7fffffff${term.toString(16).padStart(16, '0')}`);
}

function opTime(clock) {
  return { ts: clock.now(), t: Long.fromNumber(1) };
}

// Validates the awaitable-hello fields; returns the milliseconds to wait
// before answering (0 when the reply is due at once).
function awaitMs(topology, cmd) {
  const tv = cmd.topologyVersion;
  const max = cmd.maxAwaitTimeMS;
  if ((tv === undefined) !== (max === undefined)) {
    throw new MongoError(31368, 'Location31368', tv ? "A request with a 'topologyVersion' must include 'maxAwaitTimeMS'" : "A request with 'maxAwaitTimeMS' must include a 'topologyVersion'");
  }
  if (tv === undefined) return 0;
  const counter = Long.fromValue(tv.counter === undefined ? 0 : tv.counter);
  if (counter.isNegative()) throw new MongoError(31372, 'Location31372', 'topologyVersion must have a non-negative counter');
  const maxMs = Number(max);
  if (!(maxMs >= 0)) throw new MongoError(51758, 'Location51758', 'maxAwaitTimeMS must be a non-negative integer');
  const sameProcess = tv.processId instanceof ObjectId && tv.processId.equals(topology.processId);
  if (!sameProcess) return 0; // a different process: answer at once
  if (counter.greaterThan(topology.counter)) {
    throw new MongoError(51764, 'Location51764', `Received a topology version with counter: ${counter} which is greater than the server topology version counter: ${topology.counter}`);
  }
  return counter.equals(topology.counter) ? maxMs : 0;
}

// Builds the reply body (without ok/$clusterTime, added by the dispatcher).
function helloReply(server, conn, cmd, name, extras = {}) {
  const { topology, clock, version } = server;
  const legacy = name !== 'hello';
  const reply = {};
  if (Array.isArray(cmd.compression)) {
    // Compression spec: the server answers the client's list filtered to the
    // compressors it supports, in the client's order.
    const agreed = cmd.compression.filter((c) => SUPPORTED_COMPRESSORS.includes(c));
    reply.compression = agreed;
    conn.compressors = agreed;
  }
  if (cmd.helloOk !== undefined) reply.helloOk = true;
  const writable = legacy ? 'ismaster' : 'isWritablePrimary';
  if (topology.standalone) {
    reply[writable] = true;
    reply.topologyVersion = topology.topologyVersion();
  } else {
    const now = clock.now();
    const writeDate = new Date((now.high >>> 0) * 1000);
    Object.assign(reply, {
      topologyVersion: topology.topologyVersion(),
      hosts: [topology.me],
      setName: topology.setName,
      setVersion: 1,
      [writable]: topology.primary,
      secondary: !topology.primary,
      // A secondary of a one-member set knows no primary, and only a
      // primary reports an electionId.
      ...(topology.primary ? { primary: topology.me } : {}),
      me: topology.me,
      ...(topology.primary ? { electionId: topology.electionId } : {}),
      lastWrite: {
        opTime: opTime(clock),
        lastWriteDate: writeDate,
        majorityOpTime: opTime(clock),
        majorityWriteDate: writeDate,
      },
    });
  }
  Object.assign(reply, {
    maxBsonObjectSize: 16777216,
    maxMessageSizeBytes: 48000000,
    maxWriteBatchSize: 100000,
    localTime: new Date(),
    logicalSessionTimeoutMinutes: 30,
    connectionId: conn.id,
    minWireVersion: 0,
    maxWireVersion: VERSIONS[version].maxWireVersion,
    readOnly: false,
  });
  Object.assign(reply, extras);
  return reply;
}

function buildInfo(server) {
  const v = VERSIONS[server.version];
  return {
    version: v.version,
    // Not a real commit of MongoDB: the stand-in is not built from it.
    gitVersion: '0000000000000000000000000000000000000000',
    modules: [],
    allocator: 'tcmalloc',
    javascriptEngine: 'mozjs',
    sysInfo: 'deprecated',
    versionArray: v.versionArray,
    openssl: { running: 'disabled', compiled: 'disabled' },
    buildEnvironment: { distmod: 'standin', distarch: process.arch === 'x64' ? 'x86_64' : process.arch, target_os: 'linux', target_arch: process.arch === 'x64' ? 'x86_64' : process.arch },
    bits: 64,
    debug: false,
    maxBsonObjectSize: 16777216,
    storageEngines: ['devnull', 'inMemory', 'wiredTiger'],
  };
}

module.exports = { VERSIONS, HELLO_NAMES, Topology, helloReply, awaitMs, buildInfo, Double };
