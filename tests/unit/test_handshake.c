/* SPDX-License-Identifier: Apache-2.0 */
/* The handshake rewrite as tables: what the client sends upstream, and what
 * it gets back, for the router and load-balancer forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "wire/handshake.h"

/* A 7.0 primary's hello reply, with every field a real one returns. */
static bson_t *primary_reply(void)
{
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, "65a1b2c3d4e5f60718293a4b");
    return BCON_NEW(
        "topologyVersion", "{", "processId", BCON_OID(&oid), "counter", BCON_INT64(6), "}", "hosts",
        "[", "127.0.0.1:27017", "]", "setName", "rs0", "setVersion", BCON_INT32(1),
        "isWritablePrimary", BCON_BOOL(true), "secondary", BCON_BOOL(false), "primary",
        "127.0.0.1:27017", "me", "127.0.0.1:27017", "electionId", BCON_OID(&oid), "lastWrite", "{",
        "}", "isreplicaset", BCON_BOOL(false), "compression", "[", "zlib", "]", "maxBsonObjectSize",
        BCON_INT32(16777216), "maxMessageSizeBytes", BCON_INT32(48000000), "maxWriteBatchSize",
        BCON_INT32(100000), "localTime", BCON_DATE_TIME(1700000000000),
        "logicalSessionTimeoutMinutes", BCON_INT32(30), "connectionId", BCON_INT32(12),
        "minWireVersion", BCON_INT32(0), "maxWireVersion", BCON_INT32(21), "readOnly",
        BCON_BOOL(false), "isImplicitDefaultMajorityWC", BCON_BOOL(true), "helloOk",
        BCON_BOOL(true), "saslSupportedMechs", "[", "SCRAM-SHA-256", "]", "speculativeAuthenticate",
        "{", "conversationId", BCON_INT32(1), "}", "ok", BCON_DOUBLE(1.0), "$clusterTime", "{",
        "clusterTime", BCON_TIMESTAMP(1700000000, 1), "}", "operationTime",
        BCON_TIMESTAMP(1700000000, 1));
}

static const char *const kept_fields[] = {
    "isWritablePrimary",
    "helloOk",
    "maxBsonObjectSize",
    "maxMessageSizeBytes",
    "maxWriteBatchSize",
    "localTime",
    "logicalSessionTimeoutMinutes",
    "connectionId",
    "minWireVersion",
    "maxWireVersion",
    "readOnly",
    "saslSupportedMechs",
    "speculativeAuthenticate",
    "ok",
    "$clusterTime",
    "operationTime",
};

static const char *const stripped_fields[] = {
    "topologyVersion", "hosts",        "setName",     "setVersion",
    "secondary",       "primary",      "me",          "electionId",
    "lastWrite",       "isreplicaset", "compression", "isImplicitDefaultMajorityWC",
};

static void test_reply_keeps_every_allowed_field(void **state)
{
    (void)state;
    bson_t *reply = primary_reply(), out;
    bson_oid_t service;
    bson_oid_init(&service, NULL);
    cc_handshake_rewrite_reply(reply, false, &service, &out);
    for (size_t i = 0; i < sizeof kept_fields / sizeof kept_fields[0]; i++) {
        if (!bson_has_field(&out, kept_fields[i])) {
            fail_msg("field %s was dropped", kept_fields[i]);
        }
    }
    bson_iter_t iter;
    assert_true(bson_iter_init_find(&iter, &out, "msg"));
    assert_string_equal(bson_iter_utf8(&iter, NULL), "isdbgrid");
    assert_true(bson_iter_init_find(&iter, &out, "maxWireVersion"));
    assert_int_equal(bson_iter_int32(&iter), 21);
    assert_false(bson_has_field(&out, "serviceId"));
    bson_destroy(&out);
    bson_destroy(reply);
}

