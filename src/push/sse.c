/* SPDX-License-Identifier: Apache-2.0 */
/* GET /v1/events: one subscription per request, chosen by query parameters,
 * answered with a text/event-stream that stays open (WHATWG HTML, "Server-
 * sent events"). EventSource reconnects by itself and sends the last id it
 * saw as Last-Event-ID, which resumes exactly after that event. */
#include "changecast/log.h"
#include "push_internal.h"

#include <string.h>

/* Query arguments arrive url-decoded, one "name=value" per fragment. */
typedef struct sse_request {
    char token[1100];
    bool has_token;
} sse_request_t;

static int reject(struct cc_push *push, struct lws *wsi, cc_conn_t **slot, cc_sub_t *sub,
                  unsigned status, const char *code, const char *message)
{
    cc_sub_free(sub);
    return cc_http_error(push, wsi, slot, status, code, message);
}

static bool read_token(const char *text, sse_request_t *request)
{
    request->has_token = true;
    return cc_token_normalize(text, request->token, sizeof request->token);
}

int cc_sse_open(struct cc_push *push, struct lws *wsi, cc_conn_t **slot)
{
    cc_sub_t *sub = cc_sub_new(NULL, NULL);
    sse_request_t request = {0};
    bson_error_t error;
    const char *code;
    char arg[8192];
    for (int i = 0; lws_hdr_copy_fragment(wsi, arg, sizeof arg, WSI_TOKEN_HTTP_URI_ARGS, i) > 0;
         i++) {
        char *value = strchr(arg, '=');
        if (!value) {
            continue;
        }
        *value++ = '\0';
        if (strcmp(arg, "ns") == 0) {
            if (!cc_sub_add_namespace(push, sub, value, &code, &error)) {
                return reject(push, wsi, slot, sub, strcmp(code, "not_exposed") ? 400 : 404, code,
                              error.message);
            }
        } else if (strcmp(arg, "filter") == 0) {
            if (sub->filter) {
                return reject(push, wsi, slot, sub, 400, "bad_filter", "filter given twice");
            }
            if (!cc_sub_set_filter_json(sub, value, strlen(value), &error)) {
                return reject(push, wsi, slot, sub, 400, "bad_filter", error.message);
            }
        } else if (strcmp(arg, "ops") == 0) {
            if (!cc_sub_set_ops(sub, value, &error)) {
                return reject(push, wsi, slot, sub, 400, "bad_request", error.message);
            }
        } else if (strcmp(arg, "fullDocument") == 0) {
            if (!cc_sub_set_full_document(push, sub, value, &error)) {
                return reject(push, wsi, slot, sub, 400, "bad_request", error.message);
            }
        } else if (strcmp(arg, "lastEventId") == 0 && !read_token(value, &request)) {
            return reject(push, wsi, slot, sub, 400, "bad_request",
                          "lastEventId is not a token (hex digits)");
        }
    }
    if (sub->namespace_count == 0) {
        return reject(push, wsi, slot, sub, 400, "bad_request",
                      "ns is required: ?ns=db.collection (repeatable; db.* for a database)");
    }
    if (push->capture_state == CC_CAPTURE_UNAVAILABLE) {
        return reject(push, wsi, slot, sub, 503, "capture_unavailable", push->capture_reason);
    }
    /* The header EventSource sends on reconnect wins over the parameter. */
    char header[1100];
    if (lws_hdr_custom_copy(wsi, header, sizeof header, "last-event-id:", 14) > 0 &&
        !read_token(header, &request)) {
        return reject(push, wsi, slot, sub, 400, "bad_request",
                      "Last-Event-ID is not a token (hex digits)");
    }

    uint8_t buffer[LWS_PRE + 1024];
    uint8_t *start = buffer + LWS_PRE, *p = start, *end = buffer + sizeof buffer - 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream",
                                    LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-cache", 8, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:",
                                    (const unsigned char *)"no", 2, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        cc_sub_free(sub);
        return -1;
    }
    /* The stream lives as long as the client does. */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    cc_conn_t *conn = cc_conn_new(push, wsi, CC_CONN_SSE);
    *slot = conn;
    cc_hangup_watch(push, conn);
    sub->conn = conn;
    TAILQ_INSERT_TAIL(&conn->subs, sub, conn_link);
    conn->sub_count = 1;
    char hello[64];
    int len = snprintf(hello, sizeof hello, "retry: %lld\n: changecast\n\n",
                       (long long)push->options.retry_ms);
    cc_conn_append(conn, hello, (size_t)len);
    lws_callback_on_writable(wsi);
    cc_info("push_conn=%llu event=sse_open resume=%s", (unsigned long long)conn->id,
            request.has_token ? "true" : "false");
    cc_fanout_start(push, sub, request.has_token ? request.token : NULL);
    return 0;
}
