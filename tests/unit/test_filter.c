/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/filter: tables of (filter, document, expected) per operator and per path
 * rule, rejected filters with their messages, the BSON comparison order and pinned _id values.
 * JSON in the tables uses single quotes for readability; they become double quotes before
 * parsing. Expected results follow the MongoDB manual and the server's jstests. */
#include "changecast/filter.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *filter;
    const char *doc;
    bool expected;
} match_case_t;

/* libbson's JSON reader takes {$type: ...} and {$regex: ..., $options: ...} for legacy
 * Extended JSON; the tables spell those operators $__type, $__regex and $__options. */
static void copy_unescaped(bson_t *out, bson_iter_t *it)
{
    while (bson_iter_next(it)) {
        const char *key = bson_iter_key(it);
        char name[64];
        if (!strncmp(key, "$__", 3) && strlen(key) < sizeof name) {
            snprintf(name, sizeof name, "$%s", key + 3);
            key = name;
        }
        bson_iter_t child;
        bson_t sub;
        if (BSON_ITER_HOLDS_DOCUMENT(it) && bson_iter_recurse(it, &child)) {
            bson_append_document_begin(out, key, -1, &sub);
            copy_unescaped(&sub, &child);
            bson_append_document_end(out, &sub);
        } else if (BSON_ITER_HOLDS_ARRAY(it) && bson_iter_recurse(it, &child)) {
            bson_append_array_begin(out, key, -1, &sub);
            copy_unescaped(&sub, &child);
            bson_append_array_end(out, &sub);
        } else {
            bson_append_iter(out, key, -1, it);
        }
    }
}

static bson_t *parse(const char *json)
{
    char *text = bson_strdup(json);
    for (char *p = text; *p; p++) {
        if (*p == '\'')
            *p = '"';
    }
    bson_error_t error;
    bson_t *b = bson_new_from_json((const uint8_t *)text, -1, &error);
    if (!b)
        fail_msg("bad JSON in test table: %s: %s", json, error.message);
    bson_free(text);
    bson_t *out = bson_new();
    bson_iter_t it;
    bson_iter_init(&it, b);
    copy_unescaped(out, &it);
    bson_destroy(b);
    return out;
}

static void run_matches(const match_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bson_t *q = parse(cases[i].filter), *d = parse(cases[i].doc);
        bson_error_t error;
        cc_filter_t *f = cc_filter_compile(q, &error);
        if (!f)
            fail_msg("%s: rejected: %s", cases[i].filter, error.message);
        bool got = cc_filter_matches(f, d);
        if (got != cases[i].expected)
            fail_msg("filter %s on %s: got %d, expected %d", cases[i].filter, cases[i].doc, got,
                     cases[i].expected);
        cc_filter_destroy(f);
        bson_destroy(q);
        bson_destroy(d);
    }
}

#define RUN(table) run_matches(table, sizeof table / sizeof table[0])

static void test_filter_equality_and_dotted_paths(void **state)
{
    (void)state;
    static const match_case_t cases[] = {
        {"{}", "{'a': 1}", true},
        {"{'a': 1}", "{'a': 1}", true},
        {"{'a': 1}", "{'a': 2}", false},
        {"{'a': 1}", "{'a': 1.0}", true},
        {"{'a': 1}", "{'a': {'$numberLong': '1'}}", true},
        {"{'a': 1}", "{'a': {'$numberDecimal': '1.0'}}", true},
        {"{'a': 1}", "{'a': '1'}", false},
        {"{'a': 1}", "{'a': true}", false},
        {"{'fullDocument.status': 'A'}", "{'fullDocument': {'status': 'A'}}", true},
        {"{'fullDocument.status': 'A'}", "{'fullDocument': {'status': 'B'}}", false},
        {"{'documentKey._id': {'$oid': '64b000000000000000000001'}}",
         "{'documentKey': {'_id': {'$oid': '64b000000000000000000001'}}}", true},
        {"{'a.b.c': 1}", "{'a': {'b': {'c': 1}}}", true},
        {"{'a.b.c': 1}", "{'a': {'b': 5}}", false},
        /* whole embedded documents: exact match, field order matters */
        {"{'a': {'x': 1, 'y': 2}}", "{'a': {'x': 1, 'y': 2}}", true},
        {"{'a': {'x': 1, 'y': 2}}", "{'a': {'y': 2, 'x': 1}}", false},
        {"{'a': {'x': 1}}", "{'a': {'x': 1, 'y': 2}}", false},
        {"{'a': {'x': 1}}", "{'a': {'x': 1.0}}", true},
        /* implicit $and */
        {"{'a': 1, 'b': 2}", "{'a': 1, 'b': 2}", true},
        {"{'a': 1, 'b': 2}", "{'a': 1, 'b': 3}", false},
        {"{'$comment': 'note', 'a': 1}", "{'a': 1}", true},
    };
    RUN(cases);
}

