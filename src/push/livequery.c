/* SPDX-License-Identifier: Apache-2.0 */
/* Live queries: a subscription whose filter is on documents, which starts
 * from a snapshot (the rows that match now, read at cluster time T) and
 * goes on with exactly the changes after T (docs/live-queries.md). This
 * file decides what a change means for such a view and renders snapshots
 * and document states; fanout.c positions the subscription after T. */
#include "push_internal.h"

#include <string.h>

static void add_field(cc_sub_t *sub, const char *path)
{
    size_t len = strcspn(path, ".");
    for (size_t i = 0; i < sub->filter_field_count; i++) {
        if (strlen(sub->filter_fields[i]) == len &&
            strncmp(sub->filter_fields[i], path, len) == 0) {
            return;
        }
    }
    sub->filter_fields = bson_realloc(sub->filter_fields,
                                      (sub->filter_field_count + 1) * sizeof *sub->filter_fields);
    sub->filter_fields[sub->filter_field_count++] = bson_strndup(path, len);
}

/* The top-level fields a query reads: its keys, and those of the clauses
 * of $and, $or and $nor. */
static void collect_fields(cc_sub_t *sub, const bson_t *query)
{
    bson_iter_t iter;
    if (!bson_iter_init(&iter, query)) {
        return;
    }
    while (bson_iter_next(&iter)) {
        const char *key = bson_iter_key(&iter);
        if (key[0] != '$') {
            add_field(sub, key);
            continue;
        }
        bson_iter_t clauses;
        if (!BSON_ITER_HOLDS_ARRAY(&iter) || !bson_iter_recurse(&iter, &clauses)) {
            continue;
        }
        while (bson_iter_next(&clauses)) {
            uint32_t len;
            const uint8_t *data;
            bson_t clause;
            if (!BSON_ITER_HOLDS_DOCUMENT(&clauses)) {
                continue;
            }
            bson_iter_document(&clauses, &len, &data);
            if (bson_init_static(&clause, data, len)) {
                collect_fields(sub, &clause);
            }
        }
    }
}

bool cc_livequery_prepare(struct cc_push *push, cc_sub_t *sub, const char **code,
                          bson_error_t *error)
{
    *code = "bad_request";
    if (!sub->want_snapshot && sub->format == CC_FORMAT_CHANGES) {
        if (sub->sort || sub->limit) {
            bson_set_error(error, 0, 0, "sort and limit apply to a snapshot only (snapshot=1)");
            return false;
        }
        return true;
    }
    if (sub->namespace_count != 1 || !sub->namespaces[0].coll) {
        bson_set_error(error, 0, 0,
                       "a live query (snapshot or format=docs) reads one collection: give exactly "
                       "one ns of the form db.collection");
        return false;
    }
    if (sub->ops_given) {
        bson_set_error(error, 0, 0,
                       "ops does not apply to a live query: it gets whatever changes its view");
        return false;
    }
    if ((sub->sort || sub->limit) && !sub->want_snapshot) {
        bson_set_error(error, 0, 0, "sort and limit apply to a snapshot only (snapshot=1)");
        return false;
    }
    if (sub->limit < 0 || sub->limit > push->options.snapshot_max_docs) {
        bson_set_error(error, 0, 0, "limit must be 1 to %lld (push.snapshot_max_docs)",
                       (long long)push->options.snapshot_max_docs);
        return false;
    }
    if (strcmp(push->options.full_document, "default") == 0) {
        *code = "full_document_required";
        bson_set_error(error, 0, 0,
                       "live queries need post-images, and this changecast captures without "
                       "them: set changes.full_document = updateLookup (or whenAvailable, "
                       "required)");
        return false;
    }
    sub->live_query = true;
    if (sub->query) {
        collect_fields(sub, sub->query);
    }
    if (sub->format == CC_FORMAT_DOCS) {
        sub->pending = cc_pending_new();
    }
    return true;
}

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

