// SPDX-License-Identifier: Apache-2.0
// Fixtures for the integration tests: changecast started as a real process
// on a free loopback port in front of a stand-in, and the evidence it leaves
// (its log, the stand-in's connection log).
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN_DIR = process.env.CHANGECAST_BIN
  ? path.dirname(process.env.CHANGECAST_BIN)
  : path.join(ROOT, 'build');
const CHANGECAST = process.env.CHANGECAST_BIN || path.join(BIN_DIR, 'changecast');

function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
}

// Spawns a process and resolves once a line of its output matches
// readyPattern; the returned handle collects all output for assertions.
function startProcess(command, args, { readyPattern, timeoutMs = 15000, env } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const handle = { proc, output: '', exited: null };
    const exited = new Promise((done) => proc.on('exit', (code, signal) => done((handle.exited = { code, signal }))));
    handle.waitExit = () => exited;
    handle.stop = async (signal = 'SIGTERM') => {
      if (!handle.exited) proc.kill(signal);
      return exited;
    };
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${path.basename(command)} not ready in ${timeoutMs} ms:\n${handle.output}`));
    }, timeoutMs);
    const onData = (chunk) => {
      handle.output += chunk;
      const match = readyPattern && handle.output.match(readyPattern);
      if (match && !handle.match) {
        handle.match = match;
        clearTimeout(timer);
        resolve(handle);
      }
    };
    proc.stdout.setEncoding('utf8').on('data', onData);
    proc.stderr.setEncoding('utf8').on('data', onData);
    proc.on('exit', () => {
      if (!handle.match) {
        clearTimeout(timer);
        reject(new Error(`${path.basename(command)} exited before ready:\n${handle.output}`));
      }
    });
  });
}

async function startStandin(args = []) {
  const handle = await startProcess('node', [path.join(ROOT, 'tests/standin/server.js'), '--port', '0', ...args], {
    readyPattern: /ready port=(\d+)/,
  });
  handle.port = Number(handle.match[1]);
  handle.uri = `mongodb://127.0.0.1:${handle.port}/?replicaSet=rs0`;
  return handle;
}

// changecast in front of an upstream port; the client URI names changecast
// as a router would be named: no replicaSet.
async function startChangecast(upstreamPort, flags = [], { upstreamUri, waitForPrimary = true } = {}) {
  const upstream = upstreamUri || `mongodb://127.0.0.1:${upstreamPort}/?replicaSet=rs0`;
  const handle = await startProcess(
    CHANGECAST,
    ['--wire.listen', '127.0.0.1:0', '--wire.upstream', upstream, ...flags],
    { readyPattern: /event=ready .*wire=127\.0\.0\.1:(\d+)/ },
  );
  handle.port = Number(handle.match[1]);
  handle.uri = `mongodb://127.0.0.1:${handle.port}/`;
  // Under the sanitizer build a report is a failure of whichever test
  // stopped this changecast, whatever its exit status.
  const stopProcess = handle.stop;
  handle.stop = async (signal) => {
    const status = await stopProcess(signal);
    const report = handle.output.match(/(ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:)[^]*/);
    if (report) throw new Error(`changecast sanitizer report:\n${report[0].slice(0, 4000)}`);
    return status;
  };
  // Resolves once changecast knows the primary, so tests do not race it.
  handle.waitFor = (pattern, timeoutMs = 10000) =>
    new Promise((resolve, reject) => {
      const started = Date.now();
      const poll = () => {
        const match = handle.output.match(pattern);
        if (match) return resolve(match);
        if (Date.now() - started > timeoutMs) return reject(new Error(`no ${pattern} in:\n${handle.output}`));
        setTimeout(poll, 20);
      };
      poll();
    });
  if (waitForPrimary) await handle.waitFor(/event=primary_known/);
  return handle;
}

function makeCerts() {
  const dir = tempDir('cc-certs');
  execFileSync(path.join(ROOT, 'certs/make-dev-certs.sh'), [dir]);
  return dir;
}

// Local ports of changecast's upstream connections, from its log.
function changecastUpstreamPorts(changecast) {
  return new Set([...changecast.output.matchAll(/event=upstream_connected .*local=127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1])));
}

// Registers before/after hooks that run a stand-in and a changecast in front
// of it for the whole test file; the returned object fills in before tests run.
function useChangecast({ standinArgs = [], flags = [] } = {}) {
  const { before, after } = require('node:test');
  const fixture = {};
  before(async () => {
    fixture.standin = await startStandin(standinArgs);
    fixture.changecast = await startChangecast(fixture.standin.port, flags);
  });
  after(async () => {
    await fixture.changecast?.stop();
    await fixture.standin?.stop();
  });
  return fixture;
}

module.exports = { ROOT, useChangecast, BIN_DIR, CHANGECAST, startProcess, startStandin, startChangecast, makeCerts, tempDir, changecastUpstreamPorts };
