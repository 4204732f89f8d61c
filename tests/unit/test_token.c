/* SPDX-License-Identifier: Apache-2.0 */
/* Resume tokens: cluster time and kind read from MongoDB's version-2
 * KeyString layout (tokens quoted from the stand-in, whose tokens are
 * byte-identical to the server's). */
#include "changecast/event.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static const char high_water_mark[] = "826B07A4CE000000052B0429296E1404";
static const char event[] = "8265F2A8C4000000012B042C0100296E5A1004C0FFEE46645F696400646565";

static void test_token_cluster_time_reads_seconds_and_increment(void **state)
{
    (void)state;
    uint32_t seconds, increment;
    assert_true(cc_token_cluster_time(high_water_mark, &seconds, &increment));
    assert_int_equal(seconds, 0x6B07A4CE);
    assert_int_equal(increment, 5);
    assert_false(cc_token_cluster_time("8201", &seconds, &increment));
    assert_false(cc_token_cluster_time("9165F2A8C400000001", &seconds, &increment));
}

static void test_token_kind_tells_high_water_marks_from_events(void **state)
{
    (void)state;
    assert_int_equal(cc_token_kind(high_water_mark), CC_TOKEN_HIGH_WATER_MARK);
    assert_int_equal(cc_token_kind(event), CC_TOKEN_EVENT);
}

static void test_token_kind_of_other_layouts_is_unknown(void **state)
{
    (void)state;
    assert_int_equal(cc_token_kind("8265F2A8C4000000012B022C0100"), CC_TOKEN_UNKNOWN); /* v1 */
    assert_int_equal(cc_token_kind("8265F2A8C400000001"), CC_TOKEN_UNKNOWN);
    assert_int_equal(cc_token_kind(""), CC_TOKEN_UNKNOWN);
    assert_int_equal(cc_token_kind("8265F2A8C4000000012B043C"), CC_TOKEN_UNKNOWN);
}

static void test_high_water_mark_is_built_as_mongodb_writes_it(void **state)
{
    (void)state;
    char built[CC_HIGH_WATER_MARK_LEN + 1];
    cc_token_high_water_mark(0x6B07A4CE, 5, built);
    assert_string_equal(built, high_water_mark);
    assert_int_equal(cc_token_kind(built), CC_TOKEN_HIGH_WATER_MARK);
    /* Just after an event's time: after its token, before the next time's. */
    cc_token_high_water_mark(0x65F2A8C4, 2, built);
    assert_true(cc_token_compare(built, event) > 0);
    assert_true(cc_token_compare(built, "8265F2A8C4000000022B042C0100") < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_cluster_time_reads_seconds_and_increment),
        cmocka_unit_test(test_token_kind_tells_high_water_marks_from_events),
        cmocka_unit_test(test_token_kind_of_other_layouts_is_unknown),
        cmocka_unit_test(test_high_water_mark_is_built_as_mongodb_writes_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
