// SPDX-License-Identifier: Apache-2.0
// Fixtures for the integration tests: changecast started as a real process
// on a free loopback port in front of a stand-in, and the evidence it leaves
// (its log, the stand-in's connection log).
'use strict';
const { execFileSync } = require('node:child_process');
const harness = require('../lib/harness');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN_DIR = process.env.CHANGECAST_BIN
  ? path.dirname(process.env.CHANGECAST_BIN)
  : path.join(ROOT, 'build');
const CHANGECAST = process.env.CHANGECAST_BIN || path.join(BIN_DIR, 'changecast');
// Every changecast the tests start is instance "it": its own connections to
// the stand-in carry the appName changecast-<role>@it.
const INSTANCE = 'it';
const CAPTURE_APP = `changecast-capture@${INSTANCE}`;

function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
}

// The harness's process handle in the shape these tests read: output (both
// streams), waitExit() and stop() resolving to {code, signal}.
function adapt(started) {
  const handle = {
    proc: started.proc,
    match: started.match,
    get output() {
      return started.stdout() + started.stderr();
    },
  };
  const exited = new Promise((resolve) => {
    if (started.proc.exitCode !== null || started.proc.signalCode !== null) {
      resolve({ code: started.proc.exitCode, signal: started.proc.signalCode });
    } else {
      started.proc.on('exit', (code, signal) => resolve({ code, signal }));
    }
  });
  handle.waitExit = () => exited;
  handle.stop = async () => {
    await started.stop();
    return exited;
  };
  return handle;
}

async function startStandin(args = []) {
  const started = await harness.startStandin(args);
  return Object.assign(adapt(started), { port: started.port, uri: started.uri });
}

// changecast in front of an upstream port; the client URI names changecast
// as a router would be named: no replicaSet.
async function startChangecast(upstreamPort, flags = [], { upstreamUri, waitForPrimary = true } = {}) {
  const upstream = upstreamUri || `mongodb://127.0.0.1:${upstreamPort}/?replicaSet=rs0`;
  const handle = adapt(
    await harness.startProcess(CHANGECAST, ['--wire.listen', '127.0.0.1:0', '--wire.upstream', upstream, '--instance.name', INSTANCE, ...flags], {
      readyPattern: /event=ready .*wire=127\.0\.0\.1:(\d+)/,
      readyStream: 'stderr',
    }),
  );
  handle.port = Number(handle.match[1]);
  handle.uri = `mongodb://127.0.0.1:${handle.port}/`;
  // With --push.listen, the ready line also names the push port.
  const push = handle.output.match(/event=ready .*push=127\.0\.0\.1:(\d+)/);
  if (push) {
    handle.pushPort = Number(push[1]);
    handle.pushUrl = `http://127.0.0.1:${handle.pushPort}`;
  }
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

module.exports = { INSTANCE, CAPTURE_APP, ROOT, useChangecast, BIN_DIR, CHANGECAST, startStandin, startChangecast, makeCerts, tempDir, changecastUpstreamPorts };
