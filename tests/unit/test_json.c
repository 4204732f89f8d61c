/* SPDX-License-Identifier: Apache-2.0 */
/* The compact relaxed Extended JSON emitter: the exact text of every BSON
 * type, the same values as libbson's own relaxed JSON (both parsed back by
 * libbson's Extended JSON reader), escapes, invalid UTF-8 and nesting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "changecast/json.h"

static void assert_json(const bson_t *doc, const char *expected)
{
    size_t len = 0;
    char *json = cc_json_document(doc, &len);
    assert_non_null(json);
    assert_string_equal(json, expected);
    assert_int_equal(len, strlen(expected));
    bson_free(json);
}

/* One value {"v": ...} as text. */
#define ASSERT_VALUE(append, expected)                                                             \
    do {                                                                                           \
        bson_t doc = BSON_INITIALIZER;                                                             \
        append;                                                                                    \
        assert_json(&doc, "{\"v\":" expected "}");                                                 \
        bson_destroy(&doc);                                                                        \
    } while (0)

static void test_every_type_has_its_relaxed_form(void **state)
{
    (void)state;
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, "5f1d7a3b9c8e4f0012345678");
    bson_decimal128_t dec;
    bson_decimal128_from_string("1.5E+3", &dec);
    const uint8_t bytes[] = {0xde, 0xad, 0xbe, 0xef};
    bson_t scope = BSON_INITIALIZER;
    BSON_APPEND_INT32(&scope, "x", 1);

    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 1.5), "1.5");
    ASSERT_VALUE(BSON_APPEND_UTF8(&doc, "v", "hi"), "\"hi\"");
    ASSERT_VALUE(BSON_APPEND_BINARY(&doc, "v", BSON_SUBTYPE_UUID, bytes, 4),
                 "{\"$binary\":{\"base64\":\"3q2+7w==\",\"subType\":\"04\"}}");
    ASSERT_VALUE(BSON_APPEND_BINARY(&doc, "v", BSON_SUBTYPE_BINARY, bytes, 0),
                 "{\"$binary\":{\"base64\":\"\",\"subType\":\"00\"}}");
    ASSERT_VALUE(BSON_APPEND_UNDEFINED(&doc, "v"), "{\"$undefined\":true}");
    ASSERT_VALUE(BSON_APPEND_OID(&doc, "v", &oid), "{\"$oid\":\"5f1d7a3b9c8e4f0012345678\"}");
    ASSERT_VALUE(BSON_APPEND_BOOL(&doc, "v", true), "true");
    ASSERT_VALUE(BSON_APPEND_BOOL(&doc, "v", false), "false");
    ASSERT_VALUE(BSON_APPEND_DATE_TIME(&doc, "v", 0), "{\"$date\":\"1970-01-01T00:00:00Z\"}");
    ASSERT_VALUE(BSON_APPEND_DATE_TIME(&doc, "v", INT64_C(1356351330501)),
                 "{\"$date\":\"2012-12-24T12:15:30.501Z\"}");
    ASSERT_VALUE(BSON_APPEND_DATE_TIME(&doc, "v", -1), "{\"$date\":{\"$numberLong\":\"-1\"}}");
    ASSERT_VALUE(BSON_APPEND_DATE_TIME(&doc, "v", INT64_C(253402300800000)),
                 "{\"$date\":{\"$numberLong\":\"253402300800000\"}}");
    ASSERT_VALUE(BSON_APPEND_NULL(&doc, "v"), "null");
    ASSERT_VALUE(BSON_APPEND_REGEX(&doc, "v", "x", "xmi"),
                 "{\"$regularExpression\":{\"pattern\":\"x\",\"options\":\"imx\"}}");
    ASSERT_VALUE(BSON_APPEND_REGEX(&doc, "v", "^a\"b", "im"),
                 "{\"$regularExpression\":{\"pattern\":\"^a\\\"b\",\"options\":\"im\"}}");
    ASSERT_VALUE(
        BSON_APPEND_DBPOINTER(&doc, "v", "db.c", &oid),
        "{\"$dbPointer\":{\"$ref\":\"db.c\",\"$id\":{\"$oid\":\"5f1d7a3b9c8e4f0012345678\"}}}");
    ASSERT_VALUE(BSON_APPEND_CODE(&doc, "v", "f()"), "{\"$code\":\"f()\"}");
    ASSERT_VALUE(BSON_APPEND_SYMBOL(&doc, "v", "s"), "{\"$symbol\":\"s\"}");
    ASSERT_VALUE(BSON_APPEND_CODE_WITH_SCOPE(&doc, "v", "g()", &scope),
                 "{\"$code\":\"g()\",\"$scope\":{\"x\":1}}");
    ASSERT_VALUE(BSON_APPEND_INT32(&doc, "v", -7), "-7");
    ASSERT_VALUE(BSON_APPEND_TIMESTAMP(&doc, "v", 4294967295u, 3),
                 "{\"$timestamp\":{\"t\":4294967295,\"i\":3}}");
    ASSERT_VALUE(BSON_APPEND_INT64(&doc, "v", INT64_C(-9007199254740993)), "-9007199254740993");
    ASSERT_VALUE(BSON_APPEND_DECIMAL128(&doc, "v", &dec), "{\"$numberDecimal\":\"1.5E+3\"}");
    ASSERT_VALUE(BSON_APPEND_MAXKEY(&doc, "v"), "{\"$maxKey\":1}");
    ASSERT_VALUE(BSON_APPEND_MINKEY(&doc, "v"), "{\"$minKey\":1}");
    bson_destroy(&scope);
}

