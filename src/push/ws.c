/* SPDX-License-Identifier: Apache-2.0 */
/* The changecast.v1 WebSocket protocol (docs/push-protocol.md): JSON text
 * messages, many subscriptions per socket. A message that cannot be
 * accepted gets an error reply and the socket stays; only protocol
 * violations close it. JSON is parsed by libbson. */
#include "changecast/log.h"
#include "push_internal.h"

#include <ctype.h>
#include <string.h>

void cc_ws_send_json(cc_conn_t *conn, const bson_t *message)
{
    size_t len;
    char *json = cc_json_or_placeholder(message, &len);
    const char *parts[] = {json};
    cc_conn_append_ws_text(conn, parts, &len, 1);
    bson_free(json);
    cc_conn_mark_dirty(conn);
}

static void send_simple(cc_conn_t *conn, const char *type, const char *id)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "type", type);
    if (id) {
        BSON_APPEND_UTF8(&doc, "id", id);
    }
    cc_ws_send_json(conn, &doc);
    bson_destroy(&doc);
}

static void send_error(cc_conn_t *conn, const char *id, const char *code, const char *message)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "type", "error");
    if (id) {
        BSON_APPEND_UTF8(&doc, "id", id);
    } else {
        BSON_APPEND_NULL(&doc, "id");
    }
    BSON_APPEND_UTF8(&doc, "code", code);
    BSON_APPEND_UTF8(&doc, "message", message);
    cc_ws_send_json(conn, &doc);
    bson_destroy(&doc);
    conn->push->metrics.requests_rejected++;
}

/* Ids go into replies unescaped, so they are kept to a safe alphabet. */
static bool valid_id(const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > 64) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)id[i]) && !strchr("_-.:", id[i])) {
            return false;
        }
    }
    return true;
}

static cc_sub_t *find_sub(cc_conn_t *conn, const char *id)
{
    cc_sub_t *sub;
    TAILQ_FOREACH(sub, &conn->subs, conn_link)
    {
        if (strcmp(sub->id, id) == 0) {
            return sub;
        }
    }
    return NULL;
}

static bool add_namespaces(cc_conn_t *conn, cc_sub_t *sub, bson_iter_t *iter, const char **code,
                           bson_error_t *error)
{
    if (BSON_ITER_HOLDS_UTF8(iter)) {
        return cc_sub_add_namespace(conn->push, sub, bson_iter_utf8(iter, NULL), code, error);
    }
    bson_iter_t item;
    if (!BSON_ITER_HOLDS_ARRAY(iter) || !bson_iter_recurse(iter, &item)) {
        *code = "bad_request";
        bson_set_error(error, 0, 0, "ns must be a string or an array of strings");
        return false;
    }
    while (bson_iter_next(&item)) {
        if (!BSON_ITER_HOLDS_UTF8(&item)) {
            *code = "bad_request";
            bson_set_error(error, 0, 0, "ns must be a string or an array of strings");
            return false;
        }
        if (!cc_sub_add_namespace(conn->push, sub, bson_iter_utf8(&item, NULL), code, error)) {
            return false;
        }
    }
    return true;
}

static bool set_ops(cc_sub_t *sub, bson_iter_t *iter, bson_error_t *error)
{
    if (BSON_ITER_HOLDS_UTF8(iter)) {
        return cc_sub_set_ops(sub, bson_iter_utf8(iter, NULL), error);
    }
    bson_iter_t item;
    uint32_t ops = 0;
    if (!BSON_ITER_HOLDS_ARRAY(iter) || !bson_iter_recurse(iter, &item)) {
        bson_set_error(error, 0, 0, "ops must be an array of operation types");
        return false;
    }
    while (bson_iter_next(&item)) {
        uint32_t bit =
            BSON_ITER_HOLDS_UTF8(&item) ? cc_op_bit(bson_iter_utf8(&item, NULL)) : CC_OP_OTHER;
        if (bit == CC_OP_OTHER) {
            bson_set_error(error, 0, 0,
                           "ops: every item must be one of insert, update, replace, delete, "
                           "drop, rename, dropDatabase, invalidate");
            return false;
        }
        ops |= bit;
    }
    if (!ops) {
        bson_set_error(error, 0, 0, "ops: empty list");
        return false;
    }
    sub->ops = ops;
    return true;
}

