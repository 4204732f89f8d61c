/* SPDX-License-Identifier: Apache-2.0 */
/* The event ring and the tokens it orders by: bounds by count and bytes,
 * the floor, and positions after a token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "changecast/ring.h"

static cc_event_t *event_with_token(const char *token)
{
    bson_t *change = BCON_NEW("_id", "{", "_data", BCON_UTF8(token), "}", "operationType", "insert",
                              "clusterTime", BCON_TIMESTAMP(100, 1), "ns", "{", "db", "shop",
                              "coll", "orders", "}", "fullDocument", "{", "x", BCON_INT32(1), "}");
    bson_error_t error;
    cc_event_t *event = cc_event_new(change, &error);
    bson_destroy(change);
    return event;
}

static void test_event_parses_token_namespace_and_serializes_once(void **state)
{
    (void)state;
    cc_event_t *event = event_with_token("82abcdef01");
    assert_non_null(event);
    assert_string_equal(event->token, "82ABCDEF01"); /* normalized to upper case */
    assert_string_equal(event->db, "shop");
    assert_string_equal(event->coll, "orders");
    assert_string_equal(event->operation, "insert");
    assert_int_equal(event->cluster_seconds, 100);
    assert_non_null(strstr(event->json, "\"fullDocument\":{\"x\":1}"));
    assert_null(strchr(event->json, '\n'));
    cc_event_unref(event);
}

static void test_event_without_token_is_rejected(void **state)
{
    (void)state;
    bson_t *change = BCON_NEW("operationType", "insert");
    bson_error_t error;
    assert_null(cc_event_new(change, &error));
    assert_non_null(strstr(error.message, "_id._data"));
    bson_destroy(change);
}

/* Found by fuzz_core_event: a string that is not UTF-8 (MongoDB stores what
 * drivers send) made libbson return no JSON, and the event went on with a
 * NULL json. It is refused with a reason instead. */
static void test_event_with_invalid_utf8_is_refused(void **state)
{
    (void)state;
    bson_t *change = BCON_NEW("_id", "{", "_data", "82ab", "}", "operationType", "insert", "ns",
                              "{", "db", "shop", "coll", "orders", "}", "fullDocument", "{", "name",
                              BCON_UTF8("caf\xe9"), "}");
    bson_error_t error;
    assert_null(cc_event_new(change, &error));
    assert_non_null(strstr(error.message, "UTF-8"));
    bson_destroy(change);
}

static void test_token_normalize_accepts_hex_only(void **state)
{
    (void)state;
    char out[64];
    assert_true(cc_token_normalize("82aB", out, sizeof out));
    assert_string_equal(out, "82AB");
    assert_false(cc_token_normalize("8", out, sizeof out));
    assert_false(cc_token_normalize("82zz", out, sizeof out));
    assert_false(cc_token_normalize("82 1", out, sizeof out));
    assert_false(cc_token_normalize("", out, sizeof out));
    assert_true(cc_token_compare("8201", "8202") < 0);
}

static void test_ring_evicts_by_count_and_moves_the_floor(void **state)
{
    (void)state;
    cc_ring_t *ring = cc_ring_new(3, 1 << 20);
    size_t index;
    assert_false(cc_ring_position_after(ring, "01", &index)); /* no floor yet */
    cc_ring_advance_floor(ring, "10");
    const char *tokens[] = {"11", "12", "13", "14", "15"};
    for (size_t i = 0; i < 5; i++) {
        cc_event_t *event = event_with_token(tokens[i]);
        cc_ring_append(ring, event);
        cc_event_unref(event);
    }
    assert_int_equal(cc_ring_count(ring), 3);
    assert_string_equal(cc_ring_floor(ring), "12"); /* the newest evicted */
    assert_string_equal(cc_ring_at(ring, 0)->token, "13");
    assert_false(cc_ring_position_after(ring, "11", &index)); /* 12 is gone */
    assert_true(cc_ring_position_after(ring, "12", &index));
    assert_int_equal(index, 0);
    assert_true(cc_ring_position_after(ring, "13", &index));
    assert_int_equal(index, 1);
    assert_true(cc_ring_position_after(ring, "15", &index));
    assert_int_equal(index, 3); /* nothing newer yet */
    assert_true(cc_ring_position_after(ring, "99", &index));
    assert_int_equal(index, 3);
    cc_ring_free(ring);
}

static void test_ring_evicts_by_bytes(void **state)
{
    (void)state;
    cc_event_t *probe = event_with_token("20");
    size_t one = cc_event_size(probe);
    cc_event_unref(probe);
    cc_ring_t *ring = cc_ring_new(100, one * 2 + one / 2);
    for (int i = 0; i < 5; i++) {
        char token[8];
        snprintf(token, sizeof token, "2%d", i);
        cc_event_t *event = event_with_token(token);
        cc_ring_append(ring, event);
        cc_event_unref(event);
    }
    assert_int_equal(cc_ring_count(ring), 2);
    assert_true(cc_ring_bytes(ring) <= one * 2 + one / 2);
    cc_ring_free(ring);
}

static void test_ring_floor_only_advances_while_empty(void **state)
{
    (void)state;
    cc_ring_t *ring = cc_ring_new(10, 1 << 20);
    cc_ring_advance_floor(ring, "30");
    cc_ring_advance_floor(ring, "20"); /* never backwards */
    assert_string_equal(cc_ring_floor(ring), "30");
    cc_event_t *event = event_with_token("31");
    cc_ring_append(ring, event);
    cc_event_unref(event);
    cc_ring_advance_floor(ring, "40"); /* 31 would fall out of the promise */
    assert_string_equal(cc_ring_floor(ring), "30");
    cc_ring_reset(ring, NULL);
    assert_int_equal(cc_ring_count(ring), 0);
    assert_null(cc_ring_floor(ring));
    cc_ring_free(ring);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_parses_token_namespace_and_serializes_once),
        cmocka_unit_test(test_event_without_token_is_rejected),
        cmocka_unit_test(test_event_with_invalid_utf8_is_refused),
        cmocka_unit_test(test_token_normalize_accepts_hex_only),
        cmocka_unit_test(test_ring_evicts_by_count_and_moves_the_floor),
        cmocka_unit_test(test_ring_evicts_by_bytes),
        cmocka_unit_test(test_ring_floor_only_advances_while_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
