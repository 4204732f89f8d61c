/* SPDX-License-Identifier: Apache-2.0 */
/* What one event means for one subscription, and its bytes in the
 * subscriber's queue: the namespace, the token's grant (row decision and
 * field projection, before anything is serialized for the holder), the
 * subscriber's filter on what it may see, live-query verdicts and document
 * states, SSE or WebSocket framing, transaction grouping and the slow-
 * consumer rule. fanout.c decides which events are offered, in which order. */
#include "changecast/log.h"
#include "push_internal.h"

#include <stdlib.h>
#include <string.h>

static bool namespace_matches(const cc_sub_t *sub, const cc_event_t *event)
{
    for (size_t i = 0; i < sub->namespace_count; i++) {
        if (cc_ns_pattern_matches(&sub->namespaces[i], event->db, event->coll)) {
            return true;
        }
    }
    return false;
}

/* After a subscription's connection got more bytes. */
void cc_deliver_queued(cc_sub_t *sub, bool one_piece)
{
    cc_conn_t *conn = sub->conn;
    /* Replays and catch-ups pace themselves (a queue's worth per write);
     * only live delivery can outrun a client. A transaction cannot be cut,
     * so its size alone never makes a reading client slow. */
    if (one_piece) {
        conn->unsplittable = conn->out.len;
    }
    if (sub->state == CC_SUB_LIVE && cc_conn_over_limit(conn)) {
        if (!cc_conn_stalled(conn)) {
            /* Over the bound within one burst but still reading: send now. */
            lws_callback_on_writable(conn->wsi);
            return;
        }
        /* Never let one slow reader hold memory or delay the others: what it
         * has not read is discarded and it is told to start over. */
        conn->push->metrics.drops_slow_consumer++;
        conn->out.len = 0;
        cc_fanout_send_reset(sub, "slow_consumer",
                             "the client fell more than push.max_queue_bytes behind");
        cc_conn_drop(conn, 1013, "slow_consumer");
        return;
    }
    cc_conn_mark_dirty(conn);
}

/* One change as it goes out: SSE event text, or a WebSocket item (inside a
 * transaction message, without the subscription id). */
static void append_change(cc_sub_t *sub, const char *token, const char *json, size_t json_len,
                          bool leave, bson_string_t *txn_item)
{
    cc_conn_t *conn = sub->conn;
    const char *type = leave ? "leave" : "change";
    if (conn->kind == CC_CONN_SSE && !txn_item) {
        cc_conn_append_sse(conn, token, type, &json, &json_len, 1);
    } else if (conn->kind == CC_CONN_SSE) {
        bson_string_append_printf(txn_item, "id: %s\nevent: %s\ndata: ", token, type);
        bson_string_append(txn_item, json);
        bson_string_append(txn_item, "\n\n");
    } else if (txn_item) {
        bson_string_append_printf(txn_item, "%s{\"type\":\"%s\",\"token\":\"%s\",\"event\":",
                                  txn_item->len ? "," : "", type, token);
        bson_string_append(txn_item, json);
        bson_string_append(txn_item, "}");
    } else {
        static const char open[] = "{\"type\":\"", id[] = "\",\"id\":\"",
                          token_key[] = "\",\"token\":\"", body[] = "\",\"event\":", close[] = "}";
        const char *parts[] = {open, type, id, sub->id, token_key, token, body, json, close};
        const size_t lens[] = {
            sizeof open - 1, strlen(type),    sizeof id - 1, strlen(sub->id), sizeof token_key - 1,
            strlen(token),   sizeof body - 1, json_len,      sizeof close - 1};
        cc_conn_append_ws_text(conn, parts, lens, 9);
    }
}