static void test_doubles_are_shortest_and_stay_doubles(void **state)
{
    (void)state;
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 0.1), "0.1");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 1.0), "1.0");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", -0.0), "-0.0");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 1e300), "1e+300");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 1765151234567890.0), "1765151234567890.0");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 1e20), "100000000000000000000.0");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 1e21), "1e+21");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 0.00001), "0.00001");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 1.5e-7), "0.00000015");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 1e-8), "1e-08");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", -123456789012345680.0), "-123456789012345680.0");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 1.7976931348623157e308), "1.7976931348623157e+308");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", 5e-324), "4.94065645841247e-324");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", NAN), "{\"$numberDouble\":\"NaN\"}");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", INFINITY), "{\"$numberDouble\":\"Infinity\"}");
    ASSERT_VALUE(BSON_APPEND_DOUBLE(&doc, "v", -INFINITY), "{\"$numberDouble\":\"-Infinity\"}");
}

static void test_strings_escape_what_json_requires_and_keep_utf8(void **state)
{
    (void)state;
    ASSERT_VALUE(BSON_APPEND_UTF8(&doc, "v", "a\"b\\c\n\r\t\b\f\x01\x1f"),
                 "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\"");
    ASSERT_VALUE(BSON_APPEND_UTF8(&doc, "v", "d\xc3\xa9j\xc3\xa0 \xe2\x82\xac \xf0\x9f\x98\x80 </"),
                 "\"d\xc3\xa9j\xc3\xa0 \xe2\x82\xac \xf0\x9f\x98\x80 </\"");
    ASSERT_VALUE(bson_append_utf8(&doc, "v", 1, "a\0b", 3), "\"a\\u0000b\"");
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_INT32(&doc, "k\"ey", 1);
    assert_json(&doc, "{\"k\\\"ey\":1}");
    bson_destroy(&doc);
}

static void test_nested_documents_and_arrays(void **state)
{
    (void)state;
    bson_t *doc = BCON_NEW("_id", "{", "_data", "82AB", "}", "a", "[", BCON_INT32(1), "{", "b", "[",
                           "]", "}", "]", "e", "{", "}");
    assert_json(doc, "{\"_id\":{\"_data\":\"82AB\"},\"a\":[1,{\"b\":[]}],\"e\":{}}");
    bson_destroy(doc);
    bson_t empty = BSON_INITIALIZER;
    assert_json(&empty, "{}");
}

static void test_invalid_utf8_is_refused(void **state)
{
    (void)state;
    bson_t doc = BSON_INITIALIZER;
    bson_append_utf8(&doc, "v", 1, "\xff\xfe", 2);
    assert_null(cc_json_document(&doc, NULL));
    bson_destroy(&doc);
    bson_init(&doc);
    bson_append_int32(&doc, "\xc3", 1, 1);
    assert_null(cc_json_document(&doc, NULL));
    bson_destroy(&doc);
    /* A failed append leaves what was there. */
    cc_json_buffer_t out = {0};
    bson_t good = BSON_INITIALIZER;
    BSON_APPEND_INT32(&good, "a", 1);
    assert_true(cc_json_append_document(&out, &good));
    bson_init(&doc);
    bson_append_utf8(&doc, "v", 1, "\x80", 1);
    assert_false(cc_json_append_document(&out, &doc));
    size_t len;
    char *text = cc_json_buffer_steal(&out, &len);
    assert_string_equal(text, "{\"a\":1}");
    assert_int_equal(len, 7);
    bson_free(text);
    bson_destroy(&doc);
    bson_destroy(&good);
}

static bson_t *nested(int levels)
{
    bson_t *inner = bson_new();
    for (int i = 0; i < levels; i++) {
        bson_t *outer = bson_new();
        BSON_APPEND_DOCUMENT(outer, "d", inner);
        bson_destroy(inner);
        inner = outer;
    }
    return inner;
}

