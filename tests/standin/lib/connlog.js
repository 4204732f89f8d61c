// SPDX-License-Identifier: Apache-2.0
// The connection log (--log-connections FILE): one logfmt line per event, so
// tests can prove which peers reached the stand-in and under which appName:
//   conn=<id> event=accept peer=<address>:<port>
//   conn=<id> event=handshake peer=<address>:<port> appName="<name>"
//   conn=<id> event=close peer=<address>:<port>
// appName is the handshake's client.application.name, JSON-quoted, "" when
// the handshake has none. A handshake line is written for the first hello
// (or isMaster) of a connection. Writes are appended asynchronously.
'use strict';
const fs = require('fs');

class ConnLog {
  constructor(file) {
    this.stream = file ? fs.createWriteStream(file, { flags: 'a' }) : null;
  }

  write(conn, event, extra = '') {
    if (!this.stream) return;
    this.stream.write(`conn=${conn.id} event=${event} peer=${conn.remoteAddress}:${conn.remotePort}${extra}\n`);
  }

  accept(conn) {
    this.write(conn, 'accept');
  }

  handshake(conn) {
    this.write(conn, 'handshake', ` appName=${JSON.stringify(conn.appName || '')}`);
  }

  close(conn) {
    this.write(conn, 'close');
  }

  end() {
    return new Promise((resolve) => (this.stream ? this.stream.end(resolve) : resolve()));
  }
}

module.exports = { ConnLog };
