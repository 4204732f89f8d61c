/* SPDX-License-Identifier: Apache-2.0 */
/* What one event means for one subscription (deliver.h). Nothing is
 * serialized here: the bytes come from render.h, once per event and wire
 * form (and per distinct scope), and the queue takes references. */
#include "changecast/json.h"
#include "deliver.h"
#include "emit.h"
#include "render.h"

#include "changecast/log.h"

#include <string.h>

/* Queues one change (body: the event as this subscriber may see it). */
static void deliver_change(cc_rules_t *rules, cc_sub_t *sub, cc_buf_t *body)
{
    if (!body) {
        return;
    }
    rules->metrics->events_delivered++;
    if (rules->gather) {
        rules->gather(sub, body, rules->gather_arg);
        return;
    }
    cc_emit_body(sub, body);
}

static cc_wire_t wire_of(const cc_sub_t *sub)
{
    return sub->conn->kind == CC_CONN_WS ? CC_WIRE_WS : CC_WIRE_SSE;
}

/* Queues a document state for a format=docs subscription; doc_json (owned,
 * may be NULL: the event's post-image) is what it may see of the document. */
static void deliver_state(cc_rules_t *rules, cc_sub_t *sub, cc_event_t *event, bool upsert,
                          char *doc_json)
{
    cc_conn_t *conn = sub->conn;
    rules->metrics->events_delivered++;
    cc_pending_put(sub->live->pending, event, upsert, doc_json);
    /* The bound holds per connection: many subscriptions on one socket
     * share it. */
    size_t waiting = 0;
    cc_sub_t *each;
    TAILQ_FOREACH(each, &conn->subs, conn_link)
    {
        waiting += cc_sub_states_waiting(each);
    }
    if (waiting > (size_t)rules->max_pending_docs) {
        rules->metrics->resets_too_many_pending++;
        cc_conn_discard(conn);
        cc_emit_reset(sub, "too_many_pending",
                      "more than push.max_pending_docs documents waited for this client: "
                      "subscribe again with a snapshot");
        cc_conn_close(conn, 1013, "too_many_pending");
        return;
    }
    cc_conn_wake(conn);
}

/* A live query: what the change means for the view, in its format. */
static void deliver_live_query(cc_rules_t *rules, cc_sub_t *sub, cc_event_t *event,
                               const cc_scope_t *scope)
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
            doc = cc_json_document(&projected, NULL);
            bson_destroy(&projected);
            if (!doc) {
                return;
            }
        }
        deliver_state(rules, sub, event, upsert, doc);
        return;
    }
    /* Out of the view without being deleted: say so, the client cannot
     * tell from the event alone. */
    bool leave = !upsert && strcmp(event->operation, "delete") != 0;
    cc_view_t *view = cc_render_view(event, scope);
    if (view->verdict == CC_SCOPE_EVENT_HIDDEN) {
        return;
    }
    deliver_change(
        rules, sub,
        cc_render_form(event, view, wire_of(sub), leave ? CC_FORM_LEAVE : CC_FORM_CHANGE));
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

void cc_deliver_offer(cc_rules_t *rules, cc_sub_t *sub, cc_event_t *event)
{
    const char *position = cc_mark_token(&sub->position);
    if (position && cc_token_compare(event->token, position) <= 0) {
        return;
    }
    cc_mark_set_event(&sub->position, event);
    const cc_scope_t *scope;
    if (sub->conn->state == CC_CONN_CLOSING || !cc_sub_namespace_matches(sub, event) ||
        !event_scope(sub, event, &scope)) {
        return;
    }
    uint32_t op = cc_op_bit(event->operation);
    if (sub->live) {
        if (op & (CC_OP_DROP | CC_OP_RENAME | CC_OP_DROP_DATABASE | CC_OP_INVALIDATE)) {
            cc_emit_reset(sub, "namespace_dropped",
                          "the collection was dropped or renamed: its rows are gone");
            return;
        }
        deliver_live_query(rules, sub, event, scope);
        return;
    }
    if (!(sub->ops & op)) {
        return;
    }
    /* With a scope the subscriber's filter runs on what it may see, so it
     * cannot probe hidden fields or rows. */
    cc_view_t *view = cc_render_view(event, scope);
    if (view->verdict == CC_SCOPE_EVENT_HIDDEN || !view->json ||
        (sub->filter && !cc_filter_matches(sub->filter, &view->doc))) {
        return;
    }
    cc_form_t form = sub->full_document_default ? CC_FORM_CHANGE_DEFAULT : CC_FORM_CHANGE;
    deliver_change(rules, sub, cc_render_form(event, view, wire_of(sub), form));
}
