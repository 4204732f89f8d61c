// SPDX-License-Identifier: Apache-2.0
// A command failure shaped as MongoDB reports it: {ok: 0, errmsg, code,
// codeName[, errorLabels]}. Thrown by command handlers, turned into a reply
// by the dispatcher.
'use strict';

class MongoError extends Error {
  constructor(code, codeName, errmsg, extra = {}) {
    super(errmsg);
    this.code = code;
    this.codeName = codeName;
    this.extra = extra; // e.g. {errorLabels: [...]} merged into the reply
  }

  toReply() {
    return { ok: 0, errmsg: this.message, code: this.code, codeName: this.codeName, ...this.extra };
  }
}

module.exports = { MongoError };
