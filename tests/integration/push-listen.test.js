// SPDX-License-Identifier: Apache-2.0
// push.listen binds the address it names, not every interface: a push port
// on 127.0.0.1 must not answer on another address of the machine
// (127.0.0.2 is one on Linux's loopback, so the test stays on loopback).
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startPush } = require('./push-support');

function connect(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.on('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (err) => resolve(err.code));
  });
}

test('a push port listening on 127.0.0.1 is not reachable on another address', async () => {
  const stack = await startPush();
  try {
    const port = stack.changecast.pushPort;
    assert.equal(await connect('127.0.0.1', port), 'connected');
    assert.equal(await connect('127.0.0.2', port), 'ECONNREFUSED');
  } finally {
    await stack.stop();
  }
});
