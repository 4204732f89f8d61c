// SPDX-License-Identifier: Apache-2.0
// Collation: the spec (parsed and resolved as mongod's collator factory does,
// with the full shape listIndexes and listCollections show) and string
// comparison through ICU, which Node's Intl.Collator is.
//
// Intl.Collator exposes four of ICU's strength/caseLevel combinations
// (base, accent, case, variant) and drops ICU's own -u-ks/-u-kc keywords,
// so the other combinations are composed from those four, level by level,
// which is how ICU compares: primary, secondary, case level, tertiary. What
// cannot be composed (strength 4, maxVariable "space" with "shifted", a
// "backwards" that differs from the locale's) is refused with 115 naming
// the option, never approximated: a wrong answer is worse than a refusal.
'use strict';
const { MongoError } = require('./errors');
const { isPlainObject, bsonTypeName, renderDoc } = require('./store');

const ICU_VERSION = '57.1'; // the ICU mongod 7.0 and 8.0 are built with

const BOOLEAN_FIELDS = ['caseLevel', 'numericOrdering', 'normalization', 'backwards'];
const FIELD_ORDER = ['locale', 'caseLevel', 'caseFirst', 'strength', 'numericOrdering', 'alternate', 'maxVariable', 'normalization', 'backwards', 'version'];
// ICU's default for "backwards" (French secondary ordering) per locale.
const BACKWARDS_LOCALES = new Set(['fr_CA']);

function unsupported(option, spec) {
  return new MongoError(115, 'CommandNotSupported',
    `collation ${option} is not implemented by the stand-in (Node's ICU cannot compare that way): ${renderDoc(spec)}`);
}

function failedToParse(message) {
  return new MongoError(9, 'FailedToParse', message);
}

function checkEnum(spec, field, allowed) {
  const v = spec[field];
  if (v === undefined) return;
  if (typeof v !== 'string') {
    throw new MongoError(14, 'TypeMismatch', `BSON field 'collation.${field}' is the wrong type '${bsonTypeName(v)}', expected type 'string'`);
  }
  if (!allowed.includes(v)) {
    const quoted = allowed.map((a) => `'${a}'`);
    const choices = quoted.length > 2 ? `${quoted.slice(0, -1).join(', ')}, or ${quoted[quoted.length - 1]}` : quoted.join(' or ');
    throw failedToParse(`Field '${field}' must be ${choices}. Got: ${v}`);
  }
}

function intlLocale(locale) {
  if (/[@=]/.test(locale) || !/^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$/.test(locale)) return null;
  const tag = locale.replace(/_/g, '-');
  try {
    return Intl.Collator.supportedLocalesOf([tag], { localeMatcher: 'lookup' }).length ? tag : null;
  } catch (e) {
    return null;
  }
}

class Collation {
  constructor(spec) {
    this.spec = spec; // resolved: every field, in mongod's order
    const tag = intlLocale(spec.locale);
    const base = {
      usage: 'sort',
      caseFirst: spec.caseFirst === 'off' ? 'false' : spec.caseFirst,
      numeric: spec.numericOrdering,
      ignorePunctuation: spec.alternate === 'shifted',
    };
    const make = (sensitivity) => new Intl.Collator(tag, { ...base, sensitivity }).compare;
    // The levels compared, in ICU's order; the first that differs decides.
    const levels = [];
    if (spec.strength === 1) {
      levels.push(make(spec.caseLevel ? 'case' : 'base'));
    } else {
      levels.push(make('accent'));
      if (spec.caseLevel) levels.push(make('case'));
      if (spec.strength >= 3) levels.push(make('variant'));
    }
    this.levels = levels;
    this.identical = spec.strength === 5;
  }

  // -1, 0 or 1 for two strings.
  compare(a, b) {
    for (const level of this.levels) {
      const c = level(a, b);
      if (c) return c < 0 ? -1 : 1;
    }
    if (this.identical) {
      // ICU's identical level: code points of the NFD forms.
      const x = a.normalize('NFD'), y = b.normalize('NFD');
      return x === y ? 0 : x < y ? -1 : 1;
    }
    return 0;
  }

  equals(other) {
    return !!other && FIELD_ORDER.every((f) => this.spec[f] === other.spec[f]);
  }
}