static void test_filter_null_matches_missing(void **state)
{
    (void)state;
    static const match_case_t cases[] = {
        {"{'a': null}", "{}", true},
        {"{'a': null}", "{'a': null}", true},
        {"{'a': null}", "{'a': 0}", false},
        {"{'a': null}", "{'a': [1, null]}", true},
        {"{'a': null}", "{'a': []}", false},
        {"{'a': null}", "{'a': {'$undefined': true}}", false},
        {"{'a.b': null}", "{'a': 4}", true},
        {"{'a.b': null}", "{'a': {}}", true},
        {"{'a.b': null}", "{'a': [{'b': 3}, {}]}", true},
        {"{'a.b': null}", "{'a': [{'b': 1}, {'b': 3}]}", false},
        /* a path through an array of scalars reaches nothing: missing, so null */
        {"{'a.b': null}", "{'a': [1, 2]}", true},
        {"{'a.b': null}", "{'a': []}", true},
        {"{'a.b': null}", "{'a': [[]]}", true},
        {"{'a.b': {'$in': [null, 75]}}", "{'a': [1, 'x']}", true},
        {"{'a.b': {'$ne': null}}", "{'a': [1, 2]}", false},
        {"{'a.b': {'$ne': null}}", "{'a': [{'b': 1}]}", true},
        {"{'a': {'$ne': null}}", "{}", false},
        {"{'a': {'$gte': null}}", "{}", true},
        {"{'a': {'$lte': null}}", "{'a': null}", true},
        {"{'a': {'$gt': null}}", "{'a': null}", false},
        {"{'a': {'$lt': null}}", "{}", false},
        {"{'a': {'$in': [null]}}", "{}", true},
        {"{'a': {'$nin': [null]}}", "{}", false},
    };
    RUN(cases);
}

static void test_filter_array_traversal(void **state)
{
    (void)state;
    static const match_case_t cases[] = {
        {"{'a': 1}", "{'a': [1, 2]}", true},
        {"{'a': [1, 2]}", "{'a': [1, 2]}", true},
        {"{'a': [1, 2]}", "{'a': [2, 1]}", false},
        {"{'a': [1, 2]}", "{'a': [[1, 2], 3]}", true},
        /* one level of traversal per path component: nested arrays are not entered */
        {"{'a': 1}", "{'a': [[1]]}", false},
        {"{'a.b': 1}", "{'a': [{'b': 1}, {'b': 2}]}", true},
        {"{'a.b': 1}", "{'a': [{'b': [0, 1]}]}", true},
        {"{'a.b': 1}", "{'a': [[{'b': 1}]]}", false},
        {"{'a.b.c': 1}", "{'a': [{'b': [{'c': 1}]}]}", true},
        /* numeric components index arrays */
        {"{'a.0': 5}", "{'a': [5, 6]}", true},
        {"{'a.1': 5}", "{'a': [5, 6]}", false},
        {"{'a.0': 5}", "{'a': [[5]]}", false},
        {"{'a.0.b': 1}", "{'a': [{'b': 1}]}", true},
        {"{'a.1.b': 1}", "{'a': [{'b': 1}, {'b': 2}]}", false},
        {"{'a.0.1': 6}", "{'a': [[5, 6]]}", true},
        {"{'a.0': 1}", "{'a': {'0': 1}}", true},
        /* a numeric component also reads a field of that name in document elements */
        {"{'a.0.b': 7}", "{'a': [{'0': {'b': 7}}]}", true},
        {"{'a.0': {'$exists': true}}", "{'a': []}", false},
        /* $ne and $nin require no element to match */
        {"{'a': {'$ne': 1}}", "{'a': [1, 2]}", false},
        {"{'a': {'$ne': 3}}", "{'a': [1, 2]}", true},
        {"{'a': {'$nin': [2, 5]}}", "{'a': [1, 2]}", false},
        {"{'a': {'$nin': [5]}}", "{'a': [1, 2]}", true},
        {"{'a': {'$gt': 1, '$lt': 2}}", "{'a': [0, 3]}", true},
        {"{'a': {'$elemMatch': {'$gt': 1, '$lt': 2}}}", "{'a': [0, 3]}", false},
    };
    RUN(cases);
}