/* snapshot, format, sort and limit (docs/push-protocol.md, live queries). */
static bool set_live_query(struct cc_push *push, cc_sub_t *sub, const bson_t *message,
                           const char **code, bson_error_t *error)
{
    bson_iter_t iter;
    *code = "bad_request";
    if (bson_iter_init_find(&iter, message, "snapshot")) {
        if (!BSON_ITER_HOLDS_BOOL(&iter)) {
            bson_set_error(error, 0, 0, "snapshot must be true or false");
            return false;
        }
        sub->want_snapshot = bson_iter_bool(&iter);
    }
    if (bson_iter_init_find(&iter, message, "format")) {
        if (!BSON_ITER_HOLDS_UTF8(&iter)) {
            bson_set_error(error, 0, 0, "format must be a string");
            return false;
        }
        if (!cc_sub_set_format(sub, bson_iter_utf8(&iter, NULL), error)) {
            return false;
        }
    }
    if (bson_iter_init_find(&iter, message, "sort")) {
        const uint8_t *data;
        uint32_t len;
        bson_t sort;
        if (!BSON_ITER_HOLDS_DOCUMENT(&iter)) {
            bson_set_error(error, 0, 0, "sort must be an object such as {\"createdAt\": -1}");
            return false;
        }
        bson_iter_document(&iter, &len, &data);
        bson_init_static(&sort, data, len);
        sub->sort = bson_copy(&sort);
    }
    if (bson_iter_init_find(&iter, message, "limit")) {
        if (!BSON_ITER_HOLDS_NUMBER(&iter) || bson_iter_as_int64(&iter) <= 0) {
            bson_set_error(error, 0, 0, "limit must be a positive integer");
            return false;
        }
        sub->limit = bson_iter_as_int64(&iter);
    }
    return cc_livequery_prepare(push, sub, code, error);
}

void cc_ws_refuse_sub(cc_sub_t *sub, const char *code, const char *message)
{
    cc_conn_t *conn = sub->conn;
    send_error(conn, sub->id, code, message);
    TAILQ_REMOVE(&conn->subs, sub, conn_link);
    conn->sub_count--;
    cc_fanout_stop(conn->push, sub);
    cc_sub_free(sub);
}

static void subscribe(cc_conn_t *conn, const bson_t *message, const char *id)
{
    bson_iter_t iter;
    bson_error_t error;
    const char *code = "bad_request";
    if (!valid_id(id)) {
        send_error(conn, NULL, "bad_request", "id must be 1 to 64 of A-Z a-z 0-9 _ - . :");
        return;
    }
    if (find_sub(conn, id)) {
        send_error(conn, id, "duplicate_id", "a subscription with this id exists on this socket");
        return;
    }
    if (conn->sub_count >= (size_t)conn->push->options.max_subscriptions) {
        cc_access_refused(conn->push, CC_REFUSAL_TOO_MANY_SUBSCRIPTIONS);
        send_error(conn, id, "too_many_subscriptions", "push.max_subscriptions reached");
        return;
    }
    cc_sub_t *sub = cc_sub_new(conn, id);
    char token[CC_MAX_RESUME_TOKEN + 8];
    const char *after = NULL;
    if (!bson_iter_init_find(&iter, message, "ns")) {
        bson_set_error(&error, 0, 0, "ns is required");
        goto fail;
    }
    if (!add_namespaces(conn, sub, &iter, &code, &error)) {
        goto fail;
    }
    code = "bad_filter";
    if (bson_iter_init_find(&iter, message, "filter")) {
        bson_t filter;
        const uint8_t *data;
        uint32_t len;
        if (!BSON_ITER_HOLDS_DOCUMENT(&iter)) {
            bson_set_error(&error, 0, 0, "filter must be an object");
            goto fail;
        }
        bson_iter_document(&iter, &len, &data);
        bson_init_static(&filter, data, len);
        cc_refusal_t refusal;
        if (!cc_access_check_filter_shape(conn->push, &filter, len, &refusal, &error)) {
            code = cc_refusal_name(refusal);
            goto fail;
        }
        bson_error_t detail;
        sub->filter = cc_filter_compile(&filter, &detail);
        if (!sub->filter) {
            bson_set_error(&error, 0, 0, "filter: %s", detail.message);
            goto fail;
        }
        sub->query = bson_copy(&filter);
    }
    code = "bad_request";
    if (bson_iter_init_find(&iter, message, "ops") && !set_ops(sub, &iter, &error)) {
        goto fail;
    }
    if (bson_iter_init_find(&iter, message, "fullDocument")) {
        if (!BSON_ITER_HOLDS_UTF8(&iter)) {
            bson_set_error(&error, 0, 0, "fullDocument must be a string");
            goto fail;
        }
        if (!cc_sub_set_full_document(conn->push, sub, bson_iter_utf8(&iter, NULL), &error)) {
            goto fail;
        }
    }
    if (bson_iter_init_find(&iter, message, "after") && !BSON_ITER_HOLDS_NULL(&iter)) {
        if (!BSON_ITER_HOLDS_UTF8(&iter) ||
            !cc_token_normalize(bson_iter_utf8(&iter, NULL), token, sizeof token)) {
            bson_set_error(&error, 0, 0, "after must be a token (hex digits)");
            goto fail;
        }
        after = token;
    }
    if (!set_live_query(conn->push, sub, message, &code, &error)) {
        goto fail;
    }
    cc_refusal_t refusal;
    if (!cc_access_check_sub(conn->push, conn->grant, sub, &refusal, &error)) {
        code = cc_refusal_name(refusal);
        goto fail;
    }
    if (conn->push->capture_state == CC_CAPTURE_UNAVAILABLE) {
        code = "capture_unavailable";
        bson_set_error(&error, 0, 0, "%s", conn->push->capture_reason);
        goto fail;
    }
    if (sub->want_snapshot && !after && !cc_livequery_can_snapshot(conn->push)) {
        code = "capture_unavailable";
        bson_set_error(&error, 0, 0,
                       "the capture stream has not read anything yet: try again in a moment");
        goto fail;
    }
    TAILQ_INSERT_TAIL(&conn->subs, sub, conn_link);
    conn->sub_count++;
    send_simple(conn, "subscribed", id);
    cc_fanout_start(conn->push, sub, after);
    return;
fail:
    cc_sub_free(sub);
    send_error(conn, id, code, error.message);
}

