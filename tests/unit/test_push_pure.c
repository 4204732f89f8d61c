/* SPDX-License-Identifier: Apache-2.0 */
/* The pure layers of push/ beneath the encoder: shared buffers (buf),
 * the renderings cached on an event (render), conflation of document
 * states (pending), what capture's position may show (position), and
 * which subscriptions an event visits (sub's index). */
#include "push/buf.h"
#include "push/encode.h"
#include "push/pending.h"
#include "push/position.h"
#include "push/render.h"
#include "push/sub.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* A version-2 event token at clusterTime (seconds, increment), the layout
 * cc_token_kind() reads; `n` makes tokens of one time distinct. */
static void event_token(uint32_t seconds, uint32_t increment, unsigned n, char out[64])
{
    snprintf(out, 64, "82%08X%08X2B042C0100296E5A1004%08X04", seconds, increment, n);
}

static cc_event_t *change(const char *operation, int id, const char *customer, int version)
{
    char token[64];
    event_token(1700000000, (uint32_t)(id * 100 + version), (unsigned)id, token);
    bson_t *doc = BCON_NEW("_id", "{", "_data", BCON_UTF8(token), "}", "operationType",
                           BCON_UTF8(operation), "clusterTime", BCON_TIMESTAMP(1700000000, 1), "ns",
                           "{", "db", "shop", "coll", "orders", "}", "documentKey", "{", "_id",
                           BCON_INT32(id), "}", "fullDocument", "{", "_id", BCON_INT32(id),
                           "customerId", BCON_UTF8(customer), "status", BCON_UTF8("paid"), "secret",
                           BCON_UTF8("s3cr3t"), "version", BCON_INT32(version), "}");
    if (strcmp(operation, "update") == 0) {
        BCON_APPEND(doc, "updateDescription", "{", "updatedFields", "{", "version",
                    BCON_INT32(version), "}", "removedFields", "[", "]", "}");
    }
    bson_error_t error;
    cc_event_t *event = cc_event_new(doc, &error);
    bson_destroy(doc);
    if (!event) {
        fail_msg("event: %s", error.message);
    }
    return event;
}

static cc_grant_t *grant_of(const char *claim_json)
{
    bson_error_t error;
    bson_t *claim = bson_new_from_json((const uint8_t *)claim_json, -1, &error);
    if (!claim) {
        fail_msg("claim %s: %s", claim_json, error.message);
    }
    cc_grant_t *grant = cc_grant_from_claim(claim, 0, &error);
    if (!grant) {
        fail_msg("claim %s: %s", claim_json, error.message);
    }
    bson_destroy(claim);
    return grant;
}

static const char *text_of(const cc_buf_t *buf)
{
    return buf->data;
}

/* ---- buf ---- */

static void test_buf_copy_is_terminated_and_freed_by_the_last_reference(void **state)
{
    (void)state;
    cc_buf_t *buf = cc_buf_copy("abc", 3);
    assert_int_equal(buf->len, 3);
    assert_string_equal(buf->data, "abc"); /* the NUL after len bytes */
    assert_ptr_equal(cc_buf_ref(buf), buf);
    assert_int_equal(atomic_load(&buf->refs), 2);
    cc_buf_unref(buf);
    assert_int_equal(atomic_load(&buf->refs), 1);
    cc_buf_unref(buf); /* freed: AddressSanitizer reports a leak otherwise */
    cc_buf_unref(NULL);
}

/* ---- render ---- */

static void test_render_makes_each_form_once_and_shares_it(void **state)
{
    (void)state;
    cc_event_t *event = change("insert", 1, "c42", 1);
    cc_view_t *view = cc_render_view(event, NULL);
    assert_ptr_equal(cc_render_view(event, NULL), view);
    cc_buf_t *sse = cc_render_form(event, view, CC_WIRE_SSE, CC_FORM_CHANGE);
    cc_buf_t *ws = cc_render_form(event, view, CC_WIRE_WS, CC_FORM_CHANGE);
    assert_ptr_equal(cc_render_form(event, view, CC_WIRE_SSE, CC_FORM_CHANGE), sse);
    assert_ptr_equal(cc_render_form(event, view, CC_WIRE_WS, CC_FORM_CHANGE), ws);
    assert_ptr_not_equal(sse, ws);
    cc_event_unref(event); /* releases the renderings with it */
}