// Parses a collation document as mongod does: null for the simple (binary)
// collation, else a Collation whose spec has every field resolved.
function parseCollation(raw, field = 'collation') {
  if (!isPlainObject(raw)) {
    throw new MongoError(14, 'TypeMismatch', `BSON field '${field}' is the wrong type '${bsonTypeName(raw)}', expected type 'object'`);
  }
  if (raw.locale === undefined) {
    throw new MongoError(40414, 'Location40414', `BSON field '${field}.locale' is missing but a required field`);
  }
  if (typeof raw.locale !== 'string') {
    throw new MongoError(14, 'TypeMismatch', `BSON field '${field}.locale' is the wrong type '${bsonTypeName(raw.locale)}', expected type 'string'`);
  }
  for (const k of Object.keys(raw)) {
    if (!FIELD_ORDER.includes(k)) throw new MongoError(40415, 'Location40415', `BSON field '${field}.${k}' is an unknown field.`);
  }
  for (const k of BOOLEAN_FIELDS) {
    if (raw[k] !== undefined && typeof raw[k] !== 'boolean') {
      throw new MongoError(14, 'TypeMismatch', `BSON field '${field}.${k}' is the wrong type '${bsonTypeName(raw[k])}', expected type 'bool'`);
    }
  }
  checkEnum(raw, 'caseFirst', ['upper', 'lower', 'off']);
  checkEnum(raw, 'alternate', ['non-ignorable', 'shifted']);
  checkEnum(raw, 'maxVariable', ['punct', 'space']);
  if (raw.strength !== undefined) {
    if (typeof raw.strength !== 'number' && bsonTypeName(raw.strength) !== 'long') {
      throw new MongoError(14, 'TypeMismatch', `BSON field '${field}.strength' is the wrong type '${bsonTypeName(raw.strength)}', expected types '[long, int, decimal, double]'`);
    }
    const s = Number(raw.strength);
    if (!Number.isInteger(s) || s < 1 || s > 5) throw failedToParse(`Field 'strength' must be an integer 1 through 5. Got: ${s}`);
  }
  if (raw.locale === 'simple') {
    if (Object.keys(raw).length > 1) {
      throw new MongoError(2, 'BadValue', `If "locale" is "simple", then no other fields may be specified: ${renderDoc(raw)}`);
    }
    return null;
  }
  if (!intlLocale(raw.locale)) {
    throw new MongoError(2, 'BadValue', `Field 'locale' is invalid in: ${renderDoc(raw)}`);
  }
  if (raw.version !== undefined && raw.version !== ICU_VERSION) {
    throw new MongoError(2, 'BadValue', `Field 'version' is invalid in: ${renderDoc(raw)}`);
  }
  const defaults = new Intl.Collator(intlLocale(raw.locale)).resolvedOptions();
  const spec = {
    locale: raw.locale,
    caseLevel: raw.caseLevel ?? false,
    caseFirst: raw.caseFirst ?? (defaults.caseFirst === 'false' ? 'off' : defaults.caseFirst),
    strength: raw.strength === undefined ? 3 : Number(raw.strength),
    numericOrdering: raw.numericOrdering ?? defaults.numeric,
    alternate: raw.alternate ?? (defaults.ignorePunctuation ? 'shifted' : 'non-ignorable'),
    maxVariable: raw.maxVariable ?? 'punct',
    normalization: raw.normalization ?? false,
    backwards: raw.backwards ?? BACKWARDS_LOCALES.has(raw.locale),
    version: ICU_VERSION,
  };
  if (spec.strength === 4) throw unsupported('strength 4 (quaternary)', raw);
  if (spec.alternate === 'shifted' && spec.maxVariable === 'space') throw unsupported('maxVariable "space"', raw);
  if (spec.backwards !== BACKWARDS_LOCALES.has(raw.locale)) throw unsupported(`backwards ${spec.backwards} for locale ${raw.locale}`, raw);
  return new Collation(spec);
}

function sameCollation(a, b) {
  return a ? a.equals(b) : !b;
}

// The default collation of the collection or view db.name (null: simple).
function defaultCollation(store, db, name) {
  const view = store.getView(db, name);
  const stored = view ? view.collation : store.getCollection(db, name)?.options.collation;
  return stored ? parseCollation(stored) : null;
}

// The collation an operation on db.name runs under: its own when it gives
// one (an explicit {locale: "simple"} included), else the default of the
// collection or view it names. A view's cannot be overridden.
function operationCollation(req, db, name, explicit, field = 'collation') {
  const byDefault = defaultCollation(req.ctx.store, db, name);
  if (explicit === undefined) return byDefault;
  const own = parseCollation(explicit, field);
  if (req.ctx.store.getView(db, name) && !sameCollation(own, byDefault)) {
    throw new MongoError(167, 'OptionNotSupportedOnView', "Cannot override a view's default collation");
  }
  return own;
}

module.exports = { parseCollation, operationCollation, defaultCollation };
