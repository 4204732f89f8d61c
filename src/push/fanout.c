/* SPDX-License-Identifier: Apache-2.0 */
/* Delivery. Every subscription keeps a position: the token of the last
 * event it examined. An event is offered to a subscription only if its
 * token is after that position, which is what makes reconnects exact (no
 * gap, no duplicate) whichever way the events come: live from capture, from
 * the ring, or from a private catch-up stream. A subscription older than the
 * ring catches up from its own stream until its position reaches what the
 * ring holds, then continues from the ring, then live. Replays are pulled by
 * the client: the ring is read a queue's worth (push.max_queue_bytes) per
 * write, and a catch-up stream is paused (closed, reopened from the
 * position) while its client is that far behind, so a reconnect from far
 * back costs bounded memory and is never mistaken for a slow consumer. */
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
static void queued(cc_sub_t *sub)
{
    cc_conn_t *conn = sub->conn;
    /* Replays and catch-ups pace themselves (a queue's worth per write);
     * only live delivery can outrun a client. */
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

/* Subscriptions that got part of the transaction being dispatched. */
typedef struct txn_batch {
    cc_sub_t **subs;
    size_t count;
    size_t capacity;
} txn_batch_t;

/* Queues one change event (json: the event as this subscriber may see it). */
static void deliver_change(cc_sub_t *sub, const char *token, const char *json, size_t json_len,
                           bool leave)
{
    cc_conn_t *conn = sub->conn;
    conn->push->metrics.events_delivered++;
    txn_batch_t *current_txn = conn->push->current_txn;
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
    queued(sub);
}

/* Queues a document state for a format=docs subscription; doc_json (owned,
 * may be NULL: the event's post-image) is what it may see of the document. */
static void deliver_state(cc_sub_t *sub, cc_event_t *event, bool upsert, char *doc_json)
{
    cc_conn_t *conn = sub->conn;
    conn->push->metrics.events_delivered++;
    cc_pending_put(sub->pending, event, upsert, doc_json);
    if (cc_pending_count(sub->pending) > (size_t)conn->push->options.max_pending_docs) {
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
        if (upsert && scope && cc_scope_has_fields(scope) &&
            bson_iter_init_find(&iter, &event->document, "fullDocument") &&
            BSON_ITER_HOLDS_DOCUMENT(&iter)) {
            bson_iter_document(&iter, &len, &data);
            bson_init_static(&post, data, len);
            cc_scope_project(scope, &post, &projected);
            doc = bson_as_relaxed_extended_json(&projected, NULL);
            bson_destroy(&projected);
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

/* Examines one event for one subscription, in stream order. */
static void offer(cc_sub_t *sub, cc_event_t *event)
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
    char *json = bson_as_relaxed_extended_json(body, &len);
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

static void start_catchup(struct cc_push *push, cc_sub_t *sub);

static const char *const state_names[] = {"live", "replaying", "catching_up", "catchup_paused",
                                          "snapshot"};

/* States in which a worker request (push->catchups) serves the subscription. */
static bool waits_on_worker(cc_sub_state_t state)
{
    return state == CC_SUB_CATCHING_UP || state == CC_SUB_SNAPSHOT;
}

/* The one place a subscription changes state: leaving CATCHING_UP cancels
 * its stream, and the catch-up list lets a catch-up message find its
 * subscription without scanning every connection. */
static void set_state(struct cc_push *push, cc_sub_t *sub, cc_sub_state_t state)
{
    if (sub->state == state) {
        return;
    }
    if (waits_on_worker(sub->state)) {
        cc_channel_cancel_request(push->channel, sub->catchup_id);
        TAILQ_REMOVE(&push->catchups, sub, catchup_link);
        sub->catchup_id = 0;
    }
    if (waits_on_worker(state)) {
        TAILQ_INSERT_TAIL(&push->catchups, sub, catchup_link);
    }
    cc_debug("push_conn=%llu event=subscription_state from=%s to=%s",
             (unsigned long long)sub->conn->id, state_names[sub->state], state_names[state]);
    sub->state = state;
}

static bool queue_full(const cc_sub_t *sub)
{
    return sub->conn->out.len >= (size_t)sub->conn->push->options.max_queue_bytes;
}

/* Offers ring events after the position until the queue is full or the
 * ring is read; at its end the subscription is live. */
static void replay(struct cc_push *push, cc_sub_t *sub)
{
    size_t index;
    if (!cc_ring_position_after(push->ring, sub->position, &index)) {
        start_catchup(push, sub); /* the ring moved past us while we read it */
        return;
    }
    size_t count = cc_ring_count(push->ring);
    while (index < count && !sub->conn->closing && !queue_full(sub)) {
        offer(sub, cc_ring_at(push->ring, index++));
    }
    if (index == count) {
        set_state(push, sub, CC_SUB_LIVE);
    }
}

/* From the ring onwards, once the ring holds everything after the
 * subscription's position. */
static bool join_ring(struct cc_push *push, cc_sub_t *sub)
{
    size_t index;
    if (!sub->position || !cc_ring_position_after(push->ring, sub->position, &index)) {
        return false;
    }
    set_state(push, sub, CC_SUB_REPLAYING);
    replay(push, sub);
    return true;
}

void cc_fanout_refill(cc_conn_t *conn)
{
    struct cc_push *push = conn->push;
    cc_sub_t *sub;
    TAILQ_FOREACH(sub, &conn->subs, conn_link)
    {
        if (queue_full(sub)) {
            break;
        }
        if (sub->state == CC_SUB_REPLAYING) {
            replay(push, sub);
        } else if (sub->state == CC_SUB_CATCHUP_PAUSED && !join_ring(push, sub)) {
            start_catchup(push, sub);
        }
    }
}

static void start_catchup(struct cc_push *push, cc_sub_t *sub)
{
    set_state(push, sub, CC_SUB_CATCHING_UP);
    sub->catchup_id = ++push->next_catchup_id; /* a new stream, also when going round again */
    push->metrics.catchups_started++;
    cc_info("push_conn=%llu event=catchup_started", (unsigned long long)sub->conn->id);
    cc_channel_request_catchup(push->channel, sub->catchup_id, sub->position);
}

void cc_fanout_start(struct cc_push *push, cc_sub_t *sub, const char *after)
{
    cc_index_add(push->index, sub);
    if (!after && sub->want_snapshot) {
        /* Its changes start where the snapshot was read (on_snapshot). */
        set_state(push, sub, CC_SUB_SNAPSHOT);
        sub->catchup_id = ++push->next_catchup_id;
        cc_livequery_request_snapshot(push, sub, sub->catchup_id);
        return;
    }
    if (!after) {
        return; /* from now: the next live event is the first */
    }
    sub->position = bson_strdup(after);
    if (!join_ring(push, sub)) {
        start_catchup(push, sub);
    }
}

void cc_fanout_stop(struct cc_push *push, cc_sub_t *sub)
{
    cc_index_remove(push->index, sub);
    set_state(push, sub, CC_SUB_LIVE);
}

typedef struct live_dispatch {
    struct cc_push *push;
    cc_event_t *event;
    uint64_t sequence;
} live_dispatch_t;

static void offer_live(cc_sub_t *sub, void *arg)
{
    live_dispatch_t *dispatch = arg;
    /* A subscription listed under both "db.coll" and "db.*" sees it once. */
    if (sub->seen_sequence == dispatch->sequence || sub->state != CC_SUB_LIVE) {
        return;
    }
    sub->seen_sequence = dispatch->sequence;
    dispatch->push->metrics.subscription_checks++;
    offer(sub, dispatch->event);
}

static cc_sub_t *find_catchup(struct cc_push *push, uint64_t id)
{
    cc_sub_t *sub;
    TAILQ_FOREACH(sub, &push->catchups, catchup_link)
    {
        if (sub->catchup_id == id) {
            return sub;
        }
    }
    return NULL;
}

/* Every subscription starts over from now, told why. */
static void reset_all(struct cc_push *push, const char *reason, const char *message)
{
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &push->conns, link)
    {
        cc_sub_t *sub;
        TAILQ_FOREACH(sub, &conn->subs, conn_link)
        {
            set_state(push, sub, CC_SUB_LIVE);
            bson_free(sub->position);
            sub->position = NULL;
            cc_fanout_send_reset(sub, reason, message);
        }
    }
}

/* The snapshot is the view at T; the changes go on from T, from the ring
 * when it reaches back that far, else from a stream started at T. */
static void on_snapshot(struct cc_push *push, cc_sub_t *sub, const cc_snapshot_t *snapshot)
{
    if (!cc_livequery_send_snapshot(sub, snapshot)) {
        push->metrics.snapshots_refused++;
        set_state(push, sub, CC_SUB_LIVE);
        if (sub->conn->kind == CC_CONN_SSE) {
            cc_sse_refuse(sub->conn,
                          strcmp(snapshot->error_code, "snapshot_too_large") == 0 ? 413 : 503,
                          snapshot->error_code, snapshot->error_message);
        } else {
            cc_ws_refuse_sub(sub, snapshot->error_code, snapshot->error_message);
        }
        return;
    }
    push->metrics.snapshots_served++;
    if (sub->conn->status_pending == 1) {
        sub->conn->status_pending = HTTP_STATUS_OK;
        lws_callback_on_writable(sub->conn->wsi);
    }
    if (!join_ring(push, sub)) {
        start_catchup(push, sub);
    }
}

static void on_catchup_message(struct cc_push *push, cc_msg_t *msg)
{
    cc_sub_t *sub = find_catchup(push, msg->catchup_id);
    if (!sub) {
        return; /* the subscriber left meanwhile */
    }
    if (msg->kind == CC_MSG_SNAPSHOT) {
        on_snapshot(push, sub, msg->snapshot);
    } else if (msg->kind == CC_MSG_CATCHUP_EVENT) {
        offer(sub, msg->event);
        if (!join_ring(push, sub) && queue_full(sub)) {
            /* Let the client catch up with us first; the stream reopens
             * from the position once its queue has room (refill). */
            set_state(push, sub, CC_SUB_CATCHUP_PAUSED);
        }
    } else if (msg->kind == CC_MSG_CATCHUP_CURRENT) {
        if (msg->token && (!sub->position || cc_token_compare(msg->token, sub->position) > 0)) {
            bson_free(sub->position);
            sub->position = bson_strdup(msg->token);
        }
        if (!join_ring(push, sub)) {
            /* The ring moved past us while we caught up: go round again. */
            start_catchup(push, sub);
        }
    } else {
        push->metrics.resets_history_lost++;
        cc_fanout_send_reset(sub, "history_lost", msg->reason);
        set_state(push, sub, CC_SUB_LIVE);
        size_t newest = cc_ring_count(push->ring);
        bson_free(sub->position);
        sub->position = newest ? bson_strdup(cc_ring_at(push->ring, newest - 1)->token) : NULL;
    }
}

/* A high-water mark says only that every event before its time was seen;
 * anything else (an event, a layout we cannot read) is taken to cover its
 * whole time: a snapshot there may then repeat a change, never miss one. */
static void set_capture_position(struct cc_push *push, const char *token)
{
    bson_free(push->capture_position);
    push->capture_position = token ? bson_strdup(token) : NULL;
    push->capture_position_is_event = !token || cc_token_kind(token) != CC_TOKEN_HIGH_WATER_MARK;
}

bool cc_fanout_read_through(const struct cc_push *push, uint32_t *seconds, uint32_t *increment)
{
    if (!push->capture_position ||
        !cc_token_cluster_time(push->capture_position, seconds, increment)) {
        return false;
    }
    if (!push->capture_position_is_event) {
        /* A high-water mark at T says every event before T was seen;
         * events of T itself may still come after it. */
        if (*increment > 0) {
            (*increment)--;
        } else {
            (*seconds)--;
            *increment = UINT32_MAX;
        }
    }
    return true;
}

void cc_fanout_send_watermarks(struct cc_push *push)
{
    const char *position = push->capture_position;
    uint32_t seconds, increment;
    if (!cc_fanout_read_through(push, &seconds, &increment)) {
        return;
    }
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &push->conns, link)
    {
        cc_sub_t *sub;
        TAILQ_FOREACH(sub, &conn->subs, conn_link)
        {
            if (conn->closing || sub->state != CC_SUB_LIVE ||
                (sub->watermark && strcmp(sub->watermark, position) == 0) ||
                (sub->position && cc_token_compare(sub->position, position) > 0)) {
                continue;
            }
            bson_free(sub->watermark);
            sub->watermark = bson_strdup(position);
            /* On SSE the id moves Last-Event-ID past events this stream did
             * not want, so a reconnect resumes from here, not from its last
             * matching event. */
            bson_t body = BSON_INITIALIZER;
            BSON_APPEND_TIMESTAMP(&body, "clusterTime", seconds, increment);
            BSON_APPEND_UTF8(&body, "token", position);
            cc_fanout_send_notice(sub, "watermark", position, &body);
            bson_destroy(&body);
        }
    }
}

const double cc_write_latency_bounds_ms[CC_WRITE_LATENCY_BUCKETS] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};

static void count_write_latency(int64_t latency_us, void *arg)
{
    cc_metrics_t *m = arg;
    double ms = (double)latency_us / 1000.0;
    for (size_t i = 0; i < CC_WRITE_LATENCY_BUCKETS; i++) {
        if (ms <= cc_write_latency_bounds_ms[i]) {
            m->write_latency_buckets[i]++;
        }
    }
    m->write_latency_count++;
    m->write_latency_sum_s += ms / 1000.0;
}

static void dispatch_live(struct cc_push *push, cc_event_t *event)
{
    push->metrics.events_captured++;
    push->metrics.last_cluster_time = event->cluster_seconds;
    cc_ring_append(push->ring, event);
    set_capture_position(push, event->token);
    live_dispatch_t dispatch = {push, event, ++push->dispatch_sequence};
    cc_index_visit(push->index, event, offer_live, &dispatch);
    if (push->options.write_clock) {
        cc_write_clock_settle(push->options.write_clock, event->cluster_seconds,
                              event->cluster_increment, bson_get_monotonic_time(),
                              count_write_latency, &push->metrics);
    }
}

/* {txnNumber, lsid} of a transaction's event as JSON, for its marker. */
static char *txn_header(const cc_event_t *event)
{
    bson_t header = BSON_INITIALIZER;
    bson_iter_t iter;
    if (bson_iter_init_find(&iter, &event->document, "txnNumber")) {
        bson_append_iter(&header, "txnNumber", -1, &iter);
    }
    if (bson_iter_init_find(&iter, &event->document, "lsid")) {
        bson_append_iter(&header, "lsid", -1, &iter);
    }
    char *json = bson_as_relaxed_extended_json(&header, NULL);
    bson_destroy(&header);
    return json;
}

/* Each subscription gets its part of the transaction in one piece: one
 * WebSocket message, or on SSE a txn marker and the events, queued
 * together so they leave in the same write. */
static void send_txn_parts(txn_batch_t *batch, const cc_event_t *first)
{
    char *header = txn_header(first);
    for (size_t i = 0; i < batch->count; i++) {
        cc_sub_t *sub = batch->subs[i];
        cc_conn_t *conn = sub->conn;
        if (conn->kind == CC_CONN_SSE) {
            char marker[64];
            int len = snprintf(marker, sizeof marker, ",\"count\":%zu}\n\n", sub->txn_item_count);
            cc_conn_append(conn, "event: txn\ndata: {\"txn\":", 24);
            cc_conn_append(conn, header, strlen(header));
            cc_conn_append(conn, marker, (size_t)len);
            cc_conn_append(conn, sub->txn_items->str, sub->txn_items->len);
        } else {
            static const char open[] = "{\"type\":\"transaction\",\"id\":\"",
                              txn[] = "\",\"txn\":", changes[] = ",\"changes\":[", close[] = "]}";
            const char *parts[] = {open, sub->id, txn, header, changes, sub->txn_items->str, close};
            const size_t lens[] = {sizeof open - 1, strlen(sub->id),    sizeof txn - 1,
                                   strlen(header),  sizeof changes - 1, sub->txn_items->len,
                                   sizeof close - 1};
            cc_conn_append_ws_text(conn, parts, lens, 7);
        }
        bson_string_free(sub->txn_items, true);
        sub->txn_items = NULL;
        sub->txn_item_count = 0;
        queued(sub);
    }
    bson_free(header);
}

/* Dispatches the transaction held back so far, if any. */
static void release_txn(struct cc_push *push)
{
    if (push->txn_count == 0) {
        return;
    }
    txn_batch_t batch = {0};
    push->current_txn = &batch;
    for (size_t i = 0; i < push->txn_count; i++) {
        dispatch_live(push, push->txn_events[i]);
    }
    push->current_txn = NULL;
    if (push->txn_count > 1) {
        push->metrics.transactions_grouped++;
    }
    send_txn_parts(&batch, push->txn_events[0]);
    bson_free(batch.subs);
    for (size_t i = 0; i < push->txn_count; i++) {
        cc_event_unref(push->txn_events[i]);
    }
    push->txn_count = 0;
}

static bool in_transaction(const cc_event_t *event)
{
    bson_iter_t iter;
    return bson_iter_init_find(&iter, &event->document, "txnNumber") &&
           bson_iter_init_find(&iter, &event->document, "lsid");
}

/* Whether two events belong to one transaction: same lsid, txnNumber and
 * clusterTime (a commit applies all of its operations at one time). */
static bool same_transaction(const cc_event_t *a, const cc_event_t *b)
{
    if (a->cluster_seconds != b->cluster_seconds || a->cluster_increment != b->cluster_increment) {
        return false;
    }
    bson_iter_t x, y;
    const char *keys[] = {"txnNumber", "lsid"};
    for (size_t i = 0; i < 2; i++) {
        if (!bson_iter_init_find(&x, &a->document, keys[i]) ||
            !bson_iter_init_find(&y, &b->document, keys[i]) ||
            bson_iter_value(&x)->value_type != bson_iter_value(&y)->value_type) {
            return false;
        }
        uint32_t len_x, len_y;
        const uint8_t *data_x, *data_y;
        if (BSON_ITER_HOLDS_DOCUMENT(&x)) {
            bson_iter_document(&x, &len_x, &data_x);
            bson_iter_document(&y, &len_y, &data_y);
            if (len_x != len_y || memcmp(data_x, data_y, len_x) != 0) {
                return false;
            }
        } else if (bson_iter_as_int64(&x) != bson_iter_as_int64(&y)) {
            return false;
        }
    }
    return true;
}

/* A transaction's events are held until the stream moves past it (the
 * next event, or an empty batch), so it is never delivered in halves when
 * it spans upstream batches. */
static void on_live_event(struct cc_push *push, cc_event_t *event)
{
    if (push->txn_count && !same_transaction(push->txn_events[0], event)) {
        release_txn(push);
    }
    if (!in_transaction(event)) {
        dispatch_live(push, event);
        return;
    }
    if (push->txn_count == push->txn_capacity) {
        push->txn_capacity = push->txn_capacity ? push->txn_capacity * 2 : 16;
        push->txn_events =
            bson_realloc(push->txn_events, push->txn_capacity * sizeof *push->txn_events);
    }
    push->txn_events[push->txn_count++] = cc_event_ref(event);
}

void cc_fanout_drain_channel(struct cc_push *push)
{
    cc_msg_t *msg = cc_channel_take(push->channel), *next;
    for (; msg; msg = next) {
        next = msg->next;
        if (msg->kind != CC_MSG_EVENT && msg->catchup_id == 0) {
            release_txn(push); /* the stream moved past it, or stopped */
        }
        switch (msg->kind) {
        case CC_MSG_EVENT:
            on_live_event(push, msg->event);
            break;
        case CC_MSG_STARTED:
            push->capture_state = CC_CAPTURE_LIVE;
            if (msg->token) {
                cc_ring_advance_floor(push->ring, msg->token);
            }
            break;
        case CC_MSG_PROGRESS:
            cc_ring_advance_floor(push->ring, msg->token);
            set_capture_position(push, msg->token);
            break;
        case CC_MSG_RESTARTED:
            push->metrics.resets_capture_restarted++;
            cc_ring_reset(push->ring, NULL);
            set_capture_position(push, NULL);
            reset_all(push, "capture_restarted", msg->reason);
            break;
        case CC_MSG_UNAVAILABLE:
        case CC_MSG_INTERRUPTED:
            push->capture_state =
                msg->kind == CC_MSG_UNAVAILABLE ? CC_CAPTURE_UNAVAILABLE : CC_CAPTURE_INTERRUPTED;
            bson_strncpy(push->capture_reason, msg->reason ? msg->reason : "",
                         sizeof push->capture_reason);
            break;
        default:
            on_catchup_message(push, msg);
            break;
        }
        cc_msg_free(msg);
    }
}
