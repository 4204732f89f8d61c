// SPDX-License-Identifier: Apache-2.0
// The failCommand fail point, as mongod with enableTestCommands=1 has it
// (db/commands.cpp: shouldActivateFailCommandFailPoint and
// evaluateFailCommandFailPoint; the driver specs' "failCommand" usage):
// - configureFailPoint {configureFailPoint: "failCommand", mode, data} on
//   admin; modes alwaysOn, off, {times: n}, {skip: n},
//   {activationProbability: p}; the reply is {count: <times the fail point
//   has been entered since the server started>, ok: 1};
// - waitForFailPoint {waitForFailPoint: "failCommand", timesEntered: n,
//   maxTimeMS} on admin waits until that count reaches n (a test arms the
//   fail point, takes its count c, and waits for c + 1), else 50
//   MaxTimeMSExpired;
// - data: failCommands (names, aliases match), appName, namespace,
//   closeConnection, errorCode, errorLabels, blockConnection + blockTimeMS,
//   writeConcernError, errorExtraInfo, failAllCommands;
// - configureFailPoint itself is never failed. The dispatcher consults this
//   before any handler runs, so hello, getMore of change streams and all
//   other commands are covered alike.
'use strict';
const { MongoError } = require('./errors');
const { codeName } = require('./codes');
const { toNumber } = require('./commands/transactions');

const ALIASES = { isMaster: ['ismaster'], ismaster: ['isMaster'], buildInfo: ['buildinfo'], buildinfo: ['buildInfo'], findAndModify: ['findandmodify'], findandmodify: ['findAndModify'] };

class FailPoint {
  constructor() {
    this.mode = 'off';
    this.data = {};
    this.remaining = 0; // for {times: n}
    this.skip = 0; // for {skip: n}
    this.probability = 1;
    this.timesEntered = 0;
    this.waiters = new Set();
  }

  // Returns how often the fail point has been entered so far: the count
  // never restarts, so waitForFailPoint can name a later one.
  configure(mode, data) {
    this.data = data || {};
    if (mode === 'alwaysOn' || mode === 'off') {
      this.mode = mode;
    } else if (mode && typeof mode === 'object' && 'times' in mode) {
      this.remaining = toNumber(mode.times);
      this.mode = this.remaining > 0 ? 'times' : 'off';
    } else if (mode && typeof mode === 'object' && 'skip' in mode) {
      this.skip = toNumber(mode.skip);
      this.mode = 'skip';
    } else if (mode && typeof mode === 'object' && 'activationProbability' in mode) {
      this.probability = Number(mode.activationProbability);
      if (!(this.probability >= 0 && this.probability <= 1)) {
        throw new MongoError(2, 'BadValue', 'activationProbability must be between 0.0 and 1.0');
      }
      this.mode = 'random';
    } else {
      throw new MongoError(9, 'FailedToParse', "'mode' must be one of 'off', 'alwaysOn', {times: n}, {skip: n} or {activationProbability: p}");
    }
    return this.timesEntered;
  }

  // Resolves once the fail point has been entered `times` times in all;
  // rejects with 50 after `maxTimeMS`.
  waitUntilEntered(times, maxTimeMS) {
    if (this.timesEntered >= times) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = { times, resolve };
      waiter.timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new MongoError(50, 'MaxTimeMSExpired', 'operation exceeded time limit'));
      }, maxTimeMS);
      this.waiters.add(waiter);
    });
  }

  entered() {
    this.timesEntered++;
    for (const waiter of this.waiters) {
      if (this.timesEntered >= waiter.times) {
        clearTimeout(waiter.timer);
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  // Whether the fail point fires now; consumes one activation if so.
  shouldFail() {
    switch (this.mode) {
      case 'off':
        return false;
      case 'alwaysOn':
        break;
      case 'times':
        if (--this.remaining <= 0) this.mode = 'off';
        break;
      case 'skip':
        if (this.skip > 0) {
          this.skip--;
          return false;
        }
        break;
      case 'random':
        if (Math.random() >= this.probability) return false;
        break;
      default:
        return false;
    }
    this.entered();
    return true;
  }
}

class FailPoints {
  constructor() {
    this.failCommand = new FailPoint();
    this.failGetMoreAfterCursorCheckout = new FailPoint();
  }

  named(name) {
    if (name !== 'failCommand' && name !== 'failGetMoreAfterCursorCheckout') {
      throw new MongoError(266, 'FailPointSetFailed', `${name} not found`);
    }
    return this[name];
  }

  configure(cmd) {
    const count = this.named(cmd.configureFailPoint).configure(cmd.mode, cmd.data);
    return { count };
  }

  // As mongod's WaitForFailPointCommand: the request's fields are checked
  // (IDL) before maxTimeMS, then the name.
  async waitFor(cmd) {
    const times = cmd.timesEntered;
    if (times === undefined) {
      throw new MongoError(40414, 'Location40414', "BSON field 'waitForFailPoint.timesEntered' is missing but a required field");
    }
    if (cmd.maxTimeMS === undefined) {
      throw new MongoError(9, 'FailedToParse', 'Missing maxTimeMS');
    }
    await this.named(cmd.waitForFailPoint).waitUntilEntered(toNumber(times), toNumber(cmd.maxTimeMS));
    return {};
  }

  matches(data, name, conn, ns) {
    if (name === 'configureFailPoint') return false;
    if (data.appName !== undefined && data.appName !== (conn.appName || '')) return false;
    if (data.namespace !== undefined && data.namespace !== ns) return false;
    if (data.failAllCommands) return true;
    const list = Array.isArray(data.failCommands) ? data.failCommands : [];
    return list.some((n) => n === name || (ALIASES[name] || []).includes(n));
  }

  // Before the handler: returns the fail point data when it fires with
  // closeConnection, blockConnection or errorCode, else null.
  before(name, conn, ns) {
    const fp = this.failCommand;
    if (fp.mode === 'off') return null;
    const d = fp.data;
    if (!(d.closeConnection || d.blockConnection || d.errorCode !== undefined)) return null;
    if (!this.matches(d, name, conn, ns)) return null;
    return fp.shouldFail() ? d : null;
  }

  // A getMore has checked its cursor out (mongod's getmore_cmd.cpp): the
  // failGetMoreAfterCursorCheckout fail point throws its errorCode
  // (InternalError by default), matched as failCommand matches a getMore.
  // Its error gets the labels the server gives (ResumableChangeStreamError on
  // a change stream), which failCommand, failing before checkout, cannot.
  afterCursorCheckout(conn, ns) {
    const fp = this.failGetMoreAfterCursorCheckout;
    if (fp.mode === 'off') return;
    const d = fp.data;
    if (!this.matches({ ...d, failCommands: ['getMore'] }, 'getMore', conn, ns) || !fp.shouldFail()) return;
    const code = d.errorCode !== undefined ? toNumber(d.errorCode) : 1;
    throw new MongoError(code, codeName(code), "Hit the 'failGetMoreAfterCursorCheckout' failpoint");
  }

  // After a command that takes a write concern ran: the writeConcernError
  // to attach, or null.
  after(name, conn, ns) {
    const fp = this.failCommand;
    if (fp.mode === 'off') return null;
    const d = fp.data;
    if (!d.writeConcernError || d.errorCode !== undefined || d.closeConnection) return null;
    if (!this.matches(d, name, conn, ns)) return null;
    return fp.shouldFail() ? d : null;
  }
}

module.exports = { FailPoints, FailPoint };
