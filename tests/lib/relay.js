// SPDX-License-Identifier: Apache-2.0
// A TCP relay on a loopback port in front of another, whose link the tests
// cut and restore: cut() resets every relayed connection and every new one
// until restore(), as a network partition between changecast and MongoDB
// looks to changecast (connections reset, reconnects refused).
'use strict';
const net = require('node:net');

class Relay {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.pairs = new Set();
    this.isCut = false;
    this.server = net.createServer((client) => this.accept(client));
  }

  start() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = this.server.address().port;
        resolve(this.port);
      });
    });
  }

  accept(client) {
    client.on('error', () => {});
    if (this.isCut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect({ host: '127.0.0.1', port: this.targetPort });
    upstream.on('error', () => {});
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  cut() {
    this.isCut = true;
    for (const { client, upstream } of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  restore() {
    this.isCut = false;
  }

  close() {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

module.exports = { Relay };