static void test_nesting_is_bounded(void **state)
{
    (void)state;
    bson_t *deep = nested(CC_JSON_MAX_DEPTH);
    char *json = cc_json_document(deep, NULL);
    assert_non_null(json);
    assert_int_equal(strlen(json), (size_t)CC_JSON_MAX_DEPTH * 6 + 2);
    bson_free(json);
    bson_destroy(deep);
    deep = nested(CC_JSON_MAX_DEPTH + 1);
    assert_null(cc_json_document(deep, NULL));
    bson_destroy(deep);
}

static void test_corrupt_bson_is_refused(void **state)
{
    (void)state;
    bson_t *doc = BCON_NEW("a", "{", "b", BCON_INT32(1), "}");
    uint8_t *copy = bson_malloc(doc->len);
    memcpy(copy, bson_get_data(doc), doc->len);
    copy[4 + 1 + 2] = 0x40; /* the inner document's length, now past the end */
    bson_t corrupt;
    assert_true(bson_init_static(&corrupt, copy, doc->len));
    assert_null(cc_json_document(&corrupt, NULL));
    bson_free(copy);
    bson_destroy(doc);
}

/* The same values as libbson's relaxed JSON: both read back by libbson's
 * Extended JSON reader give equal documents. */
static void test_reads_back_as_libbson_relaxed_does(void **state)
{
    (void)state;
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, "5f1d7a3b9c8e4f0012345678");
    bson_decimal128_t dec;
    bson_decimal128_from_string("-0.001", &dec);
    const uint8_t bytes[] = {1, 2, 3, 4, 5};
    bson_t *doc =
        BCON_NEW("_id", "{", "_data", "82AB01", "}", "operationType", "update", "clusterTime",
                 BCON_TIMESTAMP(1700000000, 7), "ns", "{", "db", "shop", "coll", "orders", "}",
                 "fullDocument", "{", "_id", BCON_OID(&oid), "qty", BCON_INT32(3), "big",
                 BCON_INT64(INT64_C(1) << 40), "price", BCON_DOUBLE(19.99), "when",
                 BCON_DATE_TIME(INT64_C(1700000000123)), "dec", BCON_DECIMAL128(&dec), "bin",
                 BCON_BIN(BSON_SUBTYPE_BINARY, bytes, 5), "re", BCON_REGEX("^x", "i"), "tags", "[",
                 "a\"b", "\xc3\xa9", "]", "none", BCON_NULL, "min", BCON_MINKEY, "max", BCON_MAXKEY,
                 "}", "updateDescription", "{", "updatedFields", "{", "qty", BCON_INT32(3), "}",
                 "removedFields", "[", "]", "}");
    char *ours = cc_json_document(doc, NULL);
    char *theirs = bson_as_relaxed_extended_json(doc, NULL);
    assert_non_null(ours);
    assert_true(strlen(ours) < strlen(theirs));
    bson_error_t error;
    bson_t *from_ours = bson_new_from_json((const uint8_t *)ours, -1, &error);
    bson_t *from_theirs = bson_new_from_json((const uint8_t *)theirs, -1, &error);
    assert_non_null(from_ours);
    assert_non_null(from_theirs);
    assert_true(bson_equal(from_ours, from_theirs));
    assert_true(bson_equal(from_ours, doc));
    bson_destroy(from_ours);
    bson_destroy(from_theirs);
    bson_free(ours);
    bson_free(theirs);
    bson_destroy(doc);
}

static void test_one_value(void **state)
{
    (void)state;
    bson_t *doc = BCON_NEW("documentKey", "{", "_id", "{", "k", BCON_INT32(1), "}", "}");
    bson_iter_t iter, found;
    assert_true(bson_iter_init(&iter, doc));
    assert_true(bson_iter_find_descendant(&iter, "documentKey._id", &found));
    size_t len;
    char *json = cc_json_value(&found, &len);
    assert_string_equal(json, "{\"k\":1}");
    assert_int_equal(len, 7);
    bson_free(json);
    bson_destroy(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_has_its_relaxed_form),
        cmocka_unit_test(test_doubles_are_shortest_and_stay_doubles),
        cmocka_unit_test(test_strings_escape_what_json_requires_and_keep_utf8),
        cmocka_unit_test(test_nested_documents_and_arrays),
        cmocka_unit_test(test_invalid_utf8_is_refused),
        cmocka_unit_test(test_nesting_is_bounded),
        cmocka_unit_test(test_corrupt_bson_is_refused),
        cmocka_unit_test(test_reads_back_as_libbson_relaxed_does),
        cmocka_unit_test(test_one_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