static void test_reply_strips_every_replica_set_field(void **state)
{
    (void)state;
    bson_t *reply = primary_reply(), out;
    bson_oid_t service;
    bson_oid_init(&service, NULL);
    cc_handshake_rewrite_reply(reply, false, &service, &out);
    for (size_t i = 0; i < sizeof stripped_fields / sizeof stripped_fields[0]; i++) {
        if (bson_has_field(&out, stripped_fields[i])) {
            fail_msg("field %s leaked", stripped_fields[i]);
        }
    }
    /* allow-list, not deny-list: an unknown future field does not pass */
    bson_t *future = BCON_NEW("ismaster", BCON_BOOL(true), "newReplicaSetThing", BCON_INT32(1),
                              "ok", BCON_DOUBLE(1));
    bson_destroy(&out);
    cc_handshake_rewrite_reply(future, false, &service, &out);
    assert_false(bson_has_field(&out, "newReplicaSetThing"));
    assert_true(bson_has_field(&out, "ismaster"));
    bson_destroy(future);
    bson_destroy(&out);
    bson_destroy(reply);
}

static void test_reply_in_load_balanced_form_carries_service_id(void **state)
{
    (void)state;
    bson_t *reply = primary_reply(), out;
    bson_oid_t service, seen;
    bson_oid_init(&service, NULL);
    cc_handshake_rewrite_reply(reply, true, &service, &out);
    bson_iter_t iter;
    assert_true(bson_iter_init_find(&iter, &out, "serviceId"));
    bson_oid_copy(bson_iter_oid(&iter), &seen);
    assert_true(bson_oid_equal(&seen, &service));
    assert_true(bson_has_field(&out, "msg"));
    assert_false(bson_has_field(&out, "hosts"));
    bson_destroy(&out);
    bson_destroy(reply);
}

static void test_error_reply_keeps_error_fields_only(void **state)
{
    (void)state;
    bson_t *reply = BCON_NEW("ok", BCON_DOUBLE(0), "errmsg", "Client metadata can only be set once",
                             "code", BCON_INT32(186), "codeName", "ClientMetadataCannotBeMutated",
                             "topologyVersion", "{", "}", "operationTime", BCON_TIMESTAMP(1, 1));
    bson_t out;
    bson_oid_t service;
    bson_oid_init(&service, NULL);
    cc_handshake_rewrite_reply(reply, false, &service, &out);
    bson_iter_t iter;
    assert_true(bson_iter_init_find(&iter, &out, "code"));
    assert_int_equal(bson_iter_int32(&iter), 186);
    assert_true(bson_has_field(&out, "errmsg"));
    assert_true(bson_has_field(&out, "codeName"));
    assert_true(bson_has_field(&out, "ok"));
    assert_true(bson_has_field(&out, "operationTime"));
    assert_false(bson_has_field(&out, "topologyVersion"));
    assert_false(bson_has_field(&out, "msg"));
    bson_destroy(&out);
    bson_destroy(reply);
}

static void test_first_request_keeps_client_metadata_and_drops_proxy_fields(void **state)
{
    (void)state;
    bson_t *hello =
        BCON_NEW("hello", BCON_INT32(1), "helloOk", BCON_BOOL(true), "client", "{", "application",
                 "{", "name", "app", "}", "}", "loadBalanced", BCON_BOOL(true), "compression", "[",
                 "zlib", "]", "saslSupportedMechs", "admin.u", "$db", "admin");
    bson_t out;
    bool load_balanced;
    cc_handshake_rewrite_request(hello, true, &out, &load_balanced);
    assert_true(load_balanced);
    assert_true(bson_has_field(&out, "client"));
    assert_true(bson_has_field(&out, "saslSupportedMechs"));
    assert_true(bson_has_field(&out, "helloOk"));
    assert_true(bson_has_field(&out, "$db"));
    assert_false(bson_has_field(&out, "loadBalanced"));
    assert_false(bson_has_field(&out, "compression"));
    bson_destroy(&out);

    cc_handshake_rewrite_request(hello, false, &out, &load_balanced);
    assert_false(bson_has_field(&out, "client"));
    bson_destroy(&out);
    bson_destroy(hello);
}

