/* SPDX-License-Identifier: Apache-2.0 */
/* A subscriber connection's outbound bytes. Everything pending for one
 * connection leaves in a single lws_write per writable callback: the cost
 * of a delivery is the syscall and the TCP segment, not our code (see the
 * fan-out measurements in design.md). WebSocket frames are therefore framed
 * here (RFC 6455 section 5.2: server frames are unmasked) and written raw. */
#include "changecast/log.h"
#include "push_internal.h"

#include <string.h>

cc_conn_t *cc_conn_new(struct cc_push *push, struct lws *wsi, cc_conn_kind_t kind)
{
    cc_conn_t *conn = bson_malloc0(sizeof *conn);
    conn->push = push;
    conn->wsi = wsi;
    conn->kind = kind;
    conn->id = ++push->next_conn_id;
    conn->last_rx_us = conn->opened_us = bson_get_monotonic_time();
    TAILQ_INIT(&conn->subs);
    TAILQ_INSERT_TAIL(&push->conns, conn, link);
    if (kind == CC_CONN_SSE) {
        push->sse_count++;
    } else if (kind == CC_CONN_WS) {
        push->ws_count++;
    }
    return conn;
}

void cc_conn_free(cc_conn_t *conn)
{
    struct cc_push *push = conn->push;
    cc_sub_t *sub;
    while ((sub = TAILQ_FIRST(&conn->subs))) {
        TAILQ_REMOVE(&conn->subs, sub, conn_link);
        cc_fanout_stop(push, sub);
        cc_sub_free(sub);
    }
    if (conn->dirty) {
        TAILQ_REMOVE(&push->dirty, conn, dirty_link);
    }
    if (conn->kind == CC_CONN_SSE) {
        cc_hangup_unwatch(push, conn);
    }
    TAILQ_REMOVE(&push->conns, conn, link);
    if (conn->kind == CC_CONN_SSE) {
        push->sse_count--;
    } else if (conn->kind == CC_CONN_WS) {
        push->ws_count--;
    }
    cc_access_release(push, conn);
    cc_grant_destroy(conn->grant);
    bson_free(conn->out.data);
    bson_free(conn->rx);
    bson_free(conn->http_body);
    bson_free(conn);
}

static void reserve(cc_out_t *out, size_t more)
{
    size_t need = LWS_PRE + out->len + more;
    if (need <= out->cap) {
        return;
    }
    size_t cap = out->cap ? out->cap : 4096;
    while (cap < need) {
        cap *= 2;
    }
    out->data = bson_realloc(out->data, cap);
    out->cap = cap;
}

void cc_conn_append(cc_conn_t *conn, const void *bytes, size_t len)
{
    reserve(&conn->out, len);
    memcpy(conn->out.data + LWS_PRE + conn->out.len, bytes, len);
    conn->out.len += len;
}

void cc_conn_append_ws_text(cc_conn_t *conn, const char *const *parts, const size_t *lens,
                            size_t count)
{
    size_t payload = 0;
    for (size_t i = 0; i < count; i++) {
        payload += lens[i];
    }
    uint8_t header[10];
    size_t header_len = 2;
    header[0] = 0x81; /* FIN, text */
    if (payload < 126) {
        header[1] = (uint8_t)payload;
    } else if (payload <= 0xffff) {
        header[1] = 126;
        header[2] = (uint8_t)(payload >> 8);
        header[3] = (uint8_t)payload;
        header_len = 4;
    } else {
        header[1] = 127;
        for (int i = 0; i < 8; i++) {
            header[2 + i] = (uint8_t)((uint64_t)payload >> (56 - 8 * i));
        }
        header_len = 10;
    }
    cc_conn_append(conn, header, header_len);
    for (size_t i = 0; i < count; i++) {
        cc_conn_append(conn, parts[i], lens[i]);
    }
}