static void test_render_sse_change_is_one_whatwg_event(void **state)
{
    (void)state;
    cc_event_t *event = change("insert", 1, "c42", 1);
    cc_buf_t *sse = cc_render_form(event, cc_render_view(event, NULL), CC_WIRE_SSE, CC_FORM_CHANGE);
    char *want =
        bson_strdup_printf("id: %s\nevent: change\ndata: %s\n\n", event->token, event->json);
    assert_string_equal(text_of(sse), want);
    assert_int_equal(sse->len, strlen(want));
    bson_free(want);
    cc_event_unref(event);
}

/* A WebSocket message is a subscription's head, then the shared body: the
 * two together must be one JSON text (docs/push-protocol.md). */
static void test_render_ws_body_completes_a_head_into_one_json_text(void **state)
{
    (void)state;
    cc_event_t *event = change("insert", 7, "c42", 1);
    cc_buf_t *body = cc_render_form(event, cc_render_view(event, NULL), CC_WIRE_WS, CC_FORM_CHANGE);
    cc_buf_t *head = cc_encode_ws_head("orders-1");
    char *message = bson_strdup_printf("%s%s", head->data, body->data);
    bson_error_t error;
    bson_t *parsed = bson_new_from_json((const uint8_t *)message, -1, &error);
    assert_non_null(parsed);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, parsed, "id"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "orders-1");
    assert_true(bson_iter_init_find(&it, parsed, "type"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "change");
    assert_true(bson_iter_init_find(&it, parsed, "token"));
    assert_string_equal(bson_iter_utf8(&it, NULL), event->token);
    assert_true(bson_iter_init_find(&it, parsed, "event"));
    assert_true(BSON_ITER_HOLDS_DOCUMENT(&it));
    bson_destroy(parsed);
    bson_free(message);
    cc_buf_unref(head);
    cc_event_unref(event);
}

static void test_render_default_form_drops_the_post_image_of_updates_only(void **state)
{
    (void)state;
    cc_event_t *update = change("update", 2, "c42", 3);
    cc_event_t *insert = change("insert", 3, "c42", 1);
    cc_view_t *view = cc_render_view(update, NULL);
    cc_buf_t *full = cc_render_form(update, view, CC_WIRE_SSE, CC_FORM_CHANGE);
    cc_buf_t *lean = cc_render_form(update, view, CC_WIRE_SSE, CC_FORM_CHANGE_DEFAULT);
    assert_non_null(strstr(text_of(full), "fullDocument"));
    assert_null(strstr(text_of(lean), "fullDocument"));
    assert_non_null(strstr(text_of(lean), "updateDescription"));
    cc_view_t *insert_view = cc_render_view(insert, NULL);
    assert_non_null(
        strstr(text_of(cc_render_form(insert, insert_view, CC_WIRE_SSE, CC_FORM_CHANGE_DEFAULT)),
               "fullDocument"));
    cc_event_unref(update);
    cc_event_unref(insert);
}

/* Two tokens with the same claim for a namespace share one view (found by
 * the scope's fingerprint): the projection runs once per scope, never per
 * subscriber. */
static void test_render_projects_once_per_distinct_scope(void **state)
{
    (void)state;
    const char *claim = "{\"ns\":{\"shop.orders\":{\"fields\":[\"status\"]}}}";
    cc_grant_t *alice = grant_of(claim);
    cc_grant_t *bob = grant_of(claim);
    cc_grant_t *admin = grant_of("{\"ns\":{\"shop.*\":{}}}");
    cc_event_t *event = change("insert", 4, "c42", 1);
    const cc_scope_t *alice_scope = cc_grant_scope(alice, "shop", "orders");
    const cc_scope_t *bob_scope = cc_grant_scope(bob, "shop", "orders");
    cc_view_t *for_alice = cc_render_view(event, alice_scope);
    assert_ptr_equal(cc_render_view(event, bob_scope), for_alice);
    assert_ptr_not_equal(for_alice, cc_render_view(event, NULL));
    assert_ptr_not_equal(cc_render_view(event, cc_grant_scope(admin, "shop", "orders")), for_alice);
    assert_int_equal(for_alice->verdict, CC_SCOPE_EVENT_VISIBLE);
    const char *text = text_of(cc_render_form(event, for_alice, CC_WIRE_SSE, CC_FORM_CHANGE));
    assert_non_null(strstr(text, "\"status\":\"paid\""));
    assert_null(strstr(text, "s3cr3t"));
    assert_null(strstr(text, "customerId"));
    cc_event_unref(event);
    cc_grant_destroy(alice);
    cc_grant_destroy(bob);
    cc_grant_destroy(admin);
}

