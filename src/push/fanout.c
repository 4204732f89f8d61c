/* SPDX-License-Identifier: Apache-2.0 */
/* Order of delivery. Every subscription keeps a position: the token of the
 * last event it examined. An event is offered to a subscription only if its
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
        cc_deliver_offer(sub, cc_ring_at(push->ring, index++));
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
    cc_deliver_offer(sub, dispatch->event);
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
            bool was_waiting = sub->state == CC_SUB_SNAPSHOT && conn->status_pending == 1;
            set_state(push, sub, CC_SUB_LIVE);
            bson_free(sub->position);
            sub->position = NULL;
            if (was_waiting) {
                /* Its snapshot read was cancelled: answer, it may ask again. */
                cc_sse_refuse(conn, 503, "capture_unavailable", message ? message : reason);
                continue;
            }
            cc_fanout_send_reset(sub, reason, message);
        }
    }
}

/* The snapshot is the view at T; the changes go on from T, from the ring
 * when it reaches back that far, else from a stream started at T. */
static void on_snapshot(struct cc_push *push, cc_sub_t *sub, const cc_snapshot_t *snapshot)
{
    if (sub->conn->status_pending == 0 && cc_conn_over_limit(sub->conn) &&
        cc_conn_stalled(sub->conn)) {
        /* Not reading: a snapshot on top would only grow its queue. */
        push->metrics.drops_slow_consumer++;
        sub->conn->out.len = 0;
        set_state(push, sub, CC_SUB_LIVE);
        cc_conn_drop(sub->conn, 1013, "slow_consumer");
        return;
    }
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
        cc_deliver_offer(sub, msg->event);
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

bool cc_fanout_public_position(const struct cc_push *push, char *out, size_t size)
{
    uint32_t seconds, increment;
    if (!cc_fanout_read_through(push, &seconds, &increment)) {
        return false;
    }
    cc_token_kind_t kind = cc_token_kind(push->capture_position);
    if (kind == CC_TOKEN_HIGH_WATER_MARK) {
        bson_strncpy(out, push->capture_position, size);
        return strlen(push->capture_position) < size;
    }
    if (kind != CC_TOKEN_EVENT || size <= CC_HIGH_WATER_MARK_LEN) {
        return false; /* a layout we cannot rebuild: no token rather than a revealing one */
    }
    /* An event's own token carries its collection and document key: what
     * is shown instead is the high-water mark just after its time. */
    if (increment == UINT32_MAX) {
        cc_token_high_water_mark(seconds + 1, 0, out);
    } else {
        cc_token_high_water_mark(seconds, increment + 1, out);
    }
    return true;
}

void cc_fanout_send_watermarks(struct cc_push *push)
{
    char position[CC_HIGH_WATER_MARK_LEN + 1];
    uint32_t seconds, increment;
    if (!cc_fanout_read_through(push, &seconds, &increment) ||
        !cc_fanout_public_position(push, position, sizeof position)) {
        return;
    }
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &push->conns, link)
    {
        cc_sub_t *sub;
        TAILQ_FOREACH(sub, &conn->subs, conn_link)
        {
            /* A watermark must not overtake the conflated states it speaks
             * for: they go first, or, while the client is not reading (and
             * they are still being conflated), the watermark waits. */
            bool states_waiting = sub->pending && cc_pending_count(sub->pending);
            if (states_waiting && !conn->closing && !cc_conn_stalled(conn)) {
                cc_livequery_render_pending(sub);
                states_waiting = false;
            }
            if (conn->closing || sub->state != CC_SUB_LIVE || states_waiting ||
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

void cc_fanout_dispatch_live(struct cc_push *push, cc_event_t *event)
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

void cc_fanout_drain_channel(struct cc_push *push)
{
    cc_msg_t *msg = cc_channel_take(push->channel), *next;
    for (; msg; msg = next) {
        next = msg->next;
        if (msg->kind != CC_MSG_EVENT && msg->catchup_id == 0) {
            cc_txn_release(push); /* the stream moved past it, or stopped */
        }
        switch (msg->kind) {
        case CC_MSG_EVENT:
            cc_txn_on_live_event(push, msg->event);
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
            /* Clients (and /healthz, which needs no token) get changecast's
             * own words; the driver's error, with host names in it, is in
             * the log (capture_interrupted). */
            bson_strncpy(push->capture_reason,
                         msg->kind == CC_MSG_UNAVAILABLE && msg->reason
                             ? msg->reason
                             : "the capture stream was interrupted and is being resumed; nothing "
                               "is lost (details in changecast's log)",
                         sizeof push->capture_reason);
            break;
        default:
            on_catchup_message(push, msg);
            break;
        }
        cc_msg_free(msg);
    }
}
