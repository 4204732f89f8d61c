/* SPDX-License-Identifier: Apache-2.0 */
/* The changecast.v1 WebSocket protocol (docs/push-protocol.md): JSON text
 * messages, many subscriptions per socket. A message that cannot be
 * accepted gets an error reply and the socket stays; only protocol
 * violations close it. JSON is parsed by libbson. */
#include "changecast/log.h"
#include "encode.h"
#include "port.h"

#include <ctype.h>
#include <string.h>

static void send_json(cc_conn_t *conn, const bson_t *message)
{
    cc_conn_push(conn, NULL, cc_encode_ws_json(message), 0);
    cc_conn_wake(conn);
}

static cc_port_t *port_of_conn(const cc_conn_t *conn)
{
    return lws_context_user(lws_get_context(conn->wsi));
}

static void send_simple(cc_conn_t *conn, const char *type, const char *id)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "type", type);
    if (id) {
        BSON_APPEND_UTF8(&doc, "id", id);
    }
    send_json(conn, &doc);
    bson_destroy(&doc);
}

static void send_error(cc_port_t *port, cc_conn_t *conn, const char *id, const char *code,
                       const char *message)
{
    port->metrics.requests_rejected++;
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "type", "error");
    if (id) {
        BSON_APPEND_UTF8(&doc, "id", id);
    } else {
        BSON_APPEND_NULL(&doc, "id");
    }
    BSON_APPEND_UTF8(&doc, "code", code);
    BSON_APPEND_UTF8(&doc, "message", message);
    send_json(conn, &doc);
    bson_destroy(&doc);
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

static bool add_namespaces(cc_port_t *port, cc_sub_t *sub, bson_iter_t *iter, const char **code,
                           bson_error_t *error)
{
    if (BSON_ITER_HOLDS_UTF8(iter)) {
        return cc_sub_add_namespace(&port->expose, sub, bson_iter_utf8(iter, NULL), code, error);
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
        if (!cc_sub_add_namespace(&port->expose, sub, bson_iter_utf8(&item, NULL), code, error)) {
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
    sub->ops = (uint16_t)ops;
    return true;
}

/* snapshot, format, sort and limit (docs/push-protocol.md, live queries). */
static bool set_live_query(cc_port_t *port, cc_sub_t *sub, const bson_t *message, const char **code,
                           bson_error_t *error)
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
        cc_sub_set_sort(sub, &sort);
    }
    if (bson_iter_init_find(&iter, message, "limit") &&
        !cc_sub_set_limit(sub, BSON_ITER_HOLDS_NUMBER(&iter) ? bson_iter_as_int64(&iter) : 0,
                          error)) {
        return false;
    }
    return cc_sub_prepare_live_query(&port->options, sub, code, error);
}

static void refuse_sub(cc_port_t *port, cc_sub_t *sub, const char *code, const char *message)
{
    cc_conn_t *conn = sub->conn;
    send_error(port, conn, sub->id, code, message);
    TAILQ_REMOVE(&conn->subs, sub, conn_link);
    conn->sub_count--;
    cc_fanout_stop(&port->fanout, sub);
    cc_sub_free(sub);
}

/* ops->end_sub: an error for the subscription, which is gone; the socket stays. */
static void end_sub(cc_sub_t *sub, unsigned status, const char *code, const char *message)
{
    (void)status;
    refuse_sub(port_of_conn(sub->conn), sub, code, message);
}

const cc_conn_ops_t cc_ws_ops = {"ws", end_sub};

