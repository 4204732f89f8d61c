// SPDX-License-Identifier: Apache-2.0
// Oplog record -> change event, with MongoDB's field order. The order is the
// one the server's transformation builds (change_stream_event_transform.cpp,
// checked against its unit tests): transaction fields and rename's `to` come
// before `_id`; then operationType, clusterTime, [collectionUUID], wallTime,
// fullDocument, ns, documentKey, [operationDescription], updateDescription;
// a fullDocumentBeforeChange is appended last by the pre-image stage
// (document_source_change_stream_add_pre_image.cpp).
'use strict';
const crypto = require('crypto');
const { Binary } = require('bson');
const { MongoError } = require('../errors');
const { makeEventToken } = require('./token');

const CRUD = new Set(['insert', 'update', 'replace', 'delete']);
const PRE_IMAGE_OPS = new Set(['update', 'replace', 'delete']);
const INTERNAL_DBS = new Set(['admin', 'config', 'local']);

// ---- tokens (same for every stream, so cached on the record) -------------

function eventIdentifier(rec) {
  if (CRUD.has(rec.op)) return { operationType: rec.op, documentKey: rec.documentKey };
  if (rec.op === 'rename') return { operationType: 'rename', operationDescription: renameDescription(rec) };
  return { operationType: rec.op };
}

// A rename's operationDescription (MongoDB 6.0+): its target, and the UUID
// of the collection it replaced when it ran with dropTarget.
function renameDescription(rec) {
  const description = { to: { db: rec.to.db, coll: rec.to.coll } };
  if (rec.dropTarget) description.dropTarget = rec.dropTarget;
  return description;
}

function recordUuid(rec) {
  return rec.op === 'dropDatabase' ? null : rec.uuid || null;
}

function tokenFor(rec) {
  if (!rec.token) {
    rec.token = makeEventToken({
      ts: rec.ts, txnOpIndex: rec.txnOpIndex, uuid: recordUuid(rec), eventIdentifier: eventIdentifier(rec),
    });
  }
  return rec.token;
}

function invalidateTokenFor(rec) {
  if (!rec.invalidateToken) {
    rec.invalidateToken = makeEventToken({
      ts: rec.ts, txnOpIndex: rec.txnOpIndex, fromInvalidate: true, uuid: recordUuid(rec),
      eventIdentifier: eventIdentifier(rec),
    });
  }
  return rec.invalidateToken;
}

// ---- which stream sees what ------------------------------------------------

// scope: {type: 'collection'|'database'|'cluster', db, coll, showSystemEvents}
// (document_source_change_stream.cpp, getNsRegexForChangeStream: database and
// cluster streams skip system.* collections; cluster streams skip the admin,
// config and local databases).
function nsVisible(scope, db, coll) {
  if (scope.type === 'collection') return db === scope.db && coll === scope.coll;
  if (coll !== undefined && coll.startsWith('system.') && !scope.showSystemEvents) return false;
  if (scope.type === 'database') return db === scope.db;
  return !INTERNAL_DBS.has(db);
}

function sees(scope, rec) {
  const { db, coll } = rec.ns;
  if (rec.op === 'dropDatabase') return scope.type !== 'collection' && nsVisible(scope, db, undefined);
  // A rename is seen from either side, and invalidates a collection stream on
  // either side (TransformRename / TransformRenameTarget in the server tests).
  if (rec.op === 'rename') return nsVisible(scope, db, coll) || nsVisible(scope, rec.to.db, rec.to.coll);
  return nsVisible(scope, db, coll);
}

// Whether `rec` ends the stream (an invalidate follows its event).
function invalidates(scope, rec) {
  if (scope.type === 'collection') return rec.op === 'drop' || rec.op === 'rename';
  if (scope.type === 'database') return rec.op === 'dropDatabase';
  return false;
}

// ---- building events --------------------------------------------------------

// MongoDB's oplog lsid always carries `uid`, the SHA-256 of the user name;
// without auth that is the digest of the empty string.
const NO_USER_UID = new Binary(crypto.createHash('sha256').update('').digest(), 0);

function eventLsid(lsid) {
  if (!lsid || lsid.uid !== undefined) return lsid;
  return { id: lsid.id, uid: NO_USER_UID };
}

function tsString(ts) {
  return `Timestamp(${ts.t}, ${ts.i})`;
}

// Document::toString() of {operationType, ns, clusterTime, txnNumber}, as in
// makePreImageNotFoundErrorMsg.
function describeForError(rec) {
  const ns = rec.op === 'dropDatabase' ? `{db: "${rec.ns.db}"}` : `{db: "${rec.ns.db}", coll: "${rec.ns.coll}"}`;
  let s = `{operationType: "${rec.op}", ns: ${ns}, clusterTime: ${tsString(rec.ts)}`;
  if (rec.txnNumber !== undefined) s += `, txnNumber: ${rec.txnNumber}`;
  return s + '}';
}

