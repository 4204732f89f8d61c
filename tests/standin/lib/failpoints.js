// SPDX-License-Identifier: Apache-2.0
// The failCommand fail point, as mongod with enableTestCommands=1 has it
// (db/commands.cpp: shouldActivateFailCommandFailPoint and
// evaluateFailCommandFailPoint; the driver specs' "failCommand" usage):
// - configureFailPoint {configureFailPoint: "failCommand", mode, data} on
//   admin; modes alwaysOn, off, {times: n}, {skip: n},
//   {activationProbability: p}; the reply is {count: <times the fail point
//   was entered under its previous configuration>, ok: 1};
// - data: failCommands (names, aliases match), appName, namespace,
//   closeConnection, errorCode, errorLabels, blockConnection + blockTimeMS,
//   writeConcernError, errorExtraInfo, failAllCommands;
// - configureFailPoint itself is never failed. The dispatcher consults this
//   before any handler runs, so hello, getMore of change streams and all
//   other commands are covered alike.
'use strict';
const { MongoError } = require('./errors');
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
  }

  configure(mode, data) {
    const previous = this.timesEntered;
    this.timesEntered = 0;
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
    return previous;
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
    this.timesEntered++;
    return true;
  }
}

class FailPoints {
  constructor() {
    this.failCommand = new FailPoint();
  }

  configure(cmd) {
    const name = cmd.configureFailPoint;
    if (name !== 'failCommand') {
      throw new MongoError(2, 'BadValue', `${name} not found`);
    }
    const count = this.failCommand.configure(cmd.mode, cmd.data);
    return { count };
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