/* Queues one change event (json: the event as this subscriber may see it). */
static void deliver_change(cc_sub_t *sub, const char *token, const char *json, size_t json_len,
                           bool leave)
{
    cc_conn_t *conn = sub->conn;
    conn->push->metrics.events_delivered++;
    cc_txn_batch_t *current_txn = conn->push->current_txn;
    if (current_txn) {
        if (!sub->txn_items) {
            sub->txn_items = bson_string_new(NULL);
            if (current_txn->count == current_txn->capacity) {
                current_txn->capacity = current_txn->capacity ? current_txn->capacity * 2 : 16;
                current_txn->subs = bson_realloc(current_txn->subs,
                                                 current_txn->capacity * sizeof *current_txn->subs);
            }
            current_txn->subs[current_txn->count++] = sub;
        }
        append_change(sub, token, json, json_len, leave, sub->txn_items);
        sub->txn_item_count++;
        return;
    }
    append_change(sub, token, json, json_len, leave, NULL);
    cc_deliver_queued(sub, false);
}

/* Queues a document state for a format=docs subscription; doc_json (owned,
 * may be NULL: the event's post-image) is what it may see of the document. */
static void deliver_state(cc_sub_t *sub, cc_event_t *event, bool upsert, char *doc_json)
{
    cc_conn_t *conn = sub->conn;
    conn->push->metrics.events_delivered++;
    cc_pending_put(sub->pending, event, upsert, doc_json);
    /* The bound holds per connection: many subscriptions on one socket
     * share it. */
    size_t waiting = 0;
    cc_sub_t *each;
    TAILQ_FOREACH(each, &conn->subs, conn_link)
    {
        waiting += each->pending ? cc_pending_count(each->pending) : 0;
    }
    if (waiting > (size_t)conn->push->options.max_pending_docs) {
        conn->push->metrics.resets_too_many_pending++;
        cc_pending_free(sub->pending);
        sub->pending = cc_pending_new();
        conn->out.len = 0;
        cc_fanout_send_reset(sub, "too_many_pending",
                             "more than push.max_pending_docs documents waited for this client: "
                             "subscribe again with a snapshot");
        cc_conn_drop(conn, 1013, "too_many_pending");
        return;
    }
    cc_conn_mark_dirty(conn);
}

/* The event as a restricted subscriber may see it, as JSON; NULL when it
 * may not (HIDDEN). *left: it left the holder's rows. */
static char *scoped_json(const cc_sub_t *sub, const cc_scope_t *scope, const cc_event_t *event,
                         bson_t *view, size_t *len, cc_scope_event_t *verdict)
{
    *verdict = cc_scope_apply_event(scope, &event->document, view);
    if (*verdict == CC_SCOPE_EVENT_HIDDEN) {
        return NULL;
    }
    if (sub->full_document_default && !sub->live_query && strcmp(event->operation, "update") == 0) {
        bson_t without = BSON_INITIALIZER;
        bson_copy_to_excluding_noinit(view, &without, "fullDocument", NULL);
        char *json = bson_as_relaxed_extended_json(&without, len);
        bson_destroy(&without);
        return json;
    }
    return bson_as_relaxed_extended_json(view, len);
}

/* A live query: what the change means for the view, in its format. */
static void deliver_live_query(cc_sub_t *sub, cc_event_t *event, const cc_scope_t *scope)
{
    cc_verdict_t verdict = cc_livequery_judge(sub, event);
    if (verdict == CC_VERDICT_SKIP) {
        return;
    }
    bool upsert = verdict == CC_VERDICT_UPSERT;
    if (sub->format == CC_FORMAT_DOCS) {
        char *doc = NULL;
        bson_t post, projected;
        bson_iter_t iter;
        uint32_t len;
        const uint8_t *data;
        if (upsert && scope && cc_scope_has_fields(scope)) {
            /* Only the fields the token shows, or nothing at all. */
            if (!bson_iter_init_find(&iter, &event->document, "fullDocument") ||
                !BSON_ITER_HOLDS_DOCUMENT(&iter)) {
                return;
            }
            bson_iter_document(&iter, &len, &data);
            bson_init_static(&post, data, len);
            cc_scope_project(scope, &post, &projected);
            doc = bson_as_relaxed_extended_json(&projected, NULL);
            bson_destroy(&projected);
            if (!doc) {
                return;
            }
        }
        deliver_state(sub, event, upsert, doc);
        return;
    }
    /* Out of the view without being deleted: say so, the client cannot
     * tell from the event alone. */
    bool leave = !upsert && strcmp(event->operation, "delete") != 0;
    if (!scope) {
        deliver_change(sub, event->token, event->json, event->json_len, leave);
        return;
    }
    bson_t view;
    size_t json_len;
    cc_scope_event_t seen;
    char *json = scoped_json(sub, scope, event, &view, &json_len, &seen);
    if (json) {
        deliver_change(sub, event->token, json, json_len, leave);
        bson_free(json);
    }
    bson_destroy(&view);
}

