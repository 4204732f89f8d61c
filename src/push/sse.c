/* SPDX-License-Identifier: Apache-2.0 */
/* GET /v1/events: one subscription per request, chosen by query parameters,
 * answered with a text/event-stream that stays open (WHATWG HTML, "Server-
 * sent events"). EventSource reconnects by itself and sends the last id it
 * saw as Last-Event-ID, which resumes exactly after that event. */
#include "changecast/log.h"
#include "push_internal.h"

#include <stdlib.h>
#include <string.h>

static int reject(struct cc_push *push, struct lws *wsi, cc_conn_t **slot, cc_sub_t *sub,
                  unsigned status, const char *code, const char *message)
{
    cc_sub_free(sub);
    return cc_http_error(push, wsi, slot, status, code, message);
}

static int refuse(struct cc_push *push, struct lws *wsi, cc_conn_t **slot, cc_sub_t *sub,
                  cc_grant_t *grant, cc_refusal_t refusal, const char *message)
{
    cc_grant_destroy(grant);
    return reject(push, wsi, slot, sub, (unsigned)cc_refusal_status(refusal),
                  cc_refusal_name(refusal), message);
}

static int write_stream_headers(struct cc_push *push, struct lws *wsi)
{
    uint8_t buffer[LWS_PRE + 1024];
    uint8_t *start = buffer + LWS_PRE, *p = start, *end = buffer + sizeof buffer - 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream",
                                    LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
        cc_http_add_cors(push, wsi, &p, end) ||
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

void cc_sse_refuse(cc_conn_t *conn, unsigned status, const char *code, const char *message)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "error", code);
    BSON_APPEND_UTF8(&doc, "message", message);
    bson_free(conn->http_body);
    conn->http_body = cc_json_or_placeholder(&doc, &conn->http_body_len);
    bson_destroy(&doc);
    conn->status_pending = status;
    conn->push->metrics.requests_rejected++;
    lws_callback_on_writable(conn->wsi);
}

int cc_sse_write_status(cc_conn_t *conn)
{
    if (conn->status_pending == 1) {
        return 0; /* the snapshot is still being read */
    }
    if (conn->status_pending == HTTP_STATUS_OK) {
        conn->status_pending = 0;
        return write_stream_headers(conn->push, conn->wsi) ? -1 : cc_conn_flush(conn);
    }
    uint8_t buffer[LWS_PRE + 1024];
    uint8_t *start = buffer + LWS_PRE, *p = start, *end = buffer + sizeof buffer - 1;
    if (lws_add_http_common_headers(conn->wsi, conn->status_pending, "application/json",
                                    conn->http_body_len, &p, end) ||
        cc_http_add_cors(conn->push, conn->wsi, &p, end) ||
        lws_finalize_write_http_header(conn->wsi, start, &p, end)) {
        return -1;
    }
    conn->status_pending = 0;
    conn->out.len = 0;
    cc_conn_append(conn, conn->http_body, conn->http_body_len);
    lws_write(conn->wsi, conn->out.data + LWS_PRE, conn->out.len, LWS_WRITE_HTTP_FINAL);
    return -1; /* the request is answered; the connection closes */
}

int cc_sse_open(struct cc_push *push, struct lws *wsi, cc_conn_t **slot)
{
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
        if (!cc_sse_read_arg(push, sub, &request, arg, value, &why)) {
            return reject(push, wsi, slot, sub, why.status, why.code, why.error.message);
        }
    }
    if (!cc_sse_check_request(push, sub, &why)) {
        return reject(push, wsi, slot, sub, why.status, why.code, why.error.message);
    }
    char origin[256];
    if (cc_access_origin(push, wsi, origin, sizeof origin) == CC_ORIGIN_REFUSED) {
        cc_access_refused(push, CC_REFUSAL_ORIGIN_NOT_ALLOWED);
        return refuse(push, wsi, slot, sub, NULL, CC_REFUSAL_ORIGIN_NOT_ALLOWED,
                      "this origin may not use the push port (push.allowed_origins)");
    }
    char *token = bson_malloc(CC_MAX_TOKEN_BYTES + 1);
    cc_access_token(push, wsi, token, CC_MAX_TOKEN_BYTES + 1);
    cc_grant_t *grant = cc_access_verify(push, token, &error);
    bson_free(token);
    if (!grant) {
        return refuse(push, wsi, slot, sub, NULL, cc_refusal_from_auth(&error), error.message);
    }
    if (!cc_access_check_sub(push, grant, sub, &refusal, &error)) {
        return refuse(push, wsi, slot, sub, grant, refusal, error.message);
    }

    if (push->capture_state == CC_CAPTURE_UNAVAILABLE) {
        cc_grant_destroy(grant);
        return reject(push, wsi, slot, sub, 503, "capture_unavailable", push->capture_reason);
    }
    /* The header EventSource sends on reconnect wins over the parameter. */
    char header[CC_MAX_RESUME_TOKEN + 8];
    if (lws_hdr_custom_length(wsi, "last-event-id:", 14) > 0 &&
        (lws_hdr_custom_copy(wsi, header, sizeof header, "last-event-id:", 14) <= 0 ||
         !cc_sse_read_token(header, &request))) {
        cc_grant_destroy(grant);
        return reject(push, wsi, slot, sub, 400, "bad_request",
                      "Last-Event-ID is not a token (hex digits)");
    }

    /* A snapshot can still be refused (too large): the status line waits
     * for it. */
    bool wait_for_snapshot = sub->want_snapshot && !request.has_token;
    if (wait_for_snapshot && !cc_livequery_can_snapshot(push)) {
        cc_grant_destroy(grant);
        return reject(push, wsi, slot, sub, 503, "capture_unavailable",
                      "the capture stream has not read anything yet: try again in a moment");
    }
    char ip[64] = "";
    lws_get_peer_simple(wsi, ip, sizeof ip);
    if (!cc_access_admit(push, ip, &refusal)) {
        return refuse(push, wsi, slot, sub, grant, refusal,
                      "too many push connections (push.max_connections, "
                      "push.max_connections_per_ip)");
    }
    if (!wait_for_snapshot && write_stream_headers(push, wsi) != 0) {
        cc_access_release_ip(push, ip);
        cc_grant_destroy(grant);
        cc_sub_free(sub);
        return -1;
    }
    /* The stream lives as long as the client does. */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    cc_conn_t *conn = cc_conn_new(push, wsi, CC_CONN_SSE);
    bson_strncpy(conn->peer_ip, ip, sizeof conn->peer_ip);
    conn->admitted = true;
    conn->grant = grant;
    conn->status_pending = wait_for_snapshot ? 1 : 0;
    *slot = conn;
    cc_hangup_watch(push, conn);
    sub->conn = conn;
    TAILQ_INSERT_TAIL(&conn->subs, sub, conn_link);
    conn->sub_count = 1;
    char hello[64];
    int len = snprintf(hello, sizeof hello, "retry: %lld\n: changecast\n\n",
                       (long long)push->options.retry_ms);
    cc_conn_append(conn, hello, (size_t)len);
    if (!wait_for_snapshot) {
        lws_callback_on_writable(wsi);
    }
    cc_info("push_conn=%llu event=sse_open resume=%s snapshot=%s", (unsigned long long)conn->id,
            request.has_token ? "true" : "false", wait_for_snapshot ? "true" : "false");
    cc_fanout_start(push, sub, request.has_token ? request.token : NULL);
    return 0;
}
