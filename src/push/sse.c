/* SPDX-License-Identifier: Apache-2.0 */
/* GET /v1/events: one subscription per request, chosen by query parameters,
 * answered with a text/event-stream that stays open (WHATWG HTML, "Server-
 * sent events"). EventSource reconnects by itself and sends the last id it
 * saw as Last-Event-ID, which resumes exactly after that event. */
#include "changecast/log.h"
#include "encode.h"
#include "port.h"
#include "request.h"

#include <stdlib.h>
#include <string.h>

static int reject(cc_port_t *port, struct lws *wsi, cc_sub_t *sub, unsigned status,
                  const char *code, const char *message)
{
    cc_sub_free(sub);
    return cc_http_error(port, wsi, status, code, message);
}

static int refuse(cc_port_t *port, struct lws *wsi, cc_sub_t *sub, cc_grant_t *grant,
                  cc_refusal_t refusal, const char *message)
{
    cc_grant_destroy(grant);
    return reject(port, wsi, sub, (unsigned)cc_refusal_status(refusal), cc_refusal_name(refusal),
                  message);
}

/* gzip when the request accepts it and push.compression is on. */
static bool wants_gzip(cc_port_t *port, struct lws *wsi)
{
    char accepted[256];
    return port->conns.deflate &&
           lws_hdr_copy(wsi, accepted, sizeof accepted, WSI_TOKEN_HTTP_ACCEPT_ENCODING) > 0 &&
           cc_gzip_accepted(accepted);
}

static int add_gzip_headers(struct lws *wsi, uint8_t **p, uint8_t *end)
{
    return lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_ENCODING,
                                        (const unsigned char *)"gzip", 4, p, end) ||
           lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_VARY,
                                        (const unsigned char *)"Accept-Encoding", 15, p, end);
}

static int write_stream_headers(cc_port_t *port, struct lws *wsi, bool gzip)
{
    uint8_t buffer[LWS_PRE + 1024];
    uint8_t *start = buffer + LWS_PRE, *p = start, *end = buffer + sizeof buffer - 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream",
                                    LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
        (gzip && add_gzip_headers(wsi, &p, end)) || cc_http_add_cors(port, wsi, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-cache", 8, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:",
                                    (const unsigned char *)"no", 2, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        return -1;
    }
    /* Every header we need has been read: the stream lives on without
     * lws's header table (push.max_http_header_data bytes per stream). */
    lws_http_headers_detach(wsi);
    return 0;
}

/* ops->end_sub: the refusal is the answer while the status line is still
 * pending; on an open stream, an error event and the end of it. */
static void end_sub(cc_sub_t *sub, unsigned status, const char *code, const char *message)
{
    cc_conn_t *conn = sub->conn;
    cc_port_t *port = lws_context_user(lws_get_context(conn->wsi));
    cc_buf_t *body = cc_http_error_body(port, code, message);
    if (conn->state == CC_CONN_AWAITING_SNAPSHOT || conn->state == CC_CONN_HEADERS) {
        cc_buf_unref(conn->answer);
        conn->answer = body;
        conn->answer_status = (uint16_t)status;
        cc_conn_discard(conn);
        cc_conn_set_state(conn, CC_CONN_ANSWERING);
        lws_callback_on_writable(conn->wsi);
        return;
    }
    cc_span_t data = {body->data, body->len};
    cc_conn_push(conn, NULL, cc_encode_sse(NULL, "error", &data, 1), 0);
    cc_buf_unref(body);
    cc_conn_close(conn, 0, code);
}

static const cc_conn_ops_t sse_ops = {"sse", end_sub};

int cc_sse_writable(cc_conn_t *conn)
{
    cc_port_t *port = lws_context_user(lws_get_context(conn->wsi));
    switch ((cc_conn_state_t)conn->state) {
    case CC_CONN_AWAITING_SNAPSHOT:
        return 0; /* the snapshot is still being read */
    case CC_CONN_HEADERS:
        if (write_stream_headers(port, conn->wsi, conn->gzip)) {
            return -1;
        }
        cc_conn_set_state(conn, CC_CONN_STREAMING);
        return cc_conn_on_writable(conn);
    case CC_CONN_ANSWERING: {
        uint8_t buffer[LWS_PRE + 1024];
        uint8_t *start = buffer + LWS_PRE, *p = start, *end = buffer + sizeof buffer - 1;
        if (lws_add_http_common_headers(conn->wsi, conn->answer_status, "application/json",
                                        conn->answer->len, &p, end) ||
            cc_http_add_cors(port, conn->wsi, &p, end) ||
            lws_finalize_write_http_header(conn->wsi, start, &p, end)) {
            return -1;
        }
        cc_conn_write_answer(conn);
        return -1; /* the request is answered; the connection closes */
    }
    default:
        return cc_conn_on_writable(conn);
    }
}