static void test_filter_comparisons_stay_in_type_bracket(void **state)
{
    (void)state;
    static const match_case_t cases[] = {
        {"{'a': {'$gt': 5}}", "{'a': 6}", true},
        {"{'a': {'$gt': 5}}", "{'a': 5}", false},
        {"{'a': {'$gte': 5}}", "{'a': 5.0}", true},
        {"{'a': {'$gt': 5}}", "{'a': 'x'}", false},
        {"{'a': {'$lt': 5}}", "{'a': 'x'}", false},
        {"{'a': {'$lt': 5}}", "{'a': null}", false},
        {"{'a': {'$gt': 5}}", "{'a': {'$numberLong': '9007199254740993'}}", true},
        {"{'a': {'$lt': {'$numberLong': '9007199254740993'}}}", "{'a': 9007199254740992.0}", true},
        {"{'a': {'$gt': 'abc'}}", "{'a': 'abd'}", true},
        {"{'a': {'$gt': 'abc'}}", "{'a': 'ab'}", false},
        {"{'a': {'$lt': 'b'}}", "{'a': 'B'}", true},
        {"{'a': {'$gt': {'$date': '2024-01-01T00:00:00Z'}}}",
         "{'a': {'$date': '2024-06-01T00:00:00Z'}}", true},
        {"{'a': {'$gt': {'$date': '2024-01-01T00:00:00Z'}}}", "{'a': 1e15}", false},
        {"{'a': {'$gt': false}}", "{'a': true}", true},
        {"{'a': {'$gt': {'$minKey': 1}}}", "{'a': 'x'}", true},
        {"{'a': {'$lt': {'$maxKey': 1}}}", "{'a': null}", true},
        {"{'a': {'$gt': [1]}}", "{'a': [2]}", true},
        {"{'a': {'$gt': {'x': 1}}}", "{'a': {'x': 2}}", true},
        {"{'a': {'$eq': {'$numberDouble': 'NaN'}}}", "{'a': {'$numberDouble': 'NaN'}}", true},
        {"{'a': {'$lt': 0}}", "{'a': {'$numberDouble': 'NaN'}}", false},
        {"{'a': {'$gt': {'$numberDouble': 'NaN'}}}", "{'a': 1}", false},
        {"{'a': {'$gte': {'$numberDouble': 'NaN'}}}", "{'a': {'$numberDouble': 'NaN'}}", true},
        {"{'a': {'$gt': {'$oid': '64b000000000000000000001'}}}",
         "{'a': {'$oid': '64b000000000000000000002'}}", true},
    };
    RUN(cases);
}

static void test_filter_in_exists_type(void **state)
{
    (void)state;
    static const match_case_t cases[] = {
        {"{'a': {'$in': [1, 'x']}}", "{'a': 'x'}", true},
        {"{'a': {'$in': [1, 'x']}}", "{'a': [3, 1]}", true},
        {"{'a': {'$in': []}}", "{'a': 1}", false},
        {"{'a': {'$in': [{'$regularExpression': {'pattern': '^ab', 'options': ''}}]}}",
         "{'a': 'abc'}", true},
        {"{'a': {'$in': [[1, 2]]}}", "{'a': [1, 2]}", true},
        {"{'a': {'$exists': true}}", "{'a': null}", true},
        {"{'a': {'$exists': true}}", "{}", false},
        {"{'a': {'$exists': false}}", "{}", true},
        {"{'a': {'$exists': 0}}", "{'a': 1}", false},
        {"{'a.b': {'$exists': true}}", "{'a': [{'b': 1}]}", true},
        {"{'a.b': {'$exists': true}}", "{'a': [1]}", false},
        {"{'a': {'$__type': 'string'}}", "{'a': 'x'}", true},
        {"{'a': {'$__type': 'number'}}", "{'a': {'$numberLong': '5'}}", true},
        {"{'a': {'$__type': 'number'}}", "{'a': '5'}", false},
        {"{'a': {'$__type': 'string'}}", "{'a': [1, 'x']}", true},
        {"{'a': {'$__type': 'array'}}", "{'a': []}", true},
        {"{'a': {'$__type': 'array'}}", "{'a': 1}", false},
        {"{'a': {'$__type': 'null'}}", "{}", false},
        {"{'a': {'$__type': 'int'}}", "{'a': 1.0}", false},
        {"{'a': {'$__type': 2}}", "{'a': 'x'}", true},
        {"{'a': {'$__type': ['bool', 'null']}}", "{'a': null}", true},
        {"{'a': {'$__type': [16, 'long']}}", "{'a': 2.0}", false},
        {"{'a': {'$__regex': 'X', '$__options': 'i'}}", "{'a': 'x'}", true},
        {"{'a': {'$__type': 'double'}}", "{'a': 1.5}", true},
        {"{'a': {'$__type': 'minKey'}}", "{'a': {'$minKey': 1}}", true},
    };
    RUN(cases);
}