static void test_render_hides_rows_outside_the_scope(void **state)
{
    (void)state;
    cc_grant_t *grant =
        grant_of("{\"ns\":{\"shop.orders\":{\"filter\":{\"customerId\":\"c42\"}}}}");
    const cc_scope_t *scope = cc_grant_scope(grant, "shop", "orders");
    cc_event_t *theirs = change("insert", 5, "c7", 1);
    cc_view_t *view = cc_render_view(theirs, scope);
    assert_int_equal(view->verdict, CC_SCOPE_EVENT_HIDDEN);
    assert_null(cc_render_form(theirs, view, CC_WIRE_SSE, CC_FORM_CHANGE));
    assert_null(cc_render_form(theirs, view, CC_WIRE_WS, CC_FORM_CHANGE));
    cc_event_t *mine = change("insert", 6, "c42", 1);
    assert_int_equal(cc_render_view(mine, scope)->verdict, CC_SCOPE_EVENT_VISIBLE);
    cc_event_unref(theirs);
    cc_event_unref(mine);
    cc_grant_destroy(grant);
}

static void test_render_state_upsert_and_delete_shapes(void **state)
{
    (void)state;
    cc_event_t *event = change("update", 8, "c42", 2);
    cc_buf_t *upsert = cc_render_state(event, CC_WIRE_SSE, true, "{\"_id\":8}", "82AB");
    assert_string_equal(text_of(upsert),
                        "id: 82AB\nevent: upsert\ndata: {\"_id\":8,\"doc\":{\"_id\":8}}\n\n");
    cc_buf_t *del = cc_render_state(event, CC_WIRE_WS, false, NULL, "82AB");
    assert_string_equal(text_of(del), "\"type\":\"delete\",\"_id\":8,\"token\":\"82AB\"}");
    cc_buf_unref(upsert);
    cc_buf_unref(del);
    cc_event_unref(event);
}

/* ---- pending ---- */

typedef struct drained {
    int ids[300];
    int versions[300];
    bool upserts[300];
    int lasts;
    size_t count;
} drained_t;

static void collect(cc_event_t *event, bool upsert, const char *doc_json, bool last, void *arg)
{
    drained_t *out = arg;
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &event->document, "fullDocument"));
    bson_iter_t field;
    assert_true(bson_iter_recurse(&it, &field) && bson_iter_find(&field, "_id"));
    out->ids[out->count] = bson_iter_int32(&field);
    assert_true(bson_iter_recurse(&it, &field) && bson_iter_find(&field, "version"));
    out->versions[out->count] = bson_iter_int32(&field);
    out->upserts[out->count] = upsert;
    out->lasts += last;
    out->count++;
    (void)doc_json;
}

static void test_pending_keeps_the_newest_state_in_first_arrival_order(void **state)
{
    (void)state;
    cc_pending_t *pending = cc_pending_new();
    cc_event_t *a1 = change("insert", 1, "c42", 1), *b1 = change("insert", 2, "c42", 1);
    cc_event_t *a2 = change("update", 1, "c42", 2), *a3 = change("delete", 1, "c42", 3);
    cc_pending_put(pending, a1, true, NULL);
    cc_pending_put(pending, b1, true, bson_strdup("{\"_id\":2}"));
    cc_pending_put(pending, a2, true, NULL);
    cc_pending_put(pending, a3, false, NULL);
    assert_int_equal(cc_pending_count(pending), 2);
    drained_t out = {0};
    cc_pending_drain(pending, collect, &out);
    assert_int_equal(out.count, 2);
    assert_int_equal(out.ids[0], 1); /* document 1 arrived first and keeps its place */
    assert_int_equal(out.versions[0], 3);
    assert_false(out.upserts[0]); /* its newest state: deleted */
    assert_int_equal(out.ids[1], 2);
    assert_true(out.upserts[1]);
    assert_int_equal(out.lasts, 1);
    assert_int_equal(cc_pending_count(pending), 0);
    cc_event_unref(a1);
    cc_event_unref(b1);
    cc_event_unref(a2);
    cc_event_unref(a3);
    cc_pending_free(pending); /* the states it held are released: ASan checks */
}