int cc_sse_open(cc_port_t *port, struct lws *wsi)
{
    cc_request_rules_t rules = {&port->options, &port->expose, &port->metrics};
    cc_sub_t *sub = cc_sub_new(NULL, NULL);
    cc_sse_request_t request = {0};
    bson_error_t error;
    cc_refusal_t refusal;
    cc_http_refusal_t why;
    char arg[8192];
    for (int i = 0; lws_hdr_copy_fragment(wsi, arg, sizeof arg, WSI_TOKEN_HTTP_URI_ARGS, i) > 0;
         i++) {
        char *value = strchr(arg, '=');
        if (!value) {
            continue;
        }
        *value++ = '\0';
        if (!cc_sse_read_arg(&rules, sub, &request, arg, value, &why)) {
            return reject(port, wsi, sub, why.status, why.code, why.error.message);
        }
    }
    if (!cc_sse_check_request(&rules, sub, &why)) {
        return reject(port, wsi, sub, why.status, why.code, why.error.message);
    }
    char origin[256];
    if (cc_access_origin(port, wsi, origin, sizeof origin) == CC_ORIGIN_REFUSED) {
        cc_refusal_count(&port->metrics, CC_REFUSAL_ORIGIN_NOT_ALLOWED);
        return refuse(port, wsi, sub, NULL, CC_REFUSAL_ORIGIN_NOT_ALLOWED,
                      "this origin may not use the push port (push.allowed_origins)");
    }
    char *token = bson_malloc(CC_MAX_TOKEN_BYTES + 1);
    cc_access_token(port, wsi, token, CC_MAX_TOKEN_BYTES + 1);
    cc_grant_t *grant = cc_access_verify(port, token, &error);
    bson_free(token);
    if (!grant) {
        return refuse(port, wsi, sub, NULL, cc_refusal_from_auth(&error), error.message);
    }
    if (!cc_verdict_sub(&port->metrics, grant, sub, &refusal, &error)) {
        return refuse(port, wsi, sub, grant, refusal, error.message);
    }

    if (port->fanout.capture_state == CC_CAPTURE_UNAVAILABLE) {
        cc_grant_destroy(grant);
        return reject(port, wsi, sub, 503, "capture_unavailable", port->fanout.capture_reason);
    }
    /* The header EventSource sends on reconnect wins over the parameter. */
    char header[CC_MAX_RESUME_TOKEN + 8];
    if (lws_hdr_custom_length(wsi, "last-event-id:", 14) > 0 &&
        (lws_hdr_custom_copy(wsi, header, sizeof header, "last-event-id:", 14) <= 0 ||
         !cc_sse_read_token(header, &request))) {
        cc_grant_destroy(grant);
        return reject(port, wsi, sub, 400, "bad_request",
                      "Last-Event-ID is not a token (hex digits)");
    }

    /* A snapshot can still be refused (too large): the status line waits
     * for it. */
    bool wait_for_snapshot = sub->want_snapshot && !request.has_token;
    if (wait_for_snapshot && !cc_fanout_can_snapshot(&port->fanout)) {
        cc_grant_destroy(grant);
        return reject(port, wsi, sub, 503, "capture_unavailable",
                      "the capture stream has not read anything yet: try again in a moment");
    }
    char ip[64] = "";
    lws_get_peer_simple(wsi, ip, sizeof ip);
    const char *admitted = cc_access_admit(port, ip, &refusal);
    if (!admitted) {
        return refuse(port, wsi, sub, grant, refusal,
                      "too many push connections (push.max_connections, "
                      "push.max_connections_per_ip)");
    }
    bool gzip = wants_gzip(port, wsi);
    if (!wait_for_snapshot && write_stream_headers(port, wsi, gzip) != 0) {
        cc_access_release_ip(port, ip);
        cc_grant_destroy(grant);
        cc_sub_free(sub);
        return -1;
    }
    /* The stream lives as long as the client does. */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    cc_conn_t *conn =
        cc_conn_new(&port->conns, wsi, CC_CONN_SSE, &sse_ops,
                    wait_for_snapshot ? CC_CONN_AWAITING_SNAPSHOT : CC_CONN_STREAMING);
    lws_set_opaque_user_data(wsi, conn);
    conn->peer_ip = admitted;
    conn->grant = grant;
    conn->gzip = gzip;
    port->metrics.compressed_sse += gzip;
    if (gzip) {
        cc_conn_push(conn, NULL, cc_buf_ref(port->gzip_header), CC_ITEM_RAW);
    }
    cc_hangup_watch(port, conn);
    sub->conn = conn;
    TAILQ_INSERT_TAIL(&conn->subs, sub, conn_link);
    conn->sub_count = 1;
    char hello[64];
    int len = snprintf(hello, sizeof hello, "retry: %lld\n: changecast\n\n",
                       (long long)port->options.retry_ms);
    cc_conn_push(conn, NULL, cc_buf_copy(hello, (size_t)len), 0);
    cc_conn_wake(conn);
    cc_info("push_conn=%llu event=sse_open resume=%s snapshot=%s", (unsigned long long)conn->id,
            request.has_token ? "true" : "false", wait_for_snapshot ? "true" : "false");
    cc_fanout_start(&port->fanout, sub, request.has_token ? request.token : NULL);
    return 0;
}
