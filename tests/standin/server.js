#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// The MongoDB stand-in: a small in-memory server speaking the MongoDB wire
// protocol well enough for the official drivers, mongosh and changecast's
// tests. Not a product, not a database: see tests/standin/README.md.
//
//   node tests/standin/server.js --port N [--host 127.0.0.1] [--auth user:pass]
//     [--version 7.0|8.0] [--standalone] [--oplog-size N]
//     [--log-connections FILE] [--replset rs0]
//     [--tls-cert-file PEM --tls-key-file PEM]
//
// Prints exactly one line on stdout when listening:
//   standin ready port=<N> version=<v>
// Everything else goes to stderr. Exits 0 on SIGTERM and SIGINT.
'use strict';
const fs = require('fs');
const net = require('net');
const tls = require('tls');
const { Server } = require('./lib/dispatch');
const { Connection } = require('./lib/connection');
const { VERSIONS } = require('./lib/hello');

function usage(msg) {
  process.stderr.write(`standin: ${msg}\nusage: server.js --port N [--host H] [--auth user:pass] [--version 7.0|8.0] [--standalone] [--oplog-size N] [--log-connections FILE] [--replset NAME] [--tls-cert-file PEM --tls-key-file PEM]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { port: null, host: '127.0.0.1', auth: null, version: '7.0', standalone: false, oplogSize: undefined, logConnections: null, replset: 'rs0', tlsCertFile: null, tlsKeyFile: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--port': opts.port = Number(value()); break;
      case '--host': opts.host = value(); break;
      case '--auth': opts.auth = value(); break;
      case '--version': opts.version = value(); break;
      case '--standalone': opts.standalone = true; break;
      case '--oplog-size': opts.oplogSize = Number(value()); break;
      case '--log-connections': opts.logConnections = value(); break;
      case '--replset': opts.replset = value(); break;
      case '--tls-cert-file': opts.tlsCertFile = value(); break;
      case '--tls-key-file': opts.tlsKeyFile = value(); break;
      case '-h': case '--help': usage('help');
      // falls through
      default: usage(`unknown argument ${a}`);
    }
  }
  if (opts.port === null || !Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usage('--port N is required (0 picks a free port)');
  if (!VERSIONS[opts.version]) usage(`--version must be one of ${Object.keys(VERSIONS).join(', ')}`);
  if (opts.auth !== null && !/^[^:]+:.+$/.test(opts.auth)) usage('--auth takes user:pass');
  if (opts.oplogSize !== undefined && !(opts.oplogSize > 0)) usage('--oplog-size takes a positive number of events');
  if (!opts.tlsCertFile !== !opts.tlsKeyFile) usage('--tls-cert-file and --tls-key-file go together');
  return opts;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const server = new Server(opts);
  let nextConnId = 1;
  const accept = (socket) => {
    const conn = new Connection(server, socket, nextConnId++);
    server.connections.add(conn);
    server.connectionsCreated++;
    server.connlog.accept(conn);
  };
  // With TLS (as mongod's net.tls.mode requireTLS) every connection is TLS;
  // clients that do not verify against the CA fail the handshake.
  const listener = opts.tlsCertFile
    ? tls.createServer({ cert: fs.readFileSync(opts.tlsCertFile), key: fs.readFileSync(opts.tlsKeyFile) }, accept)
    : net.createServer(accept);
  listener.on('tlsClientError', (e) => process.stderr.write(`level=info event=tls_handshake_failed error=${JSON.stringify(e.message)}\n`));
  listener.on('error', (e) => {
    process.stderr.write(`level=error event=listen_failed error=${JSON.stringify(e.message)}\n`);
    process.exit(1);
  });
  listener.listen(opts.port, opts.host, () => {
    const port = listener.address().port;
    server.start(port);
    process.stdout.write(`standin ready port=${port} version=${opts.version}\n`);
  });

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`level=info event=shutdown signal=${signal}\n`);
    listener.close();
    for (const conn of [...server.connections]) conn.close('shutdown');
    server.close().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main();