function imageMissing(which, rec) {
  const ops = which === 'pre' ? 'update, delete and replace events' : 'update events';
  const err = new MongoError(47, 'NoMatchingDocument',
    `Change stream was configured to require a ${which}-image for all ${ops}, but the ` +
    `${which}-image was not found for event: ${describeForError(rec)}`);
  err.duringExecution = true; // gets the executor's "caused by" prefix
  return err;
}

function copyUpdateDescription(ud, showExpanded, rec) {
  const out = {
    updatedFields: (ud && ud.updatedFields) || {},
    removedFields: (ud && ud.removedFields) || [],
    truncatedArrays: (ud && ud.truncatedArrays) || [],
  };
  if (showExpanded) out.disambiguatedPaths = disambiguatedPaths(out, rec);
  return out;
}

// 7.0+ with showExpandedEvents: for every path with a numeric component that
// names an object field (not an array index), the path split into its parts,
// array indexes as numbers (MongoDB docs, "updateDescription.disambiguatedPaths").
function disambiguatedPaths(ud, rec) {
  const out = {};
  const consider = (path, doc) => {
    const parts = path.split('.');
    let cur = doc;
    let ambiguous = false;
    const split = [];
    for (const part of parts) {
      const numeric = /^\d+$/.test(part);
      if (Array.isArray(cur) && numeric) {
        split.push(Number(part));
      } else {
        if (numeric) ambiguous = true;
        split.push(part);
      }
      cur = cur !== null && typeof cur === 'object' ? cur[part] : undefined;
    }
    if (ambiguous) out[path] = split;
  };
  for (const p of Object.keys(ud.updatedFields)) consider(p, rec.fullDocument);
  for (const p of ud.removedFields) consider(p, rec.fullDocumentBeforeChange);
  for (const t of ud.truncatedArrays) if (t && t.field) consider(t.field, rec.fullDocument);
  return out;
}

// opts: {fullDocument, fullDocumentBeforeChange, showExpandedEvents}
function buildEvent(rec, opts, store) {
  const ev = {};
  if (rec.txnNumber !== undefined) {
    ev.txnNumber = rec.txnNumber;
    ev.lsid = eventLsid(rec.lsid);
  }
  if (rec.op === 'rename') ev.to = { db: rec.to.db, coll: rec.to.coll };
  ev._id = tokenFor(rec);
  ev.operationType = rec.op;
  ev.clusterTime = rec.ts;
  if (opts.showExpandedEvents && recordUuid(rec)) ev.collectionUUID = rec.uuid;
  ev.wallTime = rec.wallTime;

  // fullDocument: the post-image. Insert and replace carry it; an update gets
  // it only on request (document_source_change_stream_add_post_image.cpp).
  if (rec.op === 'insert' || rec.op === 'replace') {
    ev.fullDocument = rec.fullDocument;
  } else if (rec.op === 'update' && opts.fullDocument !== 'default') {
    let post = null;
    if (opts.fullDocument === 'updateLookup') {
      post = store && store.lookup ? store.lookup(rec.ns.db, rec.ns.coll, rec.documentKey._id) : null;
    } else if (rec.preAndPostImagesEnabled && rec.fullDocument) {
      post = rec.fullDocument;
    }
    if (!post && opts.fullDocument === 'required') throw imageMissing('post', rec);
    ev.fullDocument = post || null;
  }

  ev.ns = rec.op === 'dropDatabase' ? { db: rec.ns.db } : { db: rec.ns.db, coll: rec.ns.coll };
  if (CRUD.has(rec.op)) ev.documentKey = rec.documentKey;
  if (opts.showExpandedEvents && rec.op === 'rename') {
    ev.operationDescription = renameDescription(rec);
  }
  if (rec.op === 'update') {
    ev.updateDescription = copyUpdateDescription(rec.updateDescription, opts.showExpandedEvents, rec);
  }

  // Pre-images exist only for collections with changeStreamPreAndPostImages
  // enabled at write time (MongoDB 6.0+); "whenAvailable" then gives null.
  if (opts.fullDocumentBeforeChange !== 'off' && PRE_IMAGE_OPS.has(rec.op)) {
    const pre = rec.preAndPostImagesEnabled && rec.fullDocumentBeforeChange ? rec.fullDocumentBeforeChange : null;
    if (!pre && opts.fullDocumentBeforeChange === 'required') throw imageMissing('pre', rec);
    ev.fullDocumentBeforeChange = pre;
  }
  return ev;
}

function buildInvalidate(rec) {
  return {
    _id: invalidateTokenFor(rec),
    operationType: 'invalidate',
    clusterTime: rec.ts,
    wallTime: rec.wallTime,
  };
}

module.exports = {
  tokenFor, invalidateTokenFor, sees, invalidates, buildEvent, buildInvalidate, nsVisible,
};
