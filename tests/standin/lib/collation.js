// SPDX-License-Identifier: Apache-2.0
// Collation. The stand-in compares strings by their bytes, which is what
// MongoDB does under {locale: "simple"} (the default). Any other collation
// is refused with an error naming it, never ignored: ignoring one answers
// wrongly (a case-insensitive distinct that returns ["PING", "ping"], a
// deleteMany that deletes nothing). Checked wherever a command may carry
// one: the command, each update and delete statement, each index, create.
'use strict';
const { MongoError } = require('./errors');
const { isPlainObject, bsonTypeName } = require('./store');

function checkOne(spec, field) {
  if (!isPlainObject(spec)) {
    throw new MongoError(14, 'TypeMismatch', `BSON field '${field}' is the wrong type '${bsonTypeName(spec)}', expected type 'object'`);
  }
  if (typeof spec.locale !== 'string') {
    throw new MongoError(40414, 'Location40414', `BSON field '${field}.locale' is missing but a required field`);
  }
  if (spec.locale === 'simple' && Object.keys(spec).length === 1) return;
  throw new MongoError(115, 'CommandNotSupported',
    `collation ${JSON.stringify(spec)} is not implemented by the stand-in, which compares strings by their bytes (collation {locale: "simple"})`);
}

function checkCollations(name, cmd) {
  if (cmd.collation !== undefined) checkOne(cmd.collation, `${name}.collation`);
  for (const [list, field] of [['updates', 'update.updates'], ['deletes', 'delete.deletes'], ['indexes', 'createIndexes.indexes']]) {
    if (!Array.isArray(cmd[list])) continue;
    for (const entry of cmd[list]) {
      if (isPlainObject(entry) && entry.collation !== undefined) checkOne(entry.collation, `${field}.collation`);
    }
  }
}

module.exports = { checkCollations };