static void test_filter_logical_operators(void **state)
{
    (void)state;
    static const match_case_t cases[] = {
        {"{'$and': [{'a': 1}, {'b': 2}]}", "{'a': 1, 'b': 2}", true},
        {"{'$and': [{'a': 1}, {'b': 2}]}", "{'a': 1}", false},
        {"{'$or': [{'a': 1}, {'b': 2}]}", "{'b': 2}", true},
        {"{'$or': [{'a': 1}, {'b': 2}]}", "{'b': 3}", false},
        {"{'$nor': [{'a': 1}, {'b': 2}]}", "{'b': 3}", true},
        {"{'$nor': [{'a': 1}, {'b': 2}]}", "{'a': 1}", false},
        {"{'a': {'$not': {'$gt': 5}}}", "{'a': 3}", true},
        {"{'a': {'$not': {'$gt': 5}}}", "{}", true},
        {"{'a': {'$not': {'$gt': 5}}}", "{'a': [3, 7]}", false},
        {"{'a': {'$not': {'$gt': 1, '$lt': 5}}}", "{'a': 3}", false},
        {"{'a': {'$not': {'$gt': 1, '$lt': 5}}}", "{'a': 7}", true},
        {"{'a': {'$not': {'$regularExpression': {'pattern': '^x', 'options': ''}}}}", "{'a': 'yx'}",
         true},
        {"{'a': {'$not': {'$regex': '^x'}}}", "{'a': 'xy'}", false},
    };
    RUN(cases);
}

static void test_filter_array_operators(void **state)
{
    (void)state;
    static const match_case_t cases[] = {
        {"{'a': {'$size': 2}}", "{'a': [1, 2]}", true},
        {"{'a': {'$size': 2}}", "{'a': [1]}", false},
        {"{'a': {'$size': 0}}", "{'a': []}", true},
        {"{'a': {'$size': 0}}", "{}", false},
        {"{'a': {'$size': 2}}", "{'a': [[1, 2]]}", false},
        {"{'a': {'$size': 2.0}}", "{'a': [1, 2]}", true},
        {"{'a.b': {'$size': 1}}", "{'a': [{'b': [1]}, {'b': [1, 2]}]}", true},
        {"{'a': {'$all': [1, 2]}}", "{'a': [2, 3, 1]}", true},
        {"{'a': {'$all': [1, 2]}}", "{'a': [1, 3]}", false},
        {"{'a': {'$all': [1]}}", "{'a': 1}", true},
        {"{'a': {'$all': []}}", "{'a': []}", false},
        {"{'a': {'$all': [[1, 2]]}}", "{'a': [1, 2]}", true},
        {"{'a': {'$all': [[1, 2]]}}", "{'a': [[1, 2], 3]}", true},
        {"{'a': {'$all': [{'$elemMatch': {'x': 1}}, {'$elemMatch': {'y': 2}}]}}",
         "{'a': [{'x': 1}, {'y': 2}]}", true},
        {"{'a': {'$all': [{'$elemMatch': {'x': 1}}, {'$elemMatch': {'y': 2}}]}}",
         "{'a': [{'x': 1}]}", false},
        {"{'a': {'$elemMatch': {'$gte': 80, '$lt': 85}}}", "{'a': [82, 90]}", true},
        {"{'a': {'$elemMatch': {'$gte': 80, '$lt': 85}}}", "{'a': [79, 90]}", false},
        {"{'a': {'$elemMatch': {'x': 1, 'y': {'$gt': 1}}}}", "{'a': [{'x': 1, 'y': 2}]}", true},
        {"{'a': {'$elemMatch': {'x': 1, 'y': {'$gt': 1}}}}",
         "{'a': [{'x': 1, 'y': 0}, {'x': 2, 'y': 2}]}", false},
        {"{'a': {'$elemMatch': {'$gt': 1}}}", "{'a': [[1, 5]]}", false},
        {"{'a': {'$elemMatch': {'$gt': 1}}}", "{'a': 5}", false},
        {"{'a': {'$elemMatch': {}}}", "{'a': [1, {}]}", true},
        {"{'a': {'$elemMatch': {}}}", "{'a': [1]}", false},
        {"{'a': {'$elemMatch': {'$or': [{'x': 1}, {'x': 2}]}}}", "{'a': [{'x': 2}]}", true},
        {"{'a': {'$elemMatch': {'$not': {'$gt': 1}}}}", "{'a': [5, 0]}", true},
        {"{'a': {'$elemMatch': {'$elemMatch': {'$eq': 1}}}}", "{'a': [[1]]}", true},
        {"{'a.b': {'$elemMatch': {'$eq': 1}}}", "{'a': [{'b': [1]}]}", true},
    };
    RUN(cases);
}