static void test_pending_finds_every_document_after_growing(void **state)
{
    (void)state;
    cc_pending_t *pending = cc_pending_new();
    for (int round = 1; round <= 2; round++) {
        for (int id = 1; id <= 300; id++) {
            cc_event_t *event = change("update", id, "c42", round);
            cc_pending_put(pending, event, true, NULL);
            cc_event_unref(event);
        }
    }
    assert_int_equal(cc_pending_count(pending), 300);
    drained_t out = {0};
    cc_pending_drain(pending, collect, &out);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(out.ids[i], i + 1);
        assert_int_equal(out.versions[i], 2);
    }
    cc_pending_free(pending);
}

/* ---- position ---- */

static void test_position_of_an_event_is_shown_as_the_mark_just_after_it(void **state)
{
    (void)state;
    char token[64], expect[CC_HIGH_WATER_MARK_LEN + 1], out[128];
    event_token(1700000000, 5, 9, token);
    cc_capture_position_t position = {0};
    assert_false(cc_position_public(&position, out, sizeof out)); /* nothing read yet */
    cc_position_set(&position, token);
    assert_true(position.is_event);
    uint32_t seconds, increment;
    assert_true(cc_position_read_through(&position, &seconds, &increment));
    assert_int_equal(seconds, 1700000000);
    assert_int_equal(increment, 5);
    assert_true(cc_position_public(&position, out, sizeof out));
    cc_token_high_water_mark(1700000000, 6, expect);
    assert_string_equal(out, expect); /* names no collection, no document key */
    assert_true(cc_position_public(&position, out, CC_HIGH_WATER_MARK_LEN + 1));
    assert_false(cc_position_public(&position, out, CC_HIGH_WATER_MARK_LEN));
    cc_position_clear(&position);
}

static void test_position_of_a_mark_reads_through_just_before_it(void **state)
{
    (void)state;
    char mark[CC_HIGH_WATER_MARK_LEN + 1], out[128];
    cc_token_high_water_mark(1700000000, 0, mark);
    cc_capture_position_t position = {0};
    cc_position_set(&position, mark);
    assert_false(position.is_event);
    uint32_t seconds, increment;
    assert_true(cc_position_read_through(&position, &seconds, &increment));
    assert_int_equal(seconds, 1699999999); /* events of its own time may still come */
    assert_int_equal(increment, UINT32_MAX);
    assert_true(cc_position_public(&position, out, sizeof out));
    assert_string_equal(out, mark);
    cc_position_clear(&position);
}

static void test_position_of_an_unknown_layout_shows_nothing(void **state)
{
    (void)state;
    char out[128];
    cc_capture_position_t position = {0};
    cc_position_set(&position, "8265A1B2C3000000012B022C0100"); /* version 1 */
    assert_true(position.is_event);                             /* taken to cover its whole time */
    assert_false(cc_position_public(&position, out, sizeof out));
    cc_position_clear(&position);
}

/* ---- subscriptions and their index ---- */

static cc_event_t *keyed_event(const char *db, const char *coll, const bson_t *document_key)
{
    bson_t *doc = BCON_NEW("_id", "{", "_data", BCON_UTF8("82AB"), "}", "operationType", "delete",
                           "ns", "{", "db", BCON_UTF8(db), "coll", BCON_UTF8(coll), "}",
                           "documentKey", BCON_DOCUMENT(document_key));
    bson_error_t error;
    cc_event_t *event = cc_event_new(doc, &error);
    bson_destroy(doc);
    if (!event) {
        fail_msg("event: %s", error.message);
    }
    return event;
}

static cc_sub_t *sub_on(const cc_expose_t *expose, const char *ns, const char *filter_json)
{
    cc_sub_t *sub = cc_sub_new(NULL, NULL);
    const char *code;
    bson_error_t error;
    assert_true(cc_sub_add_namespace(expose, sub, ns, &code, &error));
    if (filter_json) {
        assert_true(cc_sub_set_filter_json(sub, filter_json, strlen(filter_json), &error));
    }
    return sub;
}

typedef struct visited {
    cc_sub_t *subs[8];
    size_t count;
} visited_t;

static void note_visit(cc_sub_t *sub, void *arg)
{
    visited_t *visited = arg;
    visited->subs[visited->count++] = sub;
}

static bool was_visited(const visited_t *visited, const cc_sub_t *sub)
{
    for (size_t i = 0; i < visited->count; i++) {
        if (visited->subs[i] == sub) {
            return true;
        }
    }
    return false;
}

static visited_t visit(cc_index_t *index, const cc_event_t *event)
{
    visited_t visited = {0};
    cc_index_visit(index, event, note_visit, &visited);
    return visited;
}

/* An event visits the subscriptions of its namespace, of its database's
 * wildcard, and those pinned to its _id (1, 1.0 and NumberLong(1) being
 * one _id, as MongoDB compares them), and no others. */
