/* SPDX-License-Identifier: Apache-2.0 */
/* Exposed namespaces: parsing, coverage of requests, matching of events,
 * and the $match stage capture sends upstream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "changecast/expose.h"

static void test_expose_parses_collections_and_wildcards(void **state)
{
    (void)state;
    cc_expose_t expose;
    bson_error_t error;
    assert_true(cc_expose_parse(" shop.orders, chat.* ,shop.products", &expose, &error));
    assert_int_equal(expose.count, 3);
    assert_string_equal(expose.patterns[0].db, "shop");
    assert_string_equal(expose.patterns[0].coll, "orders");
    assert_null(expose.patterns[1].coll);
    cc_expose_destroy(&expose);
    assert_true(cc_expose_parse("", &expose, &error));
    assert_int_equal(expose.count, 0);
}

static void test_expose_rejects_bad_namespaces(void **state)
{
    (void)state;
    const char *bad[] = {"shop",         ".orders",  "shop.", "sh op.orders",
                         "shop.ord$ers", "shop.or*", "a/b.c"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cc_expose_t expose;
        bson_error_t error;
        if (cc_expose_parse(bad[i], &expose, &error)) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}

static void test_expose_covers_only_what_is_exposed(void **state)
{
    (void)state;
    cc_expose_t expose;
    bson_error_t error;
    assert_true(cc_expose_parse("shop.orders, chat.*", &expose, &error));
    const struct {
        const char *request;
        bool covered;
    } table[] = {{"shop.orders", true}, {"shop.users", false}, {"shop.*", false},
                 {"chat.room1", true},  {"chat.*", true},      {"other.*", false}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        cc_ns_pattern_t pattern;
        assert_true(cc_ns_pattern_parse(table[i].request, &pattern, &error));
        if (cc_expose_covers(&expose, &pattern) != table[i].covered) {
            fail_msg("%s: expected covered=%d", table[i].request, table[i].covered);
        }
        cc_ns_pattern_destroy(&pattern);
    }
    assert_true(cc_ns_pattern_matches(&expose.patterns[1], "chat", "anything"));
    assert_true(cc_ns_pattern_matches(&expose.patterns[1], "chat", NULL)); /* dropDatabase */
    assert_false(cc_ns_pattern_matches(&expose.patterns[0], "shop", NULL));
    cc_expose_destroy(&expose);
}

static void test_expose_builds_the_source_match_stage(void **state)
{
    (void)state;
    cc_expose_t expose;
    bson_error_t error;
    assert_true(cc_expose_parse("shop.orders, chat.*", &expose, &error));
    bson_t pipeline = BSON_INITIALIZER;
    cc_expose_append_match_stage(&expose, &pipeline, "0");
    char *json = bson_as_relaxed_extended_json(&pipeline, NULL);
    assert_string_equal(json, "{ \"0\" : { \"$match\" : { \"$or\" : [ { \"ns.db\" : \"shop\", "
                              "\"ns.coll\" : \"orders\" }, { \"ns.db\" : \"chat\" } ] } } }");
    bson_free(json);
    bson_destroy(&pipeline);
    cc_expose_destroy(&expose);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expose_parses_collections_and_wildcards),
        cmocka_unit_test(test_expose_rejects_bad_namespaces),
        cmocka_unit_test(test_expose_covers_only_what_is_exposed),
        cmocka_unit_test(test_expose_builds_the_source_match_stage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