char *cc_json_or_placeholder(const bson_t *doc, size_t *len)
{
    char *json = bson_as_relaxed_extended_json(doc, len);
    if (json) {
        return json;
    }
    /* libbson writes no JSON for a string that is not UTF-8, which a
     * client can smuggle into an error message as a JSON escape of a lone
     * surrogate ("\udc00"). */
    static const char placeholder[] =
        "{\"type\":\"error\",\"id\":null,\"code\":\"bad_message\","
        "\"message\":\"the reply would quote text that is not UTF-8\"}";
    if (len) {
        *len = sizeof placeholder - 1;
    }
    return bson_strdup(placeholder);
}

/* One Server-Sent Event (WHATWG HTML, "Server-sent events"): an optional
 * id line, the event type, and data made of the parts (one line: the JSON
 * we write has no newlines). */
void cc_conn_append_sse(cc_conn_t *conn, const char *id, const char *type, const char *const *parts,
                        const size_t *lens, size_t count)
{
    if (id) {
        cc_conn_append(conn, "id: ", 4);
        cc_conn_append(conn, id, strlen(id));
        cc_conn_append(conn, "\n", 1);
    }
    cc_conn_append(conn, "event: ", 7);
    cc_conn_append(conn, type, strlen(type));
    cc_conn_append(conn, "\ndata: ", 7);
    for (size_t i = 0; i < count; i++) {
        cc_conn_append(conn, parts[i], lens[i]);
    }
    cc_conn_append(conn, "\n\n", 2);
}

void cc_conn_mark_dirty(cc_conn_t *conn)
{
    if (conn->push->options.flush_ms == 0) {
        lws_callback_on_writable(conn->wsi);
        return;
    }
    if (!conn->dirty) {
        conn->dirty = true;
        TAILQ_INSERT_TAIL(&conn->push->dirty, conn, dirty_link);
    }
}

bool cc_conn_over_limit(const cc_conn_t *conn)
{
    return conn->out.len > (size_t)conn->push->options.max_queue_bytes;
}

/* Behind, not merely busy: the socket refused part of the last write, or
 * the queue grew to eight times its bound within a single burst. */
bool cc_conn_stalled(cc_conn_t *conn)
{
    /* (A queue emptied by a drop may still remember a transaction.) */
    size_t splittable = conn->out.len > conn->unsplittable ? conn->out.len - conn->unsplittable : 0;
    return lws_partial_buffered(conn->wsi) ||
           splittable > 8 * (size_t)conn->push->options.max_queue_bytes;
}

void cc_conn_drop(cc_conn_t *conn, int ws_code, const char *reason)
{
    if (conn->closing) {
        return;
    }
    cc_info("push_conn=%llu event=dropped reason=%s", (unsigned long long)conn->id, reason);
    conn->closing = true;
    conn->close_code = ws_code;
    bson_strncpy(conn->close_reason, reason, sizeof conn->close_reason);
    lws_callback_on_writable(conn->wsi);
}

int cc_conn_flush(cc_conn_t *conn)
{
    if (!conn->closing) {
        /* format=docs states are conflated until the socket takes them. */
        cc_sub_t *sub;
        TAILQ_FOREACH(sub, &conn->subs, conn_link)
        {
            cc_livequery_render_pending(sub);
        }
    }
    if (conn->out.len) {
        size_t len = conn->out.len;
        conn->out.len = 0;
        conn->unsplittable = 0;
        /* LWS_WRITE_HTTP is also lws's raw write on a WebSocket: our frames
         * are complete, so lws must not frame them again. */
        int written = lws_write(conn->wsi, conn->out.data + LWS_PRE, len, LWS_WRITE_HTTP);
        if (written < (int)len) {
            return -1;
        }
        if (!conn->closing) {
            cc_fanout_refill(conn);
        }
        if (conn->out.len == 0) {
            /* Idle subscribers are most subscribers: an empty queue holds
             * no buffer (one allocation per write costs nothing next to
             * the write itself). */
            bson_free(conn->out.data);
            conn->out.data = NULL;
            conn->out.cap = 0;
        }
    }
    if (conn->closing) {
        if (conn->kind == CC_CONN_WS && conn->close_code) {
            lws_close_reason(conn->wsi, (enum lws_close_status)conn->close_code,
                             (unsigned char *)conn->close_reason, strlen(conn->close_reason));
        }
        return -1;
    }
    return 0;
}