static void test_request_without_load_balanced_is_router_form(void **state)
{
    (void)state;
    bson_t *hello = BCON_NEW("isMaster", BCON_INT32(1), "loadBalanced", BCON_BOOL(false));
    bson_t out;
    bool load_balanced = true;
    cc_handshake_rewrite_request(hello, true, &out, &load_balanced);
    assert_false(load_balanced);
    bson_destroy(&out);
    bson_destroy(hello);
}

/* Only a primary's successful reply is kept for answering handshakes
 * while no primary is known. */
static void test_only_a_primary_reply_is_kept(void **state)
{
    (void)state;
    bson_t *primary = primary_reply();
    bson_t *secondary = BCON_NEW("isWritablePrimary", BCON_BOOL(false), "ok", BCON_DOUBLE(1));
    bson_t *legacy = BCON_NEW("ismaster", BCON_BOOL(true), "ok", BCON_INT32(1));
    bson_t *failed = BCON_NEW("ismaster", BCON_BOOL(true), "ok", BCON_DOUBLE(0));
    assert_true(cc_handshake_from_primary(primary));
    assert_true(cc_handshake_from_primary(legacy));
    assert_false(cc_handshake_from_primary(secondary));
    assert_false(cc_handshake_from_primary(failed));
    bson_t *docs[] = {primary, secondary, legacy, failed};
    for (size_t i = 0; i < 4; i++) {
        bson_destroy(docs[i]);
    }
}

static void test_hello_names(void **state)
{
    (void)state;
    const struct {
        const char *name;
        bool hello;
    } table[] = {{"hello", true}, {"isMaster", true}, {"ismaster", true}, {"ISMASTER", false},
                 {"ping", false}, {"helloOk", false}, {"", false}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        assert_int_equal(cc_handshake_is_hello(table[i].name), table[i].hello);
    }
}

static void test_query_wrapper_unwraps_and_rewraps(void **state)
{
    (void)state;
    const char *wrappers[] = {"$query", "query"};
    for (size_t i = 0; i < 2; i++) {
        bson_t *doc = BCON_NEW(wrappers[i], "{", "isMaster", BCON_INT32(1), "client", "{", "}", "}",
                               "$readPreference", "{", "mode", "primaryPreferred", "}");
        bson_t command, rewritten, wrapped;
        const char *key;
        bool load_balanced;
        assert_true(cc_handshake_unwrap_query(doc, &command, &key));
        assert_string_equal(key, wrappers[i]);
        assert_true(bson_has_field(&command, "isMaster"));
        cc_handshake_rewrite_request(&command, false, &rewritten, &load_balanced);
        cc_handshake_rewrap_query(doc, key, &rewritten, &wrapped);
        assert_true(bson_has_field(&wrapped, "$readPreference"));
        bson_iter_t iter, child;
        assert_true(bson_iter_init_find(&iter, &wrapped, wrappers[i]));
        assert_true(bson_iter_recurse(&iter, &child));
        assert_false(bson_iter_find(&child, "client"));
        bson_destroy(&rewritten);
        bson_destroy(&wrapped);
        bson_destroy(doc);
    }
    bson_t *bare = BCON_NEW("ismaster", BCON_INT32(1));
    bson_t command;
    const char *key;
    assert_true(cc_handshake_unwrap_query(bare, &command, &key));
    assert_null(key);
    assert_true(bson_has_field(&command, "ismaster"));
    bson_destroy(bare);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_keeps_every_allowed_field),
        cmocka_unit_test(test_reply_strips_every_replica_set_field),
        cmocka_unit_test(test_reply_in_load_balanced_form_carries_service_id),
        cmocka_unit_test(test_error_reply_keeps_error_fields_only),
        cmocka_unit_test(test_first_request_keeps_client_metadata_and_drops_proxy_fields),
        cmocka_unit_test(test_request_without_load_balanced_is_router_form),
        cmocka_unit_test(test_only_a_primary_reply_is_kept),
        cmocka_unit_test(test_hello_names),
        cmocka_unit_test(test_query_wrapper_unwraps_and_rewraps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
