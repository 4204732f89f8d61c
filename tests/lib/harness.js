// SPDX-License-Identifier: Apache-2.0
// Process helpers for tests: start a program, wait for its ready line on
// stdout (with a timeout), and always stop it. Generic: used for the MongoDB
// stand-in here and for changecast in the integration tests.
'use strict';
const { spawn } = require('child_process');
const net = require('net');
const path = require('path');

const STANDIN = path.join(__dirname, '..', 'standin', 'server.js');
const live = new Set();

// A free TCP port on 127.0.0.1 (bound then released: a small race remains,
// so prefer --port 0 and the ready line where the program supports it).
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Spawns cmd with args and resolves once its output on readyStream
// ('stdout', the default, or 'stderr' for programs that log there) matches
// readyPattern: {proc, match, stdout(), stderr(), stop()}. Rejects (and kills the process)
// if it exits or times out first. stop() sends SIGTERM, then SIGKILL after
// killTimeoutMs, and resolves with the exit code.
function startProcess(cmd, args, { readyPattern, readyStream = 'stdout', env, cwd, timeoutMs = 15000, killTimeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { env: env || process.env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    let out = '';
    let err = '';
    let settled = false;
    const exited = new Promise((r) => proc.on('exit', (code, signal) => {
      live.delete(proc);
      r(code === null ? signal : code);
    }));
    const stop = async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), killTimeoutMs);
        const code = await exited;
        clearTimeout(t);
        return code;
      }
      return exited;
    };
    const fail = (msg) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop().then(() => reject(new Error(`${msg}\n--- stdout ---\n${out}\n--- stderr ---\n${err}`)));
    };
    const timer = setTimeout(() => fail(`${cmd} not ready within ${timeoutMs} ms`), timeoutMs);
    const checkReady = () => {
      if (settled || !readyPattern) return;
      const match = (readyStream === 'stderr' ? err : out).match(readyPattern);
      if (match) {
        settled = true;
        clearTimeout(timer);
        resolve({ proc, match, stdout: () => out, stderr: () => err, stop, exited });
      }
    };
    proc.stdout.on('data', (d) => {
      out += d;
      checkReady();
    });
    proc.stderr.on('data', (d) => {
      err += d;
      checkReady();
    });
    proc.on('error', (e) => fail(`${cmd} failed to start: ${e.message}`));
    proc.on('exit', (code) => fail(`${cmd} exited with ${code} before it was ready`));
    if (!readyPattern) {
      settled = true;
      clearTimeout(timer);
      resolve({ proc, match: null, stdout: () => out, stderr: () => err, stop, exited });
    }
  });
}

// Starts the MongoDB stand-in on a free loopback port:
// {port, uri, proc, stop(), stderr()}. uri names the replica set unless
// --standalone is among args.
async function startStandin(args = [], opts = {}) {
  const p = await startProcess(process.execPath, [STANDIN, '--port', '0', ...args], {
    readyPattern: /standin ready port=(\d+) version=(\S+)/,
    ...opts,
  });
  const port = Number(p.match[1]);
  const standalone = args.includes('--standalone');
  const i = args.indexOf('--replset');
  const setName = i >= 0 ? args[i + 1] : 'rs0';
  const uri = standalone ? `mongodb://127.0.0.1:${port}/` : `mongodb://127.0.0.1:${port}/?replicaSet=${setName}`;
  return { port, uri, version: p.match[2], proc: p.proc, stop: p.stop, stdout: p.stdout, stderr: p.stderr, exited: p.exited };
}

// Children never outlive the test process.
process.on('exit', () => {
  for (const proc of live) proc.kill('SIGKILL');
});

// A stand-in and an official Node driver client connected to it, both
// stopped when the test ends.
async function standinWithClient(t, args = []) {
  const { MongoClient } = require('mongodb');
  const s = await startStandin(args);
  const client = new MongoClient(s.uri, { serverSelectionTimeoutMS: 5000 });
  await client.connect();
  t.after(async () => {
    await client.close();
    await s.stop();
  });
  return { s, client };
}

module.exports = { freePort, startProcess, startStandin, standinWithClient, STANDIN };