static void test_filter_mod_and_regex(void **state)
{
    (void)state;
    static const match_case_t cases[] = {
        {"{'a': {'$mod': [4, 0]}}", "{'a': 8}", true},
        {"{'a': {'$mod': [4, 0]}}", "{'a': 9}", false},
        {"{'a': {'$mod': [4, 1]}}", "{'a': 9.9}", true},
        {"{'a': {'$mod': [4, -1]}}", "{'a': -5}", true},
        {"{'a': {'$mod': [-4, 1]}}", "{'a': 5}", true},
        {"{'a': {'$mod': [4.5, 1]}}", "{'a': 5}", true},
        {"{'a': {'$mod': [4, 1.9]}}", "{'a': 5}", true},
        {"{'a': {'$mod': [2, 0]}}", "{'a': '4'}", false},
        {"{'a': {'$mod': [2, 0]}}", "{'a': {'$numberDouble': 'NaN'}}", false},
        {"{'a': {'$mod': [2, 1]}}", "{'a': [2, 3]}", true},
        {"{'a': {'$mod': [-1, 0]}}", "{'a': {'$numberLong': '-9223372036854775808'}}", true},
        {"{'a': {'$regex': '^ab'}}", "{'a': 'abc'}", true},
        {"{'a': {'$regex': '^ab'}}", "{'a': 'cab'}", false},
        {"{'a': {'$regex': '^AB', '$options': 'i'}}", "{'a': 'abc'}", true},
        {"{'a': {'$regex': '^b', '$options': 'm'}}", "{'a': 'a\\nb'}", true},
        {"{'a': {'$regex': '^b'}}", "{'a': 'a\\nb'}", false},
        {"{'a': {'$regex': 'a.b', '$options': 's'}}", "{'a': 'a\\nb'}", true},
        {"{'a': {'$regex': 'a b # comment', '$options': 'x'}}", "{'a': 'ab'}", true},
        {"{'a': {'$regularExpression': {'pattern': '^x', 'options': 'i'}}}", "{'a': 'Xy'}", true},
        {"{'a': {'$regex': '^x'}}", "{'a': ['y', 'xz']}", true},
        {"{'a': {'$regex': '^1'}}", "{'a': 1}", false},
        {"{'a': {'$regex': 'é'}}", "{'a': 'café'}", true},
        {"{'a': {'$eq': {'$regularExpression': {'pattern': 'x', 'options': ''}}}}",
         "{'a': {'$regularExpression': {'pattern': 'x', 'options': ''}}}", true},
        {"{'a': {'$eq': {'$regularExpression': {'pattern': 'x', 'options': ''}}}}", "{'a': 'x'}",
         false},
        {"{'a': {'$regularExpression': {'pattern': 'x', 'options': ''}}}",
         "{'a': {'$regularExpression': {'pattern': 'x', 'options': ''}}}", true},
    };
    RUN(cases);
}

typedef struct {
    const char *filter;
    const char *message;
} reject_case_t;

