// SPDX-License-Identifier: Apache-2.0
// applyUpdate(): a change event's updateDescription applied to a document,
// as MongoDB's change streams describe updates (updatedFields with dotted
// paths and array indexes, removedFields, truncatedArrays,
// disambiguatedPaths), copy-on-write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyUpdate, deepEqual } from '../changecast.js';

const freeze = (v) => {
    if (v && typeof v === 'object') {
        Object.values(v).forEach(freeze);
        Object.freeze(v);
    }
    return v;
};

test('nested dotted paths set fields deep inside documents, creating missing documents', () => {
    const doc = freeze({ _id: 1, a: { b: { c: 1, d: 2 } }, keep: { x: 1 } });
    const next = applyUpdate(doc, { updatedFields: { 'a.b.c': 10, 'a.e': 'new', 'f.g.h': true }, removedFields: [] });
    assert.deepEqual(next, { _id: 1, a: { b: { c: 10, d: 2 }, e: 'new' }, keep: { x: 1 }, f: { g: { h: true } } });
    assert.deepEqual(doc.a.b.c, 1, 'the original document is untouched');
});

test('numeric segments index arrays, and name fields of documents', () => {
    const doc = freeze({ _id: 1, items: [{ qty: 1 }, { qty: 2 }], byYear: { 2024: 'a' } });
    const next = applyUpdate(doc, { updatedFields: { 'items.1.qty': 5, 'byYear.2025': 'b', 'items.0.tags.0': 'x' } });
    assert.deepEqual(next.items, [{ qty: 1, tags: { 0: 'x' } }, { qty: 5 }]);
    assert.ok(Array.isArray(next.items));
    assert.deepEqual(next.byYear, { 2024: 'a', 2025: 'b' });
});

test('setting past the end of an array pads it with nulls', () => {
    const next = applyUpdate({ _id: 1, a: [1] }, { updatedFields: { 'a.3': 4 } });
    assert.deepEqual(next.a, [1, null, null, 4]);
});

test('truncatedArrays shortens arrays before updatedFields apply', () => {
    // [1, 2, 3, 4] -> [1, 9]: MongoDB reports newSize 2 and a.1 = 9.
    const doc = freeze({ _id: 1, a: [1, 2, 3, 4], n: { list: ['x', 'y', 'z'] } });
    const next = applyUpdate(doc, {
        updatedFields: { 'a.1': 9 },
        removedFields: [],
        truncatedArrays: [{ field: 'a', newSize: 2 }, { field: 'n.list', newSize: 1 }],
    });
    assert.deepEqual(next, { _id: 1, a: [1, 9], n: { list: ['x'] } });
    assert.deepEqual(doc.a, [1, 2, 3, 4]);
});

test('removedFields deletes fields at any depth; an array element becomes null', () => {
    const doc = freeze({ _id: 1, a: { b: 1, c: 2 }, top: 0, arr: [1, 2, 3] });
    const next = applyUpdate(doc, { updatedFields: {}, removedFields: ['a.b', 'top', 'missing.path', 'arr.1'] });
    assert.deepEqual(next, { _id: 1, a: { c: 2 }, arr: [1, null, 3] });
    assert.ok(!('top' in next));
});

test('disambiguatedPaths tells field names holding dots or digits from array indexes', () => {
    const doc = freeze({ _id: 1, 'a.b': { 0: 'field zero' }, list: [{ 1: 'one' }] });
    const next = applyUpdate(doc, {
        updatedFields: { 'a.b.0': 'changed', 'list.0.1': 'uno' },
        removedFields: [],
        disambiguatedPaths: { 'a.b.0': ['a.b', '0'], 'list.0.1': ['list', 0, '1'] },
    });
    assert.deepEqual(next, { _id: 1, 'a.b': { 0: 'changed' }, list: [{ 1: 'uno' }] });
});

test('copy-on-write: untouched subtrees keep their identity, touched ones are new objects', () => {
    const doc = freeze({ _id: 1, a: { b: { c: 1 } }, other: { deep: [1, 2] } });
    const next = applyUpdate(doc, { updatedFields: { 'a.b.c': 2, 'a.b.d': 3 } });
    assert.notEqual(next, doc);
    assert.notEqual(next.a, doc.a);
    assert.equal(next.other, doc.other);
    assert.deepEqual(next.a.b, { c: 2, d: 3 });
});

test('an empty description leaves an equal copy', () => {
    const doc = { _id: 1, a: [1, { b: 2 }] };
    assert.ok(deepEqual(applyUpdate(doc, {}), doc));
    assert.ok(!deepEqual({ a: [1, 2] }, { a: { 0: 1, 1: 2 } }), 'arrays are not documents');
});
