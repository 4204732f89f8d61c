/* SPDX-License-Identifier: Apache-2.0 */
/* The handshake rewrite that makes the proxy look like one mongos.
 *
 * Drivers build their view of a deployment from hello replies
 * (server-discovery-and-monitoring spec). A reply with msg:"isdbgrid" is a
 * Mongos; a topology whose only seed is a Mongos is Sharded, and every
 * operation goes to it. Any replica-set field left in the reply would undo
 * that: hosts/setName make drivers connect to the members, isreplicaset
 * makes them wait for an initialised set, topologyVersion turns on
 * streaming monitoring, compression turns on OP_COMPRESSED. So the reply is
 * built from an allow-list, never by removing fields. */
#include "handshake.h"

#include <string.h>

bool cc_handshake_is_hello(const char *command_name)
{
    return strcmp(command_name, "hello") == 0 || strcmp(command_name, "isMaster") == 0 ||
           strcmp(command_name, "ismaster") == 0;
}

void cc_handshake_rewrite_request(const bson_t *command, bool first_on_connection, bson_t *out,
                                  bool *load_balanced)
{
    bson_iter_t iter;
    *load_balanced = false;
    bson_init(out);
    if (!bson_iter_init(&iter, command)) {
        return;
    }
    while (bson_iter_next(&iter)) {
        const char *key = bson_iter_key(&iter);
        if (strcmp(key, "loadBalanced") == 0) {
            /* load-balancer spec: only a mongos behind a load balancer may
             * be asked this; a mongod refuses the handshake. */
            *load_balanced = bson_iter_as_bool(&iter);
            continue;
        }
        if (strcmp(key, "compression") == 0) {
            /* The proxy forwards frames as they are and does not advertise
             * compression, so the upstream must not negotiate any either. */
            continue;
        }
        if (strcmp(key, "client") == 0 && !first_on_connection) {
            continue;
        }
        bson_append_iter(out, key, -1, &iter);
    }
}

static const char *const reply_fields[] = {
    "helloOk",           "maxBsonObjectSize",  "maxMessageSizeBytes",
    "maxWriteBatchSize", "localTime",          "logicalSessionTimeoutMinutes",
    "connectionId",      "minWireVersion",     "maxWireVersion",
    "readOnly",          "saslSupportedMechs", "speculativeAuthenticate",
};

/* An error reply keeps what drivers read from any command failure. */
static const char *const error_fields[] = {"errmsg", "code", "codeName", "errorLabels"};

static const char *const trailing_fields[] = {"ok", "$clusterTime", "operationTime"};

static bool listed(const char *key, const char *const *fields, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(key, fields[i]) == 0) {
            return true;
        }
    }
    return false;
}

#define LISTED(key, fields) listed(key, fields, sizeof fields / sizeof fields[0])

static void append_matching(bson_t *out, const bson_t *reply, const char *const *fields,
                            size_t count)
{
    bson_iter_t iter;
    if (!bson_iter_init(&iter, reply)) {
        return;
    }
    while (bson_iter_next(&iter)) {
        if (listed(bson_iter_key(&iter), fields, count)) {
            bson_append_iter(out, bson_iter_key(&iter), -1, &iter);
        }
    }
}

static bool reply_succeeded(const bson_t *reply)
{
    bson_iter_t iter;
    return bson_iter_init_find(&iter, reply, "ok") && bson_iter_as_double(&iter) == 1.0;
}

void cc_handshake_rewrite_reply(const bson_t *upstream_reply, bool load_balanced,
                                const bson_oid_t *service_id, bson_t *out)
{
    bson_init(out);
    if (!reply_succeeded(upstream_reply)) {
        append_matching(out, upstream_reply, error_fields,
                        sizeof error_fields / sizeof error_fields[0]);
        append_matching(out, upstream_reply, trailing_fields,
                        sizeof trailing_fields / sizeof trailing_fields[0]);
        return;
    }
    static const char *const role_fields[] = {"ismaster", "isWritablePrimary"};
    append_matching(out, upstream_reply, role_fields, 2);
    /* Drivers treat msg:"isdbgrid" as mongos (SDAM spec, "Parsing a hello
     * or legacy hello response"). */
    BSON_APPEND_UTF8(out, "msg", "isdbgrid");
    append_matching(out, upstream_reply, reply_fields,
                    sizeof reply_fields / sizeof reply_fields[0]);
    if (load_balanced) {
        /* load-balancer spec: drivers require serviceId and key cursors and
         * transactions by it; one per changecast instance. */
        BSON_APPEND_OID(out, "serviceId", service_id);
    }
    append_matching(out, upstream_reply, trailing_fields,
                    sizeof trailing_fields / sizeof trailing_fields[0]);
}