static void test_filter_rejects_with_actionable_message(void **state)
{
    (void)state;
    static const reject_case_t cases[] = {
        {"{'$where': 'true'}", "unknown operator $where: not supported in subscriber filters"},
        {"{'$expr': {'$eq': ['$a', 1]}}", "unknown operator $expr: not supported"},
        {"{'$function': {}}", "unknown operator $function: not supported"},
        {"{'$text': {'$search': 'x'}}", "unknown operator $text: not supported"},
        {"{'a': {'$where': 'x'}}", "unknown operator $where: not supported"},
        {"{'a': {'$bitsAllSet': 1}}", "unknown operator $bitsAllSet: not supported"},
        {"{'a': {'$geoWithin': {}}}", "unknown operator $geoWithin"},
        {"{'a': {'$elemMatch': {'$where': 'x'}}}", "unknown operator $where"},
        {"{'a': {'$elemMatch': {'b': {'$expr': 1}}}}", "unknown operator $expr"},
        {"{'a': {'$gt': 1, 'b': 2}}", "a: unknown operator \"b\""},
        {"{'a': {'$in': 1}}", "$in needs an array"},
        {"{'a': {'$nin': {}}}", "$nin needs an array"},
        {"{'a': {'$in': [{'$gt': 1}]}}", "$in: cannot nest $gt under $in"},
        {"{'a': {'$all': 1}}", "$all needs an array"},
        {"{'a': {'$all': [{'$elemMatch': {'x': 1}}, 2]}}", "$all/$elemMatch has to be consistent"},
        {"{'a': {'$all': [{'$gt': 1}]}}", "no $ expressions in $all"},
        {"{'a': {'$regex': '('}}", "$regex: invalid pattern \"(\" at offset 1"},
        {"{'a': {'$__options': 'i'}}", "$options needs a $regex"},
        {"{'a': {'$mod': 2}}", "malformed mod, needs to be an array"},
        {"{'a': {'$mod': [2]}}", "malformed mod, not enough elements"},
        {"{'a': {'$mod': [2, 1, 0]}}", "malformed mod, too many elements"},
        {"{'a': {'$mod': ['x', 1]}}", "malformed mod, divisor not a number"},
        {"{'a': {'$mod': [2, 'x']}}", "malformed mod, remainder not a number"},
        {"{'a': {'$mod': [0, 1]}}", "$mod: divisor cannot be 0"},
        {"{'a': {'$mod': [0.5, 1]}}", "$mod: divisor cannot be 0"},
        {"{'a': {'$mod': [{'$numberDouble': 'NaN'}, 1]}}", "divisor value is invalid"},
        {"{'a': {'$size': 'x'}}", "$size needs a number"},
        {"{'a': {'$size': 1.5}}", "$size must be a whole number"},
        {"{'a': {'$size': -1}}", "$size may not be negative"},
        {"{'a': {'$__type': 'text'}}", "$type: unknown type name alias \"text\""},
        {"{'a': {'$not': 5}}", "$not needs a regex or a document"},
        {"{'a': {'$not': {}}}", "$not cannot be empty"},
        {"{'a': {'$not': {'b': 1}}}", "unknown operator \"b\""},
        {"{'a': {'$elemMatch': 1}}", "$elemMatch needs an object"},
        {"{'$and': {}}", "$and argument must be an array"},
        {"{'$or': []}", "$or argument must be a non-empty array"},
        {"{'$nor': [1]}", "$nor entries need to be full objects"},
        {"{'a': {'$undefined': true}}", "cannot compare to undefined"},
        {"{'a': {'$ne': {'$regularExpression': {'pattern': 'x', 'options': ''}}}}",
         "$ne: can't have a regex"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bson_t *q = parse(cases[i].filter);
        bson_error_t error;
        cc_filter_t *f = cc_filter_compile(q, &error);
        if (f)
            fail_msg("%s: accepted, expected \"%s\"", cases[i].filter, cases[i].message);
        if (!strstr(error.message, cases[i].message))
            fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].filter, error.message,
                     cases[i].message);
        bson_destroy(q);
    }
}

static void test_filter_rejects_nesting_deeper_than_32(void **state)
{
    (void)state;
    bson_t *q = bson_new();
    bson_t *inner = BCON_NEW("a", BCON_INT32(1));
    for (int i = 0; i < 40; i++) {
        bson_t *outer = bson_new(), arr;
        bson_append_array_begin(outer, "$and", 4, &arr);
        bson_append_document(&arr, "0", 1, inner);
        bson_append_array_end(outer, &arr);
        bson_destroy(inner);
        inner = outer;
    }
    bson_error_t error;
    assert_null(cc_filter_compile(inner, &error));
    assert_string_equal(error.message, "filter nests deeper than 32 levels");
    bson_destroy(inner);
    bson_destroy(q);

    /* 31 levels of $not still compile */
    char text[1024] = "{'a': ";
    for (int i = 0; i < 30; i++)
        strcat(text, "{'$not': ");
    strcat(text, "{'$gt': 1}");
    for (int i = 0; i < 30; i++)
        strcat(text, "}");
    strcat(text, "}");
    bson_t *ok = parse(text);
    cc_filter_t *f = cc_filter_compile(ok, &error);
    assert_non_null(f);
    cc_filter_destroy(f);
    bson_destroy(ok);
}

static int compare_json_values(const char *a, const char *b)
{
    bson_t *da = parse(a), *db = parse(b);
    bson_iter_t ia, ib;
    assert_true(bson_iter_init_find(&ia, da, "v"));
    assert_true(bson_iter_init_find(&ib, db, "v"));
    int c = cc_bson_compare_values(&ia, &ib);
    bson_destroy(da);
    bson_destroy(db);
    return c;
}

