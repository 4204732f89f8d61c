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

static void deliver(cc_sub_t *sub, cc_event_t *event)
{
    cc_conn_t *conn = sub->conn;
    if (conn->closing) {
        return;
    }
    size_t json_len = event->json_len;
    const char *json =
        sub->full_document_default ? cc_event_json_default(event, &json_len) : event->json;
    if (conn->kind == CC_CONN_SSE) {
        static const char middle[] = "\nevent: change\ndata: ";
        cc_conn_append(conn, "id: ", 4);
        cc_conn_append(conn, event->token, strlen(event->token));
        cc_conn_append(conn, middle, sizeof middle - 1);
        cc_conn_append(conn, json, json_len);
        cc_conn_append(conn, "\n\n", 2);
    } else {
        static const char open[] = "{\"type\":\"change\",\"id\":\"", token[] = "\",\"token\":\"",
                          body[] = "\",\"event\":", close[] = "}";
        const char *parts[] = {open, sub->id, token, event->token, body, json, close};
        const size_t lens[] = {sizeof open - 1,      strlen(sub->id), sizeof token - 1,
                               strlen(event->token), sizeof body - 1, json_len,
                               sizeof close - 1};
        cc_conn_append_ws_text(conn, parts, lens, 7);
    }
    conn->push->metrics.events_delivered++;
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

/* Examines one event for one subscription, in stream order. */
static void offer(cc_sub_t *sub, cc_event_t *event)
{
    if (sub->position && cc_token_compare(event->token, sub->position) <= 0) {
        return;
    }
    bson_free(sub->position);
    sub->position = bson_strdup(event->token);
    if ((sub->ops & cc_op_bit(event->operation)) && namespace_matches(sub, event) &&
        (!sub->filter || cc_filter_matches(sub->filter, &event->document))) {
        deliver(sub, event);
    }
}

/* A message that is not a change: on a WebSocket {type, id, ...body}; on
 * SSE "event: type" with the body as data, and an id line when sse_id is
 * given. */
static void send_notice(cc_sub_t *sub, const char *type, const char *sse_id, const bson_t *body)
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
    if (sse_id) {
        cc_conn_append(conn, "id: ", 4);
        cc_conn_append(conn, sse_id, strlen(sse_id));
        cc_conn_append(conn, "\n", 1);
    }
    cc_conn_append(conn, "event: ", 7);
    cc_conn_append(conn, type, strlen(type));
    cc_conn_append(conn, "\ndata: ", 7);
    cc_conn_append(conn, json, len);
    cc_conn_append(conn, "\n\n", 2);
    bson_free(json);
    cc_conn_mark_dirty(conn);
}

void cc_fanout_send_reset(cc_sub_t *sub, const char *reason, const char *message)
{
    bson_t body = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&body, "reason", reason);
    BSON_APPEND_UTF8(&body, "message", message ? message : "");
    send_notice(sub, "reset", NULL, &body);
    bson_destroy(&body);
}

static void start_catchup(struct cc_push *push, cc_sub_t *sub);

static const char *const state_names[] = {"live", "replaying", "catching_up", "catchup_paused"};

/* The one place a subscription changes state: leaving CATCHING_UP cancels
 * its stream, and the catch-up list lets a catch-up message find its
 * subscription without scanning every connection. */
static void set_state(struct cc_push *push, cc_sub_t *sub, cc_sub_state_t state)
{
    if (sub->state == state) {
        return;
    }
    if (sub->state == CC_SUB_CATCHING_UP) {
        cc_channel_cancel_catchup(push->channel, sub->catchup_id);
        TAILQ_REMOVE(&push->catchups, sub, catchup_link);
        sub->catchup_id = 0;
    } else if (state == CC_SUB_CATCHING_UP) {
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

static void on_catchup_message(struct cc_push *push, cc_msg_t *msg)
{
    cc_sub_t *sub = find_catchup(push, msg->catchup_id);
    if (!sub) {
        return; /* the subscriber left meanwhile */
    }
    if (msg->kind == CC_MSG_CATCHUP_EVENT) {
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

static void set_capture_position(struct cc_push *push, const char *token)
{
    bson_free(push->capture_position);
    push->capture_position = token ? bson_strdup(token) : NULL;
}

/* MongoDB resume tokens are KeyStrings that start with the event's cluster
 * time: type byte 0x82, then seconds and increment as big-endian 32-bit
 * integers. */
static bool token_cluster_time(const char *token, uint32_t *seconds, uint32_t *increment)
{
    if (strlen(token) < 18 || strncmp(token, "82", 2) != 0) {
        return false;
    }
    char part[9] = {0};
    memcpy(part, token + 2, 8);
    *seconds = (uint32_t)strtoul(part, NULL, 16);
    memcpy(part, token + 10, 8);
    *increment = (uint32_t)strtoul(part, NULL, 16);
    return true;
}

void cc_fanout_send_watermarks(struct cc_push *push)
{
    const char *position = push->capture_position;
    uint32_t seconds, increment;
    if (!position || !token_cluster_time(position, &seconds, &increment)) {
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
            send_notice(sub, "watermark", position, &body);
            bson_destroy(&body);
        }
    }
}

void cc_fanout_drain_channel(struct cc_push *push)
{
    cc_msg_t *msg = cc_channel_take(push->channel), *next;
    for (; msg; msg = next) {
        next = msg->next;
        switch (msg->kind) {
        case CC_MSG_EVENT: {
            push->metrics.events_captured++;
            push->metrics.last_cluster_time = msg->event->cluster_seconds;
            cc_ring_append(push->ring, msg->event);
            set_capture_position(push, msg->event->token);
            live_dispatch_t dispatch = {push, msg->event, ++push->dispatch_sequence};
            cc_index_visit(push->index, msg->event, offer_live, &dispatch);
            break;
        }
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
