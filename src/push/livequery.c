/* SPDX-License-Identifier: Apache-2.0 */
/* Live queries: a subscription whose filter is on documents, which starts
 * from a snapshot (the rows that match now, read at cluster time T) and
 * goes on with exactly the changes after T (docs/live-queries.md). This
 * file decides what a change means for such a view and renders snapshots
 * and document states; fanout.c positions the subscription after T. */
#include "deliver.h"
#include "encode.h"
#include "render.h"

#include <string.h>

static bool image(const cc_event_t *event, const char *key, bson_t *out)
{
    bson_iter_t iter;
    uint32_t len;
    const uint8_t *data;
    if (!bson_iter_init_find(&iter, &event->document, key) || !BSON_ITER_HOLDS_DOCUMENT(&iter)) {
        return false;
    }
    bson_iter_document(&iter, &len, &data);
    return bson_init_static(out, data, len);
}

/* Whether an update changed a field the filter reads: if not, the
 * document's match did not change either. */
static bool update_touches_filter(const cc_sub_t *sub, const cc_event_t *event)
{
    bson_iter_t iter, list, item;
    if (bson_iter_init(&iter, &event->document) &&
        bson_iter_find_descendant(&iter, "updateDescription.updatedFields", &list) &&
        bson_iter_recurse(&list, &item)) {
        while (bson_iter_next(&item)) {
            if (cc_sub_reads_field(sub, bson_iter_key(&item))) {
                return true;
            }
        }
    }
    if (bson_iter_init(&iter, &event->document) &&
        bson_iter_find_descendant(&iter, "updateDescription.removedFields", &list) &&
        bson_iter_recurse(&list, &item)) {
        while (bson_iter_next(&item)) {
            if (BSON_ITER_HOLDS_UTF8(&item) &&
                cc_sub_reads_field(sub, bson_iter_utf8(&item, NULL))) {
                return true;
            }
        }
    }
    if (bson_iter_init(&iter, &event->document) &&
        bson_iter_find_descendant(&iter, "updateDescription.truncatedArrays", &list) &&
        bson_iter_recurse(&list, &item)) {
        while (bson_iter_next(&item)) {
            bson_iter_t field;
            if (bson_iter_recurse(&item, &field) && bson_iter_find(&field, "field") &&
                BSON_ITER_HOLDS_UTF8(&field) &&
                cc_sub_reads_field(sub, bson_iter_utf8(&field, NULL))) {
                return true;
            }
        }
    }
    return false;
}

static bool matches(const cc_sub_t *sub, const bson_t *doc)
{
    return !sub->filter || cc_filter_matches(sub->filter, doc);
}

cc_verdict_t cc_livequery_judge(const cc_sub_t *sub, const cc_event_t *event)
{
    const char *op = event->operation;
    bool insert = strcmp(op, "insert") == 0, update = strcmp(op, "update") == 0;
    bool replace = strcmp(op, "replace") == 0, delete = strcmp(op, "delete") == 0;
    if (!insert && !update && !replace && !delete) {
        return CC_VERDICT_SKIP; /* drop, rename, ...: fanout resets the view */
    }
    bson_t post, pre;
    bool has_post = !delete &&image(event, "fullDocument", &post);
    if (has_post && matches(sub, &post)) {
        return CC_VERDICT_UPSERT;
    }
    /* It does not match now (or is gone): did the client have it? */
    if (image(event, "fullDocumentBeforeChange", &pre)) {
        return matches(sub, &pre) ? CC_VERDICT_DELETE : CC_VERDICT_SKIP;
    }
    if (insert) {
        return CC_VERDICT_SKIP;
    }
    if (update && has_post && !update_touches_filter(sub, event)) {
        return CC_VERDICT_SKIP;
    }
    /* Without a pre-image it may have matched: say it is gone (a delete of
     * a row the client never had changes nothing there) - unless the token
     * has a row filter: then nothing may tell the holder that a document
     * it might never have been allowed to see changed (docs/security.md). */
    return sub->live->row_filtered ? CC_VERDICT_SKIP : CC_VERDICT_DELETE;
}

/* The snapshot is read where capture has read up to, position P, so that
 * "after P" in the stream is exactly "after the snapshot": at P's own
 * cluster time when P is an event (the whole of its time has been read:
 * a transaction is dispatched whole), and just before it when P is a
 * high-water mark (the events of its time come after it). */