static bool reads_field(const cc_sub_t *sub, const char *path)
{
    size_t len = strcspn(path, ".");
    for (size_t i = 0; i < sub->filter_field_count; i++) {
        if (strlen(sub->filter_fields[i]) == len &&
            strncmp(sub->filter_fields[i], path, len) == 0) {
            return true;
        }
    }
    return false;
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
            if (reads_field(sub, bson_iter_key(&item))) {
                return true;
            }
        }
    }
    if (bson_iter_init(&iter, &event->document) &&
        bson_iter_find_descendant(&iter, "updateDescription.removedFields", &list) &&
        bson_iter_recurse(&list, &item)) {
        while (bson_iter_next(&item)) {
            if (BSON_ITER_HOLDS_UTF8(&item) && reads_field(sub, bson_iter_utf8(&item, NULL))) {
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
                BSON_ITER_HOLDS_UTF8(&field) && reads_field(sub, bson_iter_utf8(&field, NULL))) {
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
    return sub->row_filtered ? CC_VERDICT_SKIP : CC_VERDICT_DELETE;
}

bool cc_livequery_can_snapshot(const struct cc_push *push)
{
    uint32_t seconds, increment;
    return cc_fanout_read_through(push, &seconds, &increment);
}

/* The snapshot is read where capture has read up to, position P, so that
 * "after P" in the stream is exactly "after the snapshot": at P's own
 * cluster time when P is an event (the whole of its time has been read:
 * a transaction is dispatched whole), and just before it when P is a
 * high-water mark (the events of its time come after it). */
void cc_livequery_request_snapshot(struct cc_push *push, cc_sub_t *sub, uint64_t request_id)
{
    cc_snapshot_query_t *query = bson_malloc0(sizeof *query);
    char position[CC_HIGH_WATER_MARK_LEN + 1];
    bson_free(sub->snapshot_position);
    sub->snapshot_position = bson_strdup(cc_fanout_public_position(push, position, sizeof position)
                                             ? position
                                             : push->capture_position);
    cc_fanout_read_through(push, &query->at_seconds, &query->at_increment);
    query->db = bson_strdup(sub->namespaces[0].db);
    query->coll = bson_strdup(sub->namespaces[0].coll);
    const bson_t *filter = sub->view_query ? sub->view_query : sub->query;
    query->filter = filter ? bson_copy(filter) : NULL;
    query->sort = sub->sort ? bson_copy(sub->sort) : NULL;
    query->limit = sub->limit;
    bson_t projection;
    if (sub->scope) {
        if (cc_scope_find_projection(sub->scope, &projection)) {
            query->projection = bson_copy(&projection); /* fields the token shows */
        }
        bson_destroy(&projection);
    }
    query->max_docs = push->options.snapshot_max_docs;
    query->max_bytes = push->options.snapshot_max_bytes;
    cc_channel_request_snapshot(push->channel, request_id, query);
}

bool cc_livequery_send_snapshot(cc_sub_t *sub, const cc_snapshot_t *snapshot)
{
    if (snapshot->error_code) {
        return false;
    }
    cc_conn_t *conn = sub->conn;
    bson_t begin = BSON_INITIALIZER;
    char ns[512];
    snprintf(ns, sizeof ns, "%s.%s", sub->namespaces[0].db, sub->namespaces[0].coll);
    BSON_APPEND_UTF8(&begin, "ns", ns);
    BSON_APPEND_TIMESTAMP(&begin, "atClusterTime", snapshot->seconds, snapshot->increment);
    BSON_APPEND_INT64(&begin, "count", (int64_t)snapshot->count);
    cc_fanout_send_notice(sub, "snapshot-begin", NULL, &begin);
    bson_destroy(&begin);
    for (size_t i = 0; i < snapshot->count; i++) {
        if (conn->kind == CC_CONN_SSE) {
            cc_conn_append_sse(conn, NULL, "doc", (const char *const *)&snapshot->docs[i],
                               &snapshot->lens[i], 1);
            continue;
        }
        static const char open[] = "{\"type\":\"doc\",\"id\":\"",
                          body[] = "\",\"doc\":", close[] = "}";
        const char *parts[] = {open, sub->id, body, snapshot->docs[i], close};
        const size_t lens[] = {sizeof open - 1, strlen(sub->id), sizeof body - 1, snapshot->lens[i],
                               sizeof close - 1};
        cc_conn_append_ws_text(conn, parts, lens, 5);
    }
    const char *position = sub->snapshot_position;
    bson_t end = BSON_INITIALIZER;
    BSON_APPEND_TIMESTAMP(&end, "atClusterTime", snapshot->seconds, snapshot->increment);
    BSON_APPEND_UTF8(&end, "token", position);
    cc_fanout_send_notice(sub, "snapshot-end", position, &end);
    bson_destroy(&end);
    bson_free(sub->position);
    sub->position = bson_strdup(position);
    return true;
}

/* One document state; the last of a write carries the position, since
 * only then has every earlier change been sent. */
static void emit_state(cc_event_t *event, bool upsert, const char *doc_json, bool last, void *arg)
{
    cc_sub_t *sub = arg;
    cc_conn_t *conn = sub->conn;
    size_t id_len, doc_len = 0;
    const char *id = cc_event_json_id(event, &id_len);
    const char *doc = NULL;
    if (upsert && doc_json) {
        doc = doc_json;
        doc_len = strlen(doc_json);
    } else if (upsert) {
        doc = cc_event_json_post_image(event, &doc_len);
    }
    const char *token = last ? sub->position : NULL;
    if (conn->kind == CC_CONN_SSE) {
        const char *parts[] = {"{\"_id\":", id, ",\"doc\":", doc, "}"};
        const size_t lens[] = {7, id_len, 7, doc_len, 1};
        if (upsert) {
            cc_conn_append_sse(conn, token, "upsert", parts, lens, 5);
        } else {
            const char *gone[] = {parts[0], id, "}"};
            const size_t gone_lens[] = {7, id_len, 1};
            cc_conn_append_sse(conn, token, "delete", gone, gone_lens, 3);
        }
        return;
    }
    const char *parts[9];
    size_t lens[9], n = 0;
#define PART(text, len) (parts[n] = (text), lens[n++] = (len))
    PART(upsert ? "{\"type\":\"upsert\",\"id\":\"" : "{\"type\":\"delete\",\"id\":\"", 23);
    PART(sub->id, strlen(sub->id));
    PART("\",\"_id\":", 8);
    PART(id, id_len);
    if (upsert) {
        PART(",\"doc\":", 7);
        PART(doc, doc_len);
    }
    if (token) {
        PART(",\"token\":\"", 10);
        PART(token, strlen(token));
        PART("\"}", 2);
    } else {
        PART("}", 1);
    }
#undef PART
    cc_conn_append_ws_text(conn, parts, lens, n);
}

void cc_livequery_render_pending(cc_sub_t *sub)
{
    if (sub->pending && cc_pending_count(sub->pending)) {
        cc_pending_drain(sub->pending, emit_state, sub);
    }
}