static void unsubscribe(cc_conn_t *conn, const char *id)
{
    cc_sub_t *sub = find_sub(conn, id);
    if (!sub) {
        send_error(conn, id, "unknown_id", "no subscription with this id on this socket");
        return;
    }
    TAILQ_REMOVE(&conn->subs, sub, conn_link);
    conn->sub_count--;
    cc_fanout_stop(conn->push, sub);
    cc_sub_free(sub);
    send_simple(conn, "unsubscribed", id);
}

/* A token for the socket: the first, or a fresh one before the old expires.
 * The subscriptions go on; those the new token does not grant end. */
static void authenticate(cc_conn_t *conn, const bson_t *message)
{
    bson_iter_t iter;
    bson_error_t error;
    if (!bson_iter_init_find(&iter, message, "token") || !BSON_ITER_HOLDS_UTF8(&iter)) {
        send_error(conn, NULL, "bad_request", "auth needs a token (a string)");
        return;
    }
    cc_grant_t *grant = cc_access_verify(conn->push, bson_iter_utf8(&iter, NULL), &error);
    if (!grant) {
        send_error(conn, NULL, cc_refusal_name(cc_refusal_from_auth(&error)), error.message);
        return;
    }
    cc_grant_t *old = conn->grant;
    conn->grant = grant;
    cc_sub_t *sub, *next;
    for (sub = TAILQ_FIRST(&conn->subs); sub; sub = next) {
        next = TAILQ_NEXT(sub, conn_link);
        sub->scope = NULL;
        if (sub->state == CC_SUB_SNAPSHOT) {
            /* Its snapshot is being read with the old token's fields. */
            cc_access_refused(conn->push, CC_REFUSAL_NOT_GRANTED);
            cc_ws_refuse_sub(sub, "not_granted",
                             "the token changed while the snapshot was being read: subscribe "
                             "again");
            continue;
        }
        if (sub->pending && cc_pending_count(sub->pending)) {
            /* States projected for the old token: start over under the new. */
            cc_fanout_send_reset(sub, "token_changed",
                                 "the token changed: subscribe again with a snapshot");
        }
        cc_refusal_t refusal;
        char *rows_before =
            sub->view_query ? bson_as_canonical_extended_json(sub->view_query, NULL) : NULL;
        if (!cc_access_check_sub(conn->push, grant, sub, &refusal, &error)) {
            cc_ws_refuse_sub(sub, cc_refusal_name(refusal), error.message);
        } else if (sub->live_query) {
            /* A live query's rows were fixed by its snapshot: a token with
             * other rows needs a new snapshot. */
            char *rows_after =
                sub->view_query ? bson_as_canonical_extended_json(sub->view_query, NULL) : NULL;
            if ((rows_before == NULL) != (rows_after == NULL) ||
                (rows_before && strcmp(rows_before, rows_after) != 0)) {
                cc_access_refused(conn->push, CC_REFUSAL_NOT_GRANTED);
                cc_ws_refuse_sub(sub, "not_granted",
                                 "the new token grants other rows: subscribe again with a "
                                 "snapshot");
            }
            bson_free(rows_after);
        }
        bson_free(rows_before);
    }
    cc_grant_destroy(old);
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "type", "authenticated");
    BSON_APPEND_INT64(&doc, "expiresAt", cc_grant_expires_at(grant));
    cc_ws_send_json(conn, &doc);
    bson_destroy(&doc);
}