static void test_compare_follows_bson_sort_order(void **state)
{
    (void)state;
    /* each strictly below the next ("Comparison/Sort Order" in the MongoDB manual) */
    static const char *ascending[] = {
        "{'v': {'$minKey': 1}}",
        "{'v': {'$undefined': true}}",
        "{'v': null}",
        "{'v': {'$numberDouble': 'NaN'}}",
        "{'v': {'$numberDouble': '-Infinity'}}",
        "{'v': {'$numberLong': '-9223372036854775808'}}",
        "{'v': -1.5}",
        "{'v': -1}",
        "{'v': {'$numberDecimal': '-0.5'}}",
        "{'v': 0}",
        "{'v': 2.5}",
        "{'v': {'$numberLong': '9007199254740993'}}",
        "{'v': 1e300}",
        "{'v': ''}",
        "{'v': 'B'}",
        "{'v': 'a'}",
        "{'v': 'ab'}",
        "{'v': {}}",
        "{'v': {'a': 1}}",
        "{'v': {'a': 'x'}}",
        "{'v': {'b': 'y'}}",
        "{'v': []}",
        "{'v': [1]}",
        "{'v': [1, 2]}",
        "{'v': [2]}",
        "{'v': {'$binary': {'base64': 'AA==', 'subType': '00'}}}",
        "{'v': {'$oid': '000000000000000000000001'}}",
        "{'v': {'$oid': 'ff0000000000000000000000'}}",
        "{'v': false}",
        "{'v': true}",
        "{'v': {'$date': {'$numberLong': '-1'}}}",
        "{'v': {'$date': {'$numberLong': '5'}}}",
        "{'v': {'$timestamp': {'t': 1, 'i': 2}}}",
        "{'v': {'$timestamp': {'t': 2, 'i': 1}}}",
        "{'v': {'$regularExpression': {'pattern': 'a', 'options': ''}}}",
        "{'v': {'$maxKey': 1}}",
    };
    size_t n = sizeof ascending / sizeof ascending[0];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int c = compare_json_values(ascending[i], ascending[j]);
            int want = (i > j) - (i < j);
            if ((c > 0) - (c < 0) != want)
                fail_msg("compare(%s, %s) = %d, expected sign %d", ascending[i], ascending[j], c,
                         want);
        }
    }
    assert_int_equal(compare_json_values("{'v': 1}", "{'v': {'$numberDecimal': '1.00'}}"), 0);
    assert_int_equal(compare_json_values("{'v': 1}", "{'v': {'$numberLong': '1'}}"), 0);
    assert_int_equal(compare_json_values("{'v': 'x'}", "{'v': {'$symbol': 'x'}}"), 0);
}

/* Filters libbson's JSON reader cannot express: it turns {$regex, $options} into a regex value
 * (dropping unknown flags) and reads {$type: <number or array>} as legacy binary. */
static void test_filter_operands_json_cannot_express(void **state)
{
    (void)state;
    bson_error_t error;
    bson_t *doc = BCON_NEW("a", BCON_UTF8("Xy"), "b", BCON_INT32(7), "c", "[", BCON_UTF8("m"), "]");

    bson_t *q = BCON_NEW("a", "{", "$regex", BCON_REGEX("^x", "i"), "}");
    cc_filter_t *f = cc_filter_compile(q, &error);
    assert_non_null(f);
    assert_true(cc_filter_matches(f, doc));
    cc_filter_destroy(f);
    bson_destroy(q);

    q = BCON_NEW("a", "{", "$options", BCON_UTF8("i"), "$regex", BCON_UTF8("^x"), "}");
    f = cc_filter_compile(q, &error);
    assert_non_null(f);
    assert_true(cc_filter_matches(f, doc));
    cc_filter_destroy(f);
    bson_destroy(q);

    q = BCON_NEW("b", "{", "$type", BCON_INT32(16), "}");
    f = cc_filter_compile(q, &error);
    assert_non_null(f);
    assert_true(cc_filter_matches(f, doc));
    cc_filter_destroy(f);
    bson_destroy(q);

    q = BCON_NEW("b", "{", "$type", "[", BCON_UTF8("string"), BCON_DOUBLE(18.0), "]", "}");
    f = cc_filter_compile(q, &error);
    assert_non_null(f);
    assert_false(cc_filter_matches(f, doc));
    cc_filter_destroy(f);
    bson_destroy(q);

    q = BCON_NEW("c", "{", "$type", "[", BCON_UTF8("bool"), BCON_UTF8("string"), "]", "}");
    f = cc_filter_compile(q, &error);
    assert_non_null(f);
    assert_true(cc_filter_matches(f, doc));
    cc_filter_destroy(f);
    bson_destroy(q);

    static const struct {
        bson_t *query;
        const char *message;
    } rejected[] = {
        {NULL, "$regex: invalid flag 'q' in options \"q\" (use i, m, s, x)"},
        {NULL, "$regex: options set in both $regex and $options"},
        {NULL, "$type: invalid numerical type code 42"},
        {NULL, "$type must match at least one type"},
        {NULL, "$options has to be a string"},
        {NULL, "$regex has to be a string"},
    };
    bson_t *queries[] = {
        BCON_NEW("a", "{", "$regex", BCON_UTF8("x"), "$options", BCON_UTF8("q"), "}"),
        BCON_NEW("a", "{", "$regex", BCON_REGEX("x", "i"), "$options", BCON_UTF8("m"), "}"),
        BCON_NEW("a", "{", "$type", BCON_INT32(42), "}"),
        BCON_NEW("a", "{", "$type", "[", "]", "}"),
        BCON_NEW("a", "{", "$regex", BCON_UTF8("x"), "$options", BCON_INT32(1), "}"),
        BCON_NEW("a", "{", "$regex", BCON_INT32(5), "}"),
    };
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        f = cc_filter_compile(queries[i], &error);
        if (f)
            fail_msg("case %zu accepted", i);
        assert_string_equal(error.message, rejected[i].message);
        bson_destroy(queries[i]);
    }
    bson_destroy(doc);
}