static void test_index_visits_only_subscriptions_that_may_match(void **state)
{
    (void)state;
    cc_expose_t expose;
    bson_error_t error;
    assert_true(cc_expose_parse("shop.*,chat.*", &expose, &error));
    cc_index_t *index = cc_index_new();
    cc_sub_t *orders = sub_on(&expose, "shop.orders", NULL);
    cc_sub_t *shop = sub_on(&expose, "shop.*", NULL);
    cc_sub_t *chat = sub_on(&expose, "chat.room", NULL);
    cc_sub_t *pinned = sub_on(&expose, "shop.orders", "{\"documentKey._id\":{\"$in\":[1,\"a\"]}}");
    cc_sub_t *subs[] = {orders, shop, chat, pinned};
    for (size_t i = 0; i < 4; i++) {
        cc_index_add(index, subs[i]);
    }
    bson_t *one_as_double = BCON_NEW("_id", BCON_DOUBLE(1.0));
    bson_t *two = BCON_NEW("_id", BCON_INT64(2));
    cc_event_t *first = keyed_event("shop", "orders", one_as_double);
    cc_event_t *second = keyed_event("shop", "orders", two);
    visited_t visited = visit(index, first);
    assert_int_equal(visited.count, 3);
    assert_true(was_visited(&visited, orders) && was_visited(&visited, shop) &&
                was_visited(&visited, pinned));
    visited = visit(index, second);
    assert_int_equal(visited.count, 2);
    assert_false(was_visited(&visited, pinned) || was_visited(&visited, chat));
    cc_index_remove(index, pinned);
    cc_index_remove(index, shop);
    visited = visit(index, first);
    assert_int_equal(visited.count, 1);
    assert_ptr_equal(visited.subs[0], orders);
    for (size_t i = 0; i < 4; i++) {
        cc_sub_free(subs[i]);
    }
    cc_index_free(index);
    cc_event_unref(first);
    cc_event_unref(second);
    bson_destroy(one_as_double);
    bson_destroy(two);
    cc_expose_destroy(&expose);
}

static void test_sub_refuses_namespaces_not_exposed_and_unknown_operations(void **state)
{
    (void)state;
    cc_expose_t expose;
    bson_error_t error;
    const char *code = NULL;
    assert_true(cc_expose_parse("shop.orders", &expose, &error));
    cc_sub_t *sub = cc_sub_new(NULL, "s1");
    assert_false(cc_sub_add_namespace(&expose, sub, "shop.users", &code, &error));
    assert_string_equal(code, "not_exposed");
    assert_false(cc_sub_add_namespace(&expose, sub, "shop", &code, &error));
    assert_string_equal(code, "bad_request");
    assert_true(cc_sub_set_ops(sub, "insert,delete", &error));
    assert_int_equal(sub->ops, CC_OP_INSERT | CC_OP_DELETE);
    assert_false(cc_sub_set_ops(sub, "insert,upsert", &error));
    assert_non_null(strstr(error.message, "upsert"));
    assert_string_equal(sub->head->data, "{\"id\":\"s1\",");
    cc_sub_free(sub);
    cc_expose_destroy(&expose);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_copy_is_terminated_and_freed_by_the_last_reference),
        cmocka_unit_test(test_render_makes_each_form_once_and_shares_it),
        cmocka_unit_test(test_render_sse_change_is_one_whatwg_event),
        cmocka_unit_test(test_render_ws_body_completes_a_head_into_one_json_text),
        cmocka_unit_test(test_render_default_form_drops_the_post_image_of_updates_only),
        cmocka_unit_test(test_render_projects_once_per_distinct_scope),
        cmocka_unit_test(test_render_hides_rows_outside_the_scope),
        cmocka_unit_test(test_render_state_upsert_and_delete_shapes),
        cmocka_unit_test(test_pending_keeps_the_newest_state_in_first_arrival_order),
        cmocka_unit_test(test_pending_finds_every_document_after_growing),
        cmocka_unit_test(test_position_of_an_event_is_shown_as_the_mark_just_after_it),
        cmocka_unit_test(test_position_of_a_mark_reads_through_just_before_it),
        cmocka_unit_test(test_position_of_an_unknown_layout_shows_nothing),
        cmocka_unit_test(test_index_visits_only_subscriptions_that_may_match),
        cmocka_unit_test(test_sub_refuses_namespaces_not_exposed_and_unknown_operations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