static void subscribe(cc_port_t *port, cc_conn_t *conn, const bson_t *message, const char *id)
{
    bson_iter_t iter;
    bson_error_t error;
    const char *code = "bad_request";
    if (!valid_id(id)) {
        send_error(port, conn, NULL, "bad_request", "id must be 1 to 64 of A-Z a-z 0-9 _ - . :");
        return;
    }
    if (find_sub(conn, id)) {
        send_error(port, conn, id, "duplicate_id",
                   "a subscription with this id exists on this socket");
        return;
    }
    if (conn->sub_count >= (size_t)port->options.max_subscriptions) {
        cc_refusal_count(&port->metrics, CC_REFUSAL_TOO_MANY_SUBSCRIPTIONS);
        send_error(port, conn, id, "too_many_subscriptions", "push.max_subscriptions reached");
        return;
    }
    cc_sub_t *sub = cc_sub_new(conn, id);
    char token[CC_MAX_RESUME_TOKEN + 8];
    const char *after = NULL;
    if (!bson_iter_init_find(&iter, message, "ns")) {
        bson_set_error(&error, 0, 0, "ns is required");
        goto fail;
    }
    if (!add_namespaces(port, sub, &iter, &code, &error)) {
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
        if (!cc_verdict_filter_shape(&port->options, &port->metrics, &filter, len, &refusal,
                                     &error)) {
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
        if (!cc_sub_set_full_document(&port->options, sub, bson_iter_utf8(&iter, NULL), &error)) {
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
    if (!set_live_query(port, sub, message, &code, &error)) {
        goto fail;
    }
    cc_refusal_t refusal;
    if (!cc_verdict_sub(&port->metrics, conn->grant, sub, &refusal, &error)) {
        code = cc_refusal_name(refusal);
        goto fail;
    }
    if (port->fanout.capture_state == CC_CAPTURE_UNAVAILABLE) {
        code = "capture_unavailable";
        bson_set_error(&error, 0, 0, "%s", port->fanout.capture_reason);
        goto fail;
    }
    if (sub->want_snapshot && !after && !cc_fanout_can_snapshot(&port->fanout)) {
        code = "capture_unavailable";
        bson_set_error(&error, 0, 0,
                       "the capture stream has not read anything yet: try again in a moment");
        goto fail;
    }
    TAILQ_INSERT_TAIL(&conn->subs, sub, conn_link);
    conn->sub_count++;
    send_simple(conn, "subscribed", id);
    cc_fanout_start(&port->fanout, sub, after);
    return;
fail:
    cc_sub_free(sub);
    send_error(port, conn, id, code, error.message);
}

static void unsubscribe(cc_port_t *port, cc_conn_t *conn, const char *id)
{
    cc_sub_t *sub = find_sub(conn, id);
    if (!sub) {
        send_error(port, conn, id, "unknown_id", "no subscription with this id on this socket");
        return;
    }
    TAILQ_REMOVE(&conn->subs, sub, conn_link);
    conn->sub_count--;
    cc_fanout_stop(&port->fanout, sub);
    cc_sub_free(sub);
    send_simple(conn, "unsubscribed", id);
}

/* A token for the socket: the first, or a fresh one before the old expires.
 * The subscriptions go on; those the new token does not grant end. */
static void authenticate(cc_port_t *port, cc_conn_t *conn, const bson_t *message)
{
    bson_iter_t iter;
    bson_error_t error;
    if (!bson_iter_init_find(&iter, message, "token") || !BSON_ITER_HOLDS_UTF8(&iter)) {
        send_error(port, conn, NULL, "bad_request", "auth needs a token (a string)");
        return;
    }
    cc_grant_t *grant = cc_access_verify(port, bson_iter_utf8(&iter, NULL), &error);
    if (!grant) {
        send_error(port, conn, NULL, cc_refusal_name(cc_refusal_from_auth(&error)), error.message);
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
            cc_refusal_count(&port->metrics, CC_REFUSAL_NOT_GRANTED);
            refuse_sub(port, sub, "not_granted",
                       "the token changed while the snapshot was being read: subscribe "
                       "again");
            continue;
        }
        if (cc_sub_states_waiting(sub)) {
            /* States projected for the old token: start over under the new. */
            cc_emit_reset(sub, "token_changed",
                          "the token changed: subscribe again with a snapshot");
        }
        cc_refusal_t refusal;
        char *rows_before = cc_sub_rows_json(sub);
        if (!cc_verdict_sub(&port->metrics, grant, sub, &refusal, &error)) {
            refuse_sub(port, sub, cc_refusal_name(refusal), error.message);
        } else if (sub->live) {
            /* A live query's rows were fixed by its snapshot: a token with
             * other rows needs a new snapshot. */
            char *rows_after = cc_sub_rows_json(sub);
            if ((rows_before == NULL) != (rows_after == NULL) ||
                (rows_before && strcmp(rows_before, rows_after) != 0)) {
                cc_refusal_count(&port->metrics, CC_REFUSAL_NOT_GRANTED);
                refuse_sub(port, sub, "not_granted",
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
    send_json(conn, &doc);
    bson_destroy(&doc);
}

void cc_ws_open(cc_port_t *port, cc_conn_t *conn)
{
    cc_refusal_t refusal;
    bson_error_t error;
    char ip[64] = "";
    lws_get_peer_simple(conn->wsi, ip, sizeof ip);
    /* cc_conn_new counted this socket already. */
    port->conns.count[CC_CONN_WS]--;
    conn->peer_ip = cc_access_admit(port, ip, &refusal);
    port->conns.count[CC_CONN_WS]++;
    if (!conn->peer_ip) {
        cc_conn_close(conn, LWS_CLOSE_STATUS_POLICY_VIOLATION, cc_refusal_name(refusal));
        return;
    }
    char *token = bson_malloc(CC_MAX_TOKEN_BYTES + 1);
    bool has_token = cc_access_token(port, conn->wsi, token, CC_MAX_TOKEN_BYTES + 1);
    if (has_token || cc_auth_mode(port->auth) == CC_AUTH_MODE_NONE) {
        conn->grant = cc_access_verify(port, token, &error);
        if (!conn->grant) {
            cc_conn_close(conn, 4003, cc_refusal_name(cc_refusal_from_auth(&error)));
        }
    }
    bson_free(token);
}

void cc_ws_handle_message(cc_port_t *port, cc_conn_t *conn, const char *text, size_t len)
{
    /* A client that does not read what it asked for gets nothing more:
     * each request (a snapshot above all) could queue megabytes. */
    if (!cc_conn_has_room(conn) && conn->state == CC_CONN_CLOSING) {
        return; /* closed as a slow consumer */
    }
    bson_t message;
    bson_error_t error;
    bson_iter_t iter;
    if (!cc_filter_parse_json(text, len, &message, &error)) {
        send_error(port, conn, NULL, "bad_message", error.message);
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
        authenticate(port, conn, &message);
    } else if (strcmp(type, "subscribe") == 0 || strcmp(type, "unsubscribe") == 0) {
        if (!id) {
            send_error(port, conn, NULL, "bad_request", "id is required and must be a string");
        } else if (type[0] == 's') {
            subscribe(port, conn, &message, id);
        } else {
            unsubscribe(port, conn, id);
        }
    } else {
        send_error(port, conn, id, "bad_message",
                   "type must be one of subscribe, unsubscribe, auth, ping");
    }
    bson_destroy(&message);
}

/* lws's reader (TLS connections): one piece of a text frame at a time. */
static void receive(cc_port_t *port, cc_conn_t *conn, const void *in, size_t len)
{
    struct lws *wsi = conn->wsi;
    conn->last_rx_us = bson_get_monotonic_time();
    if (lws_frame_is_binary(wsi)) {
        cc_conn_close(conn, LWS_CLOSE_STATUS_PROTOCOL_ERR, "binary frames are not accepted");
        return;
    }
    if (cc_ws_append(port, conn, in, len, lws_remaining_packet_payload(wsi)) &&
        lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
        cc_ws_deliver(port, conn, cc_ws_handle_message);
    }
}

/* permessage-deflate is agreed on plain TCP only: over TLS lws reads the
 * frames itself and refuses RSV1 without an extension of its own. The
 * same answer at ADD_HEADERS (the 101's header) and at ESTABLISHED. */
static bool agrees_deflate(cc_port_t *port, struct lws *wsi)
{
    char offers[512];
    return port->conns.deflate && !lws_is_ssl(wsi) &&
           lws_hdr_copy(wsi, offers, sizeof offers, WSI_TOKEN_EXTENSIONS) > 0 &&
           cc_pmd_acceptable(offers);
}

static int add_extension_header(cc_port_t *port, struct lws *wsi,
                                struct lws_process_html_args *args)
{
    static const char header[] = "Sec-WebSocket-Extensions: " CC_PMD_RESPONSE "\r\n";
    if (!agrees_deflate(port, wsi)) {
        return 0;
    }
    if (args->max_len < (int)sizeof header) {
        return 1;
    }
    memcpy(args->p, header, sizeof header - 1);
    args->p += sizeof header - 1;
    args->max_len -= (int)sizeof header - 1;
    return 0;
}

int cc_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    cc_port_t *port = lws_context_user(lws_get_context(wsi));
    (void)user; /* no per-session memory: the connection is lws's opaque user data */
    cc_conn_t *conn = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[64], origin[256];
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 ||
            strcmp(uri, "/v1/ws") != 0) {
            return 1;
        }
        /* Cross-site WebSocket hijacking: a foreign page must not ride a
         * browser's cookie token. */
        if (cc_access_origin(port, wsi, origin, sizeof origin) == CC_ORIGIN_REFUSED) {
            cc_refusal_count(&port->metrics, CC_REFUSAL_ORIGIN_NOT_ALLOWED);
            lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, "origin_not_allowed");
            return -1;
        }
        return 0;
    }
    case LWS_CALLBACK_ADD_HEADERS:
        return add_extension_header(port, wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
        conn = cc_conn_new(&port->conns, wsi, CC_CONN_WS, &cc_ws_ops, CC_CONN_STREAMING);
        conn->deflate = agrees_deflate(port, wsi);
        port->metrics.compressed_ws += conn->deflate;
        lws_set_opaque_user_data(wsi, conn);
        cc_info("push_conn=%llu event=ws_open", (unsigned long long)conn->id);
        if (!lws_is_ssl(wsi)) {
            cc_ws_reader_start(port, conn, cc_ws_handle_message);
        }
        cc_ws_open(port, conn);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (conn) {
            receive(port, conn, in, len);
        }
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (conn) {
            conn->last_rx_us = bson_get_monotonic_time();
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return conn ? cc_conn_on_writable(conn) : 0;
    case LWS_CALLBACK_CLOSED:
        if (conn) {
            cc_ws_reader_stop(conn);
        }
        cc_port_release_socket(port, wsi);
        return 0;
    default:
        return 0;
    }
}
