// SPDX-License-Identifier: Apache-2.0
// Error code names (mongo/base/error_codes.yml) for the codes the stand-in
// produces or a failCommand fail point may ask for; others are named
// "Location<code>" as mongod names codes it has no name for.
'use strict';

const NAMES = {
  1: 'InternalError', 2: 'BadValue', 6: 'HostUnreachable', 7: 'HostNotFound', 8: 'UnknownError',
  9: 'FailedToParse', 11: 'UserNotFound', 13: 'Unauthorized', 14: 'TypeMismatch', 17: 'ProtocolError',
  18: 'AuthenticationFailed', 20: 'IllegalOperation', 24: 'LockTimeout', 26: 'NamespaceNotFound',
  27: 'IndexNotFound', 43: 'CursorNotFound', 46: 'LockBusy', 48: 'NamespaceExists', 50: 'MaxTimeMSExpired',
  59: 'CommandNotFound', 63: 'StaleShardVersion', 64: 'WriteConcernFailed', 66: 'ImmutableField',
  67: 'CannotCreateIndex', 72: 'InvalidOptions', 73: 'InvalidNamespace', 79: 'UnknownReplWriteConcern',
  85: 'IndexOptionsConflict', 86: 'IndexKeySpecsConflict', 89: 'NetworkTimeout', 91: 'ShutdownInProgress',
  96: 'OperationFailed', 100: 'UnsatisfiableWriteConcern', 112: 'WriteConflict', 115: 'CommandNotSupported',
  117: 'ConflictingOperationInProgress', 121: 'DocumentValidationFailure', 133: 'FailedToSatisfyReadPreference',
  134: 'ReadConcernMajorityNotAvailableYet', 136: 'CappedPositionLost', 150: 'StaleEpoch',
  175: 'QueryPlanKilled', 186: 'ClientMetadataCannotBeMutated', 189: 'PrimarySteppedDown',
  211: 'KeyNotFound', 225: 'TransactionTooOld', 234: 'RetryChangeStream', 237: 'CursorKilled',
  239: 'SnapshotTooOld', 244: 'TransactionAborted', 246: 'SnapshotUnavailable', 251: 'NoSuchTransaction',
  256: 'TransactionCommitted', 262: 'ExceededTimeLimit', 263: 'OperationNotSupportedInTransaction',
  280: 'ChangeStreamFatalError', 286: 'ChangeStreamHistoryLost', 334: 'MechanismUnavailable',
  352: 'UnsupportedOpQueryCommand', 9001: 'SocketException', 10107: 'NotWritablePrimary',
  11000: 'DuplicateKey', 11600: 'InterruptedAtShutdown', 11601: 'Interrupted',
  11602: 'InterruptedDueToReplStateChange', 13388: 'StaleConfig', 13435: 'NotPrimaryNoSecondaryOk',
  13436: 'NotPrimaryOrSecondary',
};

function codeName(code) {
  return NAMES[code] || `Location${code}`;
}

// Retryable-writes spec, "Determining Retryable Errors".
const RETRYABLE_CODES = new Set([6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

// Errors that end a transaction but may be retried as a whole
// (mongod's isTransientTransactionError).
const TRANSIENT_TXN_CODES = new Set([24, 112, 239, 246, 251, 13388]);

// "Not primary" and shutdown errors: mongod adds its topologyVersion to
// these replies (server-discovery-and-monitoring spec, "topologyVersion").
const STATE_CHANGE_CODES = new Set([91, 189, 10107, 11600, 11602, 13435, 13436]);

// mongod's NonResumableChangeStreamError category (error_codes.yml):
// ChangeStreamFatalError and ChangeStreamHistoryLost. Every reply failing
// with one carries that label, whatever the command (error_labels.cpp), so
// drivers know not to resume (change-streams spec, "Resumable Error").
const NON_RESUMABLE_CHANGE_STREAM_CODES = new Set([280, 286]);

// An aggregate opening a $changeStream, or a getMore of one, failing with
// one of these gets ResumableChangeStreamError (error_labels.cpp: retriable,
// network and retargeting errors, RetryChangeStream 234 and
// FailedToSatisfyReadPreference 133).
const RESUMABLE_CHANGE_STREAM_CODES = new Set([...RETRYABLE_CODES, 63, 150, 13388, 234, 133]);

module.exports = {
  codeName, RETRYABLE_CODES, TRANSIENT_TXN_CODES, STATE_CHANGE_CODES,
  NON_RESUMABLE_CHANGE_STREAM_CODES, RESUMABLE_CHANGE_STREAM_CODES,
};