void cc_livequery_request_snapshot(cc_channel_t *channel, const cc_push_options_t *options,
                                   const cc_capture_position_t *position, cc_sub_t *sub,
                                   uint64_t request_id)
{
    cc_snapshot_query_t *query = bson_malloc0(sizeof *query);
    char shown[CC_HIGH_WATER_MARK_LEN + 1];
    cc_live_t *live = sub->live;
    bson_free(live->snapshot_position);
    live->snapshot_position =
        bson_strdup(cc_position_public(position, shown, sizeof shown) ? shown : position->token);
    cc_position_read_through(position, &query->at_seconds, &query->at_increment);
    query->db = bson_strdup(sub->namespaces[0].db);
    query->coll = bson_strdup(sub->namespaces[0].coll);
    const bson_t *filter = live->view_query ? live->view_query : sub->query;
    query->filter = filter ? bson_copy(filter) : NULL;
    query->sort = live->sort ? bson_copy(live->sort) : NULL;
    query->limit = live->limit;
    bson_t projection;
    if (sub->scope) {
        if (cc_scope_find_projection(sub->scope, &projection)) {
            query->projection = bson_copy(&projection); /* fields the token shows */
        }
        bson_destroy(&projection);
    }
    query->max_docs = options->snapshot_max_docs;
    query->max_bytes = options->snapshot_max_bytes;
    cc_channel_request_snapshot(channel, request_id, query);
}

bool cc_livequery_send_snapshot(cc_sub_t *sub, const cc_snapshot_t *snapshot)
{
    if (snapshot->error_code) {
        return false;
    }
    bson_t begin = BSON_INITIALIZER;
    char ns[512];
    snprintf(ns, sizeof ns, "%s.%s", sub->namespaces[0].db, sub->namespaces[0].coll);
    BSON_APPEND_UTF8(&begin, "ns", ns);
    BSON_APPEND_TIMESTAMP(&begin, "atClusterTime", snapshot->seconds, snapshot->increment);
    BSON_APPEND_INT64(&begin, "count", (int64_t)snapshot->count);
    cc_emit_notice(sub, "snapshot-begin", NULL, &begin);
    bson_destroy(&begin);
    bool ws = sub->conn->kind == CC_CONN_WS;
    for (size_t i = 0; i < snapshot->count; i++) {
        cc_span_t doc = {snapshot->docs[i], snapshot->lens[i]};
        cc_span_t body[] = {CC_SPAN_LIT("\"type\":\"doc\",\"doc\":"), doc, CC_SPAN_LIT("}")};
        cc_buf_t *buf = ws ? cc_encode_concat(body, 3) : cc_encode_sse(NULL, "doc", &doc, 1);
        cc_emit_body(sub, buf);
        cc_buf_unref(buf);
    }
    const char *position = sub->live->snapshot_position;
    bson_t end = BSON_INITIALIZER;
    BSON_APPEND_TIMESTAMP(&end, "atClusterTime", snapshot->seconds, snapshot->increment);
    BSON_APPEND_UTF8(&end, "token", position);
    cc_emit_notice(sub, "snapshot-end", position, &end);
    bson_destroy(&end);
    cc_mark_set_token(&sub->position, position);
    return true;
}

/* One document state; the last of a write carries the position, since
 * only then has every earlier change been sent. */
static void emit_state(cc_event_t *event, bool upsert, const char *doc_json, bool last, void *arg)
{
    cc_sub_t *sub = arg;
    bool ws = sub->conn->kind == CC_CONN_WS;
    const char *token = last ? cc_mark_token(&sub->position) : NULL;
    if (!token && !doc_json) {
        /* The same bytes for every subscription that gets this state. */
        cc_view_t *view = cc_render_view(event, NULL);
        cc_emit_body(sub, cc_render_form(event, view, ws ? CC_WIRE_WS : CC_WIRE_SSE,
                                         upsert ? CC_FORM_UPSERT : CC_FORM_DELETE));
        return;
    }
    cc_buf_t *buf = cc_render_state(event, ws ? CC_WIRE_WS : CC_WIRE_SSE, upsert, doc_json, token);
    cc_emit_body(sub, buf);
    cc_buf_unref(buf);
}

void cc_livequery_render_pending(cc_sub_t *sub)
{
    if (cc_sub_states_waiting(sub)) {
        cc_pending_drain(sub->live->pending, emit_state, sub);
    }
}
