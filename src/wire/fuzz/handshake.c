/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the handshake rewrite (src/wire/handshake.c) fed
 * arbitrary documents, as a client's hello and as an upstream's reply. The
 * input is one byte of settings, then the elements of a BSON document: the
 * target adds the length prefix and the terminating NUL, so mutations land
 * on the elements instead of on a length libbson would refuse.
 *
 *   settings bit 0: first handshake on the connection (client metadata kept)
 *   settings bit 1: the client asked for the load-balanced form
 *
 * Like the session, the document is only framed (bson_init_static), never
 * validated: the rewrite must cope with whatever follows a valid prefix.
 * Checks the promises the rewrite makes, not only that it does not crash:
 * no replica-set field ever reaches a client, no proxy-only field reaches
 * the upstream. */
#include "core/fuzz/fuzz_bson.h"
#include "wire/handshake.h"
#include "core/fuzz/fuzz_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What cc_handshake_rewrite_reply may let through (handshake.c's lists). */
static const char *const reply_keys[] = {
    "ismaster",
    "isWritablePrimary",
    "msg",
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
    "serviceId",
    "errmsg",
    "code",
    "codeName",
    "errorLabels",
    "ok",
    "$clusterTime",
    "operationTime",
};

static bool allowed_in_reply(const char *key)
{
    for (size_t i = 0; i < sizeof reply_keys / sizeof reply_keys[0]; i++) {
        if (strcmp(key, reply_keys[i]) == 0) {
            return true;
        }
    }
    return false;
}

static void check_request(const bson_t *command, bool first)
{
    bson_t out;
    bool load_balanced;
    cc_handshake_rewrite_request(command, first, &out, &load_balanced);
    bson_iter_t iter;
    CHECK(bson_iter_init(&iter, &out));
    while (bson_iter_next(&iter)) {
        const char *key = bson_iter_key(&iter);
        CHECK(strcmp(key, "loadBalanced") != 0);
        CHECK(strcmp(key, "compression") != 0);
        CHECK(first || strcmp(key, "client") != 0);
    }
    bson_destroy(&out);
}

static void check_reply(const bson_t *reply, bool load_balanced)
{
    bson_t out;
    bson_oid_t service_id;
    bson_oid_init_from_data(&service_id, (const uint8_t *)"changecast12");
    cc_handshake_rewrite_reply(reply, load_balanced, &service_id, &out);
    bson_iter_t iter;
    bool has_msg = false, has_service_id = false;
    CHECK(bson_iter_init(&iter, &out));
    while (bson_iter_next(&iter)) {
        const char *key = bson_iter_key(&iter);
        CHECK(allowed_in_reply(key));
        has_msg |= strcmp(key, "msg") == 0 && BSON_ITER_HOLDS_UTF8(&iter);
        has_service_id |= strcmp(key, "serviceId") == 0 && BSON_ITER_HOLDS_OID(&iter);
    }
    /* A successful reply always names a router; serviceId only when asked. */
    bool succeeded = bson_iter_init_find(&iter, reply, "ok") && bson_iter_as_double(&iter) == 1.0;
    CHECK(has_msg == succeeded);
    CHECK(!has_service_id || load_balanced);
    bson_destroy(&out);
}

static void check_legacy(const bson_t *query_doc, bool first)
{
    bson_t command, rewritten, wrapped;
    const char *wrapper_key;
    bool load_balanced;
    if (!cc_handshake_unwrap_query(query_doc, &command, &wrapper_key)) {
        return;
    }
    bson_iter_t iter;
    if (bson_iter_init(&iter, &command) && bson_iter_next(&iter)) {
        (void)cc_handshake_is_hello(bson_iter_key(&iter));
    }
    cc_handshake_rewrite_request(&command, first, &rewritten, &load_balanced);
    cc_handshake_rewrap_query(query_doc, wrapper_key, &rewritten, &wrapped);
    bson_destroy(&rewritten);
    bson_destroy(&wrapped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    bool first = data[0] & 1, load_balanced = data[0] & 2;
    size_t len;
    uint8_t *bytes = fuzz_bson_frame(data + 1, size - 1, &len);
    if (!bytes) {
        return 0;
    }
    bson_t doc;
    CHECK(bson_init_static(&doc, bytes, len));
    check_request(&doc, first);
    check_reply(&doc, load_balanced);
    check_legacy(&doc, first);
    free(bytes);
    return 0;
}