/* What restricts this subscriber's view of the event: NULL when it may see
 * all of it. False when it may see nothing of it. */
static bool event_scope(const cc_sub_t *sub, const cc_event_t *event, const cc_scope_t **out)
{
    const cc_grant_t *grant = sub->conn->grant;
    *out = NULL;
    if (!grant) {
        return false;
    }
    const cc_scope_t *scope =
        sub->scope ? sub->scope : cc_grant_scope(grant, event->db, event->coll);
    if (!scope) {
        return false;
    }
    if (cc_scope_row_filter(scope) || cc_scope_has_fields(scope)) {
        *out = scope;
    }
    return true;
}

void cc_deliver_offer(cc_sub_t *sub, cc_event_t *event)
{
    if (sub->position && cc_token_compare(event->token, sub->position) <= 0) {
        return;
    }
    bson_free(sub->position);
    sub->position = bson_strdup(event->token);
    const cc_scope_t *scope;
    if (sub->conn->closing || !namespace_matches(sub, event) || !event_scope(sub, event, &scope)) {
        return;
    }
    uint32_t op = cc_op_bit(event->operation);
    if (sub->live_query) {
        if (op & (CC_OP_DROP | CC_OP_RENAME | CC_OP_DROP_DATABASE | CC_OP_INVALIDATE)) {
            cc_fanout_send_reset(sub, "namespace_dropped",
                                 "the collection was dropped or renamed: its rows are gone");
            return;
        }
        deliver_live_query(sub, event, scope);
        return;
    }
    if (!(sub->ops & op)) {
        return;
    }
    if (!scope) {
        if (!sub->filter || cc_filter_matches(sub->filter, &event->document)) {
            size_t len = event->json_len;
            const char *json =
                sub->full_document_default ? cc_event_json_default(event, &len) : event->json;
            deliver_change(sub, event->token, json, len, false);
        }
        return;
    }
    /* The subscriber's filter runs on what it may see, so it cannot probe
     * hidden fields or rows. */
    bson_t view;
    size_t len;
    cc_scope_event_t seen;
    char *json = scoped_json(sub, scope, event, &view, &len, &seen);
    if (json && (!sub->filter || cc_filter_matches(sub->filter, &view))) {
        deliver_change(sub, event->token, json, len, false);
    }
    bson_free(json);
    bson_destroy(&view);
}

void cc_fanout_send_notice(cc_sub_t *sub, const char *type, const char *sse_id, const bson_t *body)
{
    cc_conn_t *conn = sub->conn;
    if (sub->pending && strcmp(type, "reset") == 0) {
        cc_pending_free(sub->pending); /* what it said is void now */
        sub->pending = cc_pending_new();
    }
    if (conn->kind == CC_CONN_WS) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "type", type);
        BSON_APPEND_UTF8(&doc, "id", sub->id);
        bson_concat(&doc, body);
        cc_ws_send_json(conn, &doc);
        bson_destroy(&doc);
        return;
    }
    size_t len;
    char *json = cc_json_or_placeholder(body, &len);
    cc_conn_append_sse(conn, sse_id, type, (const char *const *)&json, &len, 1);
    bson_free(json);
    cc_conn_mark_dirty(conn);
}

void cc_fanout_send_reset(cc_sub_t *sub, const char *reason, const char *message)
{
    bson_t body = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&body, "reason", reason);
    BSON_APPEND_UTF8(&body, "message", message ? message : "");
    cc_fanout_send_notice(sub, "reset", NULL, &body);
    bson_destroy(&body);
}
