// SPDX-License-Identifier: Apache-2.0
// Parsing and validation of `aggregate` with a leading $changeStream, with
// MongoDB's error codes and messages:
// - field types / unknown fields / enum values: the IDL parser
//   (src/mongo/idl/idl_parser.cpp) over DocumentSourceChangeStreamSpec
//   (document_source_change_stream.idl);
// - legality: DocumentSourceChangeStream::assertIsLegalSpecification
//   (document_source_change_stream.cpp), checked in the same order.
'use strict';
const { MongoError } = require('../errors');
const { bsonTypeName } = require('../store');
const { decodeToken } = require('./token');

const FULL_DOCUMENT = ['default', 'updateLookup', 'whenAvailable', 'required'];
const FULL_DOCUMENT_BEFORE_CHANGE = ['off', 'whenAvailable', 'required'];
const BOOL_FIELDS = [
  'allChangesForCluster', 'showMigrationEvents', 'showSystemEvents', 'allowToRunOnConfigDB',
  'allowToRunOnSystemNS', 'showExpandedEvents', 'showRawUpdateDescription',
  'matchCollectionUUIDForUpdateLookup',
];
const KNOWN = new Set([
  'resumeAfter', 'startAfter', 'startAtOperationTime', 'fullDocument', 'fullDocumentBeforeChange',
  ...BOOL_FIELDS,
]);

// A number from a JS number or a bson Int32 / Double / Long; else undefined.
function toNumber(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v && v._bsontype === 'Long') return v.toNumber();
  if (v && (v._bsontype === 'Int32' || v._bsontype === 'Double')) return Number(v.valueOf());
  return undefined;
}

function isPlainDoc(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date) && !v._bsontype;
}

function wrongType(path, v, expected) {
  return new MongoError(14, 'TypeMismatch',
    `BSON field '${path}' is the wrong type '${bsonTypeName(v)}', expected type '${expected}'`);
}

function badEnum(path, v) {
  return new MongoError(2, 'BadValue', `Enumeration value '${v}' for field '${path}' is not a valid value.`);
}

// The IDL parse of the $changeStream argument. Null counts as absent, as the
// IDL parser does.
function parseSpec(arg) {
  if (!isPlainDoc(arg)) {
    throw new MongoError(50808, 'Location50808', '$changeStream stage expects a document as argument');
  }
  const spec = {
    fullDocument: 'default',
    fullDocumentBeforeChange: 'off',
    allChangesForCluster: false,
    showExpandedEvents: false,
    showSystemEvents: false,
    allowToRunOnConfigDB: false,
    allowToRunOnSystemNS: false,
  };
  for (const [key, v] of Object.entries(arg)) {
    const path = `$changeStream.${key}`;
    if (!KNOWN.has(key)) throw new MongoError(40415, 'Location40415', `BSON field '${path}' is an unknown field.`);
    if (v === null || v === undefined) continue;
    if (key === 'resumeAfter' || key === 'startAfter') {
      if (!isPlainDoc(v)) throw wrongType(path, v, 'object');
      spec[key] = v;
    } else if (key === 'startAtOperationTime') {
      if (!v || v._bsontype !== 'Timestamp') throw wrongType(path, v, 'timestamp');
      spec[key] = v;
    } else if (key === 'fullDocument' || key === 'fullDocumentBeforeChange') {
      if (typeof v !== 'string') throw wrongType(path, v, 'string');
      const allowed = key === 'fullDocument' ? FULL_DOCUMENT : FULL_DOCUMENT_BEFORE_CHANGE;
      if (!allowed.includes(v)) throw badEnum(path, v);
      spec[key] = v;
    } else {
      if (typeof v !== 'boolean') throw wrongType(path, v, 'bool');
      spec[key] = v;
    }
  }
  return spec;
}

// Which stream the namespace asks for: {type, db, coll, nsString, cursorNs}.
function resolveScope(dbName, aggregateField) {
  if (typeof aggregateField === 'string') {
    return { type: 'collection', db: dbName, coll: aggregateField, nsString: `${dbName}.${aggregateField}` };
  }
  if (toNumber(aggregateField) !== 1) {
    throw new MongoError(2, 'BadValue',
      "Invalid command format: the 'aggregate' field must specify a collection name or 1");
  }
  const type = dbName === 'admin' ? 'cluster' : 'database';
  return { type, db: dbName, coll: null, nsString: `${dbName}.$cmd.aggregate` };
}

// assertIsLegalSpecification. Returns the decoded resume token (or null).
function assertLegal(scope, spec, standalone) {
  if (standalone) {
    throw new MongoError(40573, 'Location40573', 'The $changeStream stage is only supported on replica sets');
  }
  const collectionless = scope.coll === null;
  if (spec.allChangesForCluster && !(scope.db === 'admin' && collectionless)) {
    throw new MongoError(72, 'InvalidOptions',
      "A $changeStream with 'allChangesForCluster:true' may only be opened on the 'admin' database, " +
      `and with no collection name; found ${scope.nsString}`);
  }
  const notBannedDb = scope.db !== 'local' && (scope.db !== 'config' || spec.allowToRunOnConfigDB);
  const dbOk = scope.db === 'admin' ? spec.allChangesForCluster : notBannedDb;
  if (!dbOk) {
    throw new MongoError(73, 'InvalidNamespace', `$changeStream may not be opened on the internal ${scope.db} database`);
  }
  if (scope.coll !== null && scope.coll.startsWith('system.') && !spec.allowToRunOnSystemNS) {
    throw new MongoError(73, 'InvalidNamespace',
      `$changeStream may not be opened on the internal ${scope.nsString} collection`);
  }
  if (spec.resumeAfter && spec.startAfter) {
    throw new MongoError(50865, 'Location50865',
      "Do not specify both 'resumeAfter' and 'startAfter' in a $changeStream stage");
  }
  const tokenDoc = spec.resumeAfter || spec.startAfter;
  const token = tokenDoc ? decodeToken(tokenDoc) : null;
  if (spec.startAtOperationTime && token) {
    throw new MongoError(40674, 'Location40674', 'Only one type of resume option is allowed, but multiple were found');
  }
  if (spec.resumeAfter && token.fromInvalidate) {
    throw new MongoError(260, 'InvalidResumeToken',
      "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification");
  }
  return token;
}

// batchSize of `cursor: {batchSize}` (aggregate) or of getMore; null = none.
function parseBatchSize(v, field) {
  if (v === undefined || v === null) return null;
  const n = toNumber(v);
  if (n === undefined || Number.isNaN(n)) throw wrongType(field, v, 'int');
  if (n < 0) {
    throw new MongoError(51024, 'Location51024', `BSON field '${field}' value must be >= 0, actual value '${n}'`);
  }
  return Math.floor(n);
}

module.exports = { parseSpec, resolveScope, assertLegal, parseBatchSize, isPlainDoc, toNumber };