void cc_ws_open(cc_conn_t *conn)
{
    struct cc_push *push = conn->push;
    cc_refusal_t refusal;
    bson_error_t error;
    lws_get_peer_simple(conn->wsi, conn->peer_ip, sizeof conn->peer_ip);
    /* cc_conn_new counted this socket already. */
    push->ws_count--;
    bool admitted = cc_access_admit(push, conn->peer_ip, &refusal);
    push->ws_count++;
    if (!admitted) {
        cc_conn_drop(conn, LWS_CLOSE_STATUS_POLICY_VIOLATION, cc_refusal_name(refusal));
        return;
    }
    conn->admitted = true;
    char *token = bson_malloc(CC_MAX_TOKEN_BYTES + 1);
    bool has_token = cc_access_token(push, conn->wsi, token, CC_MAX_TOKEN_BYTES + 1);
    if (has_token || cc_auth_mode(push->auth) == CC_AUTH_MODE_NONE) {
        conn->grant = cc_access_verify(push, token, &error);
        if (!conn->grant) {
            cc_conn_drop(conn, 4003, cc_refusal_name(cc_refusal_from_auth(&error)));
        }
    }
    bson_free(token);
}

void cc_ws_handle_message(cc_conn_t *conn, const char *text, size_t len)
{
    /* A client that does not read what it asked for gets nothing more:
     * each request (a snapshot above all) could queue megabytes. */
    if (conn->wsi && cc_conn_over_limit(conn) && cc_conn_stalled(conn)) {
        conn->push->metrics.drops_slow_consumer++;
        conn->out.len = 0;
        cc_conn_drop(conn, 1013, "slow_consumer");
        return;
    }
    bson_t message;
    bson_error_t error;
    bson_iter_t iter;
    if (!cc_filter_parse_json(text, len, &message, &error)) {
        send_error(conn, NULL, "bad_message", error.message);
        bson_destroy(&message);
        return;
    }
    const char *type = bson_iter_init_find(&iter, &message, "type") && BSON_ITER_HOLDS_UTF8(&iter)
                           ? bson_iter_utf8(&iter, NULL)
                           : "";
    const char *id = bson_iter_init_find(&iter, &message, "id") && BSON_ITER_HOLDS_UTF8(&iter)
                         ? bson_iter_utf8(&iter, NULL)
                         : NULL;
    if (strcmp(type, "ping") == 0) {
        send_simple(conn, "pong", NULL);
    } else if (strcmp(type, "auth") == 0) {
        authenticate(conn, &message);
    } else if (strcmp(type, "subscribe") == 0 || strcmp(type, "unsubscribe") == 0) {
        if (!id) {
            send_error(conn, NULL, "bad_request", "id is required and must be a string");
        } else if (type[0] == 's') {
            subscribe(conn, &message, id);
        } else {
            unsubscribe(conn, id);
        }
    } else {
        send_error(conn, id, "bad_message",
                   "type must be one of subscribe, unsubscribe, auth, ping");
    }
    bson_destroy(&message);
}

int cc_ws_receive(cc_conn_t *conn, const void *in, size_t len)
{
    struct lws *wsi = conn->wsi;
    conn->last_rx_us = bson_get_monotonic_time();
    if (lws_frame_is_binary(wsi)) {
        cc_conn_drop(conn, LWS_CLOSE_STATUS_PROTOCOL_ERR, "binary frames are not accepted");
        return 0;
    }
    if (conn->rx_len + len > (size_t)conn->push->options.max_message_bytes) {
        cc_access_refused(conn->push, CC_REFUSAL_MESSAGE_TOO_LARGE);
        cc_conn_drop(conn, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        return 0;
    }
    conn->rx = bson_realloc(conn->rx, conn->rx_len + len + 1);
    memcpy(conn->rx + conn->rx_len, in, len);
    conn->rx_len += len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
        cc_ws_handle_message(conn, (const char *)conn->rx, conn->rx_len);
        /* Idle sockets keep no receive buffer (design.md: ~1.4 KiB each). */
        bson_free(conn->rx);
        conn->rx = NULL;
        conn->rx_len = 0;
    }
    return 0;
}
