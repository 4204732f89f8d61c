/* SPDX-License-Identifier: Apache-2.0 */
/* One subscription's messages into its connection's queue (emit.h). */
#include "emit.h"
#include "conn.h"
#include "encode.h"
#include "pending.h"

void cc_emit_body(cc_sub_t *sub, cc_buf_t *body)
{
    cc_conn_t *conn = sub->conn;
    if (conn->kind == CC_CONN_WS) {
        cc_conn_push(conn, cc_buf_ref(sub->head), cc_buf_ref(body), CC_ITEM_WS_TEXT);
    } else {
        cc_conn_push(conn, NULL, cc_buf_ref(body), 0);
    }
    cc_conn_wake(conn);
}

cc_buf_t *cc_emit_render_notice(cc_conn_kind_t kind, const char *type, const char *sse_id,
                                const bson_t *fields)
{
    return kind == CC_CONN_WS ? cc_encode_ws_notice_body(type, fields)
                              : cc_encode_sse_notice(type, sse_id, fields);
}

void cc_emit_notice(cc_sub_t *sub, const char *type, const char *sse_id, const bson_t *fields)
{
    cc_buf_t *body = cc_emit_render_notice(sub->conn->kind, type, sse_id, fields);
    cc_emit_body(sub, body);
    cc_buf_unref(body);
}

void cc_emit_reset(cc_sub_t *sub, const char *reason, const char *message)
{
    if (sub->live && sub->live->pending) {
        cc_pending_free(sub->live->pending); /* what it said is void now */
        sub->live->pending = cc_pending_new();
    }
    bson_t body = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&body, "reason", reason);
    BSON_APPEND_UTF8(&body, "message", message ? message : "");
    cc_emit_notice(sub, "reset", NULL, &body);
    bson_destroy(&body);
}