typedef struct {
    const char *filter;
    const char *pinned; /* NULL: not pinned */
} pinned_case_t;

static void test_filter_pinned_ids(void **state)
{
    (void)state;
    static const pinned_case_t cases[] = {
        {"{'documentKey._id': 5}", "{'0': 5}"},
        {"{'documentKey._id': {'$eq': 'x'}, 'operationType': 'update'}", "{'0': 'x'}"},
        {"{'documentKey._id': {'$in': [1, 2]}}", "{'0': 1, '1': 2}"},
        {"{'documentKey._id': {'$in': []}}", "{}"},
        {"{'$and': [{'operationType': 'insert'}, {'documentKey._id': 7}]}", "{'0': 7}"},
        {"{'$and': [{'$and': [{'documentKey._id': 7}]}]}", "{'0': 7}"},
        {"{'documentKey._id': {'$gt': 5}}", NULL},
        {"{'documentKey._id': null}", NULL},
        {"{'documentKey._id': {'$in': [1, null]}}", NULL},
        {"{'documentKey._id': {'$in': [1, {'$regularExpression': {'pattern': 'x', 'options': "
         "''}}]}}",
         NULL},
        {"{'documentKey._id': [1, 2]}", NULL},
        {"{'$or': [{'documentKey._id': 1}, {'a': 1}]}", NULL},
        {"{'documentKey._id': {'$ne': 1}}", NULL},
        {"{'documentKey': {'_id': 1}}", NULL},
        {"{'fullDocument._id': 1}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bson_t *q = parse(cases[i].filter);
        bson_error_t error;
        cc_filter_t *f = cc_filter_compile(q, &error);
        assert_non_null(f);
        bson_t out = BSON_INITIALIZER;
        bool pinned = cc_filter_pinned_ids(f, &out);
        if (pinned != (cases[i].pinned != NULL))
            fail_msg("%s: pinned %d", cases[i].filter, pinned);
        if (pinned) {
            bson_t *want = parse(cases[i].pinned);
            if (!bson_equal(&out, want)) {
                char *got = bson_as_relaxed_extended_json(&out, NULL);
                fail_msg("%s: pinned %s, expected %s", cases[i].filter, got, cases[i].pinned);
            }
            bson_destroy(want);
        }
        bson_destroy(&out);
        cc_filter_destroy(f);
        bson_destroy(q);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_equality_and_dotted_paths),
        cmocka_unit_test(test_filter_null_matches_missing),
        cmocka_unit_test(test_filter_array_traversal),
        cmocka_unit_test(test_filter_comparisons_stay_in_type_bracket),
        cmocka_unit_test(test_filter_in_exists_type),
        cmocka_unit_test(test_filter_logical_operators),
        cmocka_unit_test(test_filter_array_operators),
        cmocka_unit_test(test_filter_mod_and_regex),
        cmocka_unit_test(test_filter_rejects_with_actionable_message),
        cmocka_unit_test(test_filter_rejects_nesting_deeper_than_32),
        cmocka_unit_test(test_filter_operands_json_cannot_express),
        cmocka_unit_test(test_compare_follows_bson_sort_order),
        cmocka_unit_test(test_filter_pinned_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