bool cc_handshake_from_primary(const bson_t *reply)
{
    bson_iter_t iter;
    return reply_succeeded(reply) &&
           (bson_iter_init_find(&iter, reply, "isWritablePrimary") ||
            bson_iter_init_find(&iter, reply, "ismaster")) &&
           bson_iter_as_bool(&iter);
}

bool cc_handshake_answerable(const bson_t *command)
{
    bson_iter_t iter;
    return !bson_iter_init_find(&iter, command, "saslSupportedMechs") &&
           !bson_iter_init_find(&iter, command, "speculativeAuthenticate");
}

bool cc_handshake_is_auth(const char *command_name)
{
    return strcmp(command_name, "saslStart") == 0 || strcmp(command_name, "saslContinue") == 0 ||
           strcmp(command_name, "authenticate") == 0;
}

/* What a router reply says of the deployment rather than of one request. */
static const char *const deployment_fields[] = {
    "maxBsonObjectSize", "maxMessageSizeBytes", "maxWriteBatchSize", "logicalSessionTimeoutMinutes",
    "minWireVersion",    "maxWireVersion",      "readOnly",
};

void cc_handshake_local_reply(const bson_t *command, const bson_t *known, bool load_balanced,
                              const bson_oid_t *service_id, int64_t connection_id, bson_t *out)
{
    bson_iter_t iter;
    bson_init(out);
    const char *name =
        bson_iter_init(&iter, command) && bson_iter_next(&iter) ? bson_iter_key(&iter) : "hello";
    BSON_APPEND_BOOL(out, strcmp(name, "hello") == 0 ? "isWritablePrimary" : "ismaster", true);
    BSON_APPEND_UTF8(out, "msg", "isdbgrid");
    if (bson_iter_init_find(&iter, command, "helloOk") && bson_iter_as_bool(&iter)) {
        BSON_APPEND_BOOL(out, "helloOk", true);
    }
    append_matching(out, known, deployment_fields,
                    sizeof deployment_fields / sizeof deployment_fields[0]);
    struct timeval now;
    bson_gettimeofday(&now);
    BSON_APPEND_DATE_TIME(out, "localTime", (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000);
    /* mongod appends it as a number: an int32 while it fits. */
    if (connection_id <= INT32_MAX) {
        BSON_APPEND_INT32(out, "connectionId", (int32_t)connection_id);
    } else {
        BSON_APPEND_INT64(out, "connectionId", connection_id);
    }
    if (load_balanced) {
        BSON_APPEND_OID(out, "serviceId", service_id);
    }
    BSON_APPEND_DOUBLE(out, "ok", 1.0);
    static const char *const clock_fields[] = {"$clusterTime", "operationTime"};
    append_matching(out, known, clock_fields, 2);
}

bool cc_handshake_unwrap_query(const bson_t *query_doc, bson_t *command, const char **wrapper_key)
{
    bson_iter_t iter;
    *wrapper_key = NULL;
    if (!bson_iter_init(&iter, query_doc) || !bson_iter_next(&iter)) {
        return false;
    }
    const char *key = bson_iter_key(&iter);
    if ((strcmp(key, "$query") == 0 || strcmp(key, "query") == 0) &&
        BSON_ITER_HOLDS_DOCUMENT(&iter)) {
        const uint8_t *data;
        uint32_t len;
        bson_iter_document(&iter, &len, &data);
        *wrapper_key = strcmp(key, "$query") == 0 ? "$query" : "query";
        return bson_init_static(command, data, len);
    }
    return bson_init_static(command, bson_get_data(query_doc), query_doc->len);
}

void cc_handshake_rewrap_query(const bson_t *query_doc, const char *wrapper_key,
                               const bson_t *command, bson_t *out)
{
    bson_iter_t iter;
    bson_init(out);
    if (!wrapper_key) {
        bson_concat(out, command);
        return;
    }
    if (!bson_iter_init(&iter, query_doc)) {
        return;
    }
    while (bson_iter_next(&iter)) {
        if (strcmp(bson_iter_key(&iter), wrapper_key) == 0) {
            BSON_APPEND_DOCUMENT(out, wrapper_key, command);
        } else {
            bson_append_iter(out, bson_iter_key(&iter), -1, &iter);
        }
    }
}
