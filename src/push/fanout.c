/* SPDX-License-Identifier: Apache-2.0 */
/* Order of delivery. Every subscription keeps a position: the last event it
 * examined. An event is offered to a subscription only if its token is
 * after that position, which is what makes reconnects exact (no gap, no
 * duplicate) whichever way the events come: live from capture, from the
 * ring, or from a private catch-up stream. A subscription older than the
 * ring catches up from its own stream until its position reaches what the
 * ring holds, then continues from the ring, then live. Replays are pulled by
 * the client: the ring is read while the connection's queue has room
 * (push.max_queue_bytes), and a catch-up stream is paused (closed, reopened
 * from the position) while its client is that far behind, so a reconnect
 * from far back costs bounded memory and is never mistaken for a slow
 * consumer.
 *
 * The same pull serves a server that falls behind: a live subscription
 * whose queue is full while its socket still takes everything is paused
 * where it is (REPLAYING) and pulled from the ring like a reconnect, in
 * larger batches; nobody who reads is dropped, memory stays bounded by the
 * ring, and one that falls off the ring while paused gets a reset
 * (server_behind). Work per loop turn is bounded: the channel is drained in
 * slices, and writes happen between them. */
#include "fanout.h"

#include "changecast/log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Messages handled per loop turn, and subscription offers after which a
 * slice ends early: writes get their turn between slices. */
#define SLICE_MESSAGES 64
#define SLICE_OFFERS 20000

static void start_catchup(cc_fanout_t *fanout, cc_sub_t *sub);

static const char *const state_names[] = {"live", "replaying", "catching_up", "catchup_paused",
                                          "snapshot"};

const double cc_write_latency_bounds_ms[CC_WRITE_LATENCY_BUCKETS] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};

static cc_txn_dispatch_fn dispatch_live;

void cc_fanout_init(cc_fanout_t *fanout, const cc_push_options_t *options, cc_conns_t *conns,
                    cc_metrics_t *metrics, cc_channel_t *channel)
{
    memset(fanout, 0, sizeof *fanout);
    fanout->options = options;
    fanout->conns = conns;
    fanout->metrics = metrics;
    fanout->channel = channel;
    fanout->ring = cc_ring_new((size_t)options->ring_events, (size_t)options->ring_bytes);
    fanout->index = cc_index_new();
    fanout->rules.metrics = metrics;
    fanout->rules.max_pending_docs = options->max_pending_docs;
    TAILQ_INIT(&fanout->catchups);
    cc_txn_init(&fanout->txn, &fanout->rules, metrics, dispatch_live, fanout);
}

void cc_fanout_cleanup(cc_fanout_t *fanout)
{
    for (cc_msg_t *msg = fanout->backlog, *next; msg; msg = next) {
        next = msg->next;
        cc_msg_free(msg);
    }
    fanout->backlog = NULL;
    cc_position_clear(&fanout->position);
    cc_txn_cleanup(&fanout->txn);
    cc_index_free(fanout->index);
    cc_ring_free(fanout->ring);
}

/* States in which a worker request (fanout->catchups) serves the subscription. */
static bool waits_on_worker(cc_sub_state_t state)
{
    return state == CC_SUB_CATCHING_UP || state == CC_SUB_SNAPSHOT;
}

/* The one place a subscription changes state: leaving CATCHING_UP cancels
 * its stream, and the catch-up list lets a catch-up message find its
 * subscription without scanning every connection. */
static void set_state(cc_fanout_t *fanout, cc_sub_t *sub, cc_sub_state_t state)
{
    if (sub->state == state) {
        return;
    }
    if (waits_on_worker(sub->state)) {
        cc_channel_cancel_request(fanout->channel, sub->catchup_id);
        TAILQ_REMOVE(&fanout->catchups, sub, catchup_link);
        sub->catchup_id = 0;
    }
    if (waits_on_worker(state)) {
        TAILQ_INSERT_TAIL(&fanout->catchups, sub, catchup_link);
    }
    cc_debug("push_conn=%llu event=subscription_state from=%s to=%s",
             (unsigned long long)sub->conn->id, state_names[sub->state], state_names[state]);
    sub->state = (uint8_t)state;
}

static bool queue_full(const cc_sub_t *sub)
{
    return sub->conn->queued_bytes >= sub->conn->conns->limits.max_queue_bytes ||
           sub->conn->state == CC_CONN_CLOSING;
}

/* After a reset: the stream goes on from the newest event there is. */
static void continue_from_now(cc_fanout_t *fanout, cc_sub_t *sub)
{
    size_t newest = cc_ring_count(fanout->ring);
    if (newest) {
        cc_mark_set_event(&sub->position, cc_ring_at(fanout->ring, newest - 1));
    } else {
        cc_mark_clear(&sub->position);
    }
}

/* Fell off the ring while paused: the server could not keep up with this
 * subscriber for longer than the ring reaches back. */
static void reset_fallen_behind(cc_fanout_t *fanout, cc_sub_t *sub)
{
    fanout->metrics->resets_server_behind++;
    sub->fell_behind = false;
    cc_emit_reset(sub, "server_behind",
                  "changecast fell further behind than its ring reaches "
                  "(changes.ring_events, changes.ring_bytes): re-read the current state");
    continue_from_now(fanout, sub);
    set_state(fanout, sub, CC_SUB_LIVE);
}

/* Offers ring events after the position while the queue has room; at the
 * ring's end the subscription is live. */
static void replay(cc_fanout_t *fanout, cc_sub_t *sub)
{
    size_t index;
    if (!cc_ring_position_after(fanout->ring, cc_mark_token(&sub->position), &index)) {
        if (sub->fell_behind) {
            reset_fallen_behind(fanout, sub);
        } else {
            start_catchup(fanout, sub); /* the ring moved past us while we read it */
        }
        return;
    }
    size_t count = cc_ring_count(fanout->ring);
    while (index < count && !queue_full(sub)) {
        cc_deliver_offer(&fanout->rules, sub, cc_ring_at(fanout->ring, index++));
    }
    if (index == count) {
        sub->fell_behind = false;
        set_state(fanout, sub, CC_SUB_LIVE);
    }
}

/* From the ring onwards, once the ring holds everything after the
 * subscription's position. */
static bool join_ring(cc_fanout_t *fanout, cc_sub_t *sub)
{
    size_t index;
    const char *position = cc_mark_token(&sub->position);
    if (!position || !cc_ring_position_after(fanout->ring, position, &index)) {
        return false;
    }
    set_state(fanout, sub, CC_SUB_REPLAYING);
    replay(fanout, sub);
    return true;
}

void cc_fanout_refill(cc_fanout_t *fanout, cc_conn_t *conn)
{
    cc_sub_t *sub;
    TAILQ_FOREACH(sub, &conn->subs, conn_link)
    {
        /* format=docs states are conflated until the socket takes them. */
        cc_livequery_render_pending(sub);
        if (queue_full(sub)) {
            break;
        }
        if (sub->state == CC_SUB_REPLAYING) {
            replay(fanout, sub);
        } else if (sub->state == CC_SUB_CATCHUP_PAUSED && !join_ring(fanout, sub)) {
            start_catchup(fanout, sub);
        }
    }
}

static void start_catchup(cc_fanout_t *fanout, cc_sub_t *sub)
{
    set_state(fanout, sub, CC_SUB_CATCHING_UP);
    sub->catchup_id = ++fanout->next_catchup_id; /* a new stream, also when going round again */
    fanout->metrics->catchups_started++;
    cc_info("push_conn=%llu event=catchup_started", (unsigned long long)sub->conn->id);
    cc_channel_request_catchup(fanout->channel, sub->catchup_id, cc_mark_token(&sub->position));
}

int64_t cc_fanout_capture_lag_ms(const cc_fanout_t *fanout)
{
    const cc_metrics_t *m = fanout->metrics;
    if (!m->caught_up_at_us && m->last_cluster_time <= 0) {
        return -1;
    }
    /* Two upper bounds, the smaller wins: at the last empty batch capture
     * had read everything there was; and every change up to the last
     * event's clusterTime has been read (wall clocks must agree for that
     * one). The high-water mark's own time cannot serve: on an idle replica
     * set it moves only with the no-op MongoDB writes every 10 s. */
    int64_t lag = INT64_MAX;
    if (m->caught_up_at_us) {
        lag = (bson_get_monotonic_time() - m->caught_up_at_us) / 1000;
    }
    if (m->last_cluster_time > 0) {
        int64_t since_event = (int64_t)time(NULL) * 1000 - (int64_t)m->last_cluster_time * 1000;
        lag = since_event < lag ? since_event : lag;
    }
    return lag > 0 ? lag : 0;
}

bool cc_fanout_can_snapshot(const cc_fanout_t *fanout)
{
    uint32_t seconds, increment;
    return cc_position_read_through(&fanout->position, &seconds, &increment);
}

/* A client that resumes here with a token from an instance further ahead
 * hears nothing until this capture passes its token (nothing is skipped:
 * events up to its token are not sent again). Tell it, with the distance in
 * cluster time, so it can tell waiting from silence. */
static void notice_if_ahead(const cc_fanout_t *fanout, cc_sub_t *sub, const char *after)
{
    const char *captured = fanout->position.token;
    if (captured && cc_token_compare(after, captured) <= 0) {
        return;
    }
    uint32_t ahead_s, ahead_i, at_s = 0, at_i = 0;
    bson_t fields = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&fields, "message",
                     "this changecast's capture has not reached your position yet; events "
                     "follow once it has (none is skipped or repeated)");
    if (captured && cc_token_cluster_time(after, &ahead_s, &ahead_i) &&
        cc_token_cluster_time(captured, &at_s, &at_i)) {
        BSON_APPEND_INT64(&fields, "lag_ms", ahead_s > at_s ? (int64_t)(ahead_s - at_s) * 1000 : 0);
    }
    cc_info("push_conn=%llu event=resume_ahead_of_capture", (unsigned long long)sub->conn->id);
    cc_emit_notice(sub, "capture_behind", NULL, &fields);
    bson_destroy(&fields);
}

void cc_fanout_start(cc_fanout_t *fanout, cc_sub_t *sub, const char *after)
{
    cc_index_add(fanout->index, sub);
    if (!after && sub->want_snapshot) {
        /* Its changes start where the snapshot was read (on_snapshot). */
        set_state(fanout, sub, CC_SUB_SNAPSHOT);
        sub->catchup_id = ++fanout->next_catchup_id;
        cc_livequery_request_snapshot(fanout->channel, fanout->options, &fanout->position, sub,
                                      sub->catchup_id);
        return;
    }
    if (!after) {
        return; /* from now: the next live event is the first */
    }
    cc_mark_set_token(&sub->position, after);
    if (!join_ring(fanout, sub)) {
        start_catchup(fanout, sub);
        return;
    }
    notice_if_ahead(fanout, sub, after);
}

void cc_fanout_stop(cc_fanout_t *fanout, cc_sub_t *sub)
{
    cc_index_remove(fanout->index, sub);
    set_state(fanout, sub, CC_SUB_LIVE);
}

typedef struct live_dispatch {
    cc_fanout_t *fanout;
    cc_event_t *event;
    uint64_t sequence;
} live_dispatch_t;

static void offer_live(cc_sub_t *sub, void *arg)
{
    live_dispatch_t *dispatch = arg;
    cc_fanout_t *fanout = dispatch->fanout;
    /* A subscription listed under both "db.coll" and "db.*" sees it once. */
    if (sub->seen_sequence == dispatch->sequence || sub->state != CC_SUB_LIVE) {
        return;
    }
    sub->seen_sequence = dispatch->sequence;
    fanout->metrics->subscription_checks++;
    /* A transaction is never cut: its parts are gathered whole. Document
     * states wait conflated (bounded per document), not in the queue. */
    if (!fanout->rules.gather && sub->format != CC_FORMAT_DOCS && !cc_conn_has_room(sub->conn)) {
        if (sub->conn->state != CC_CONN_CLOSING) {
            /* Its socket drains; we are behind. It continues from the ring
             * (the event is there already) as the queue empties. */
            fanout->metrics->paused_server_behind++;
            sub->fell_behind = true;
            set_state(fanout, sub, CC_SUB_REPLAYING);
        }
        return;
    }
    cc_deliver_offer(&fanout->rules, sub, dispatch->event);
}

static cc_sub_t *find_catchup(cc_fanout_t *fanout, uint64_t id)
{
    cc_sub_t *sub;
    TAILQ_FOREACH(sub, &fanout->catchups, catchup_link)
    {
        if (sub->catchup_id == id) {
            return sub;
        }
    }
    return NULL;
}

/* Every subscription starts over from now, told why. */
static void reset_all(cc_fanout_t *fanout, const char *reason, const char *message)
{
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &fanout->conns->all, link)
    {
        cc_sub_t *sub, *next;
        for (sub = TAILQ_FIRST(&conn->subs); sub; sub = next) {
            next = TAILQ_NEXT(sub, conn_link);
            bool was_waiting =
                sub->state == CC_SUB_SNAPSHOT && conn->state == CC_CONN_AWAITING_SNAPSHOT;
            set_state(fanout, sub, CC_SUB_LIVE);
            sub->fell_behind = false;
            cc_mark_clear(&sub->position);
            if (was_waiting) {
                /* Its snapshot read was cancelled: answer, it may ask again. */
                conn->ops->end_sub(sub, 503, "capture_unavailable", message ? message : reason);
                continue;
            }
            cc_emit_reset(sub, reason, message);
        }
    }
}

/* The snapshot is the view at T; the changes go on from T, from the ring
 * when it reaches back that far, else from a stream started at T. */
static void on_snapshot(cc_fanout_t *fanout, cc_sub_t *sub, const cc_snapshot_t *snapshot)
{
    cc_conn_t *conn = sub->conn;
    if (conn->state != CC_CONN_AWAITING_SNAPSHOT && !cc_conn_has_room(conn)) {
        /* Not reading (it was closed as a slow consumer), or behind: a
         * snapshot on top would only grow its queue. */
        set_state(fanout, sub, CC_SUB_LIVE);
        if (conn->state != CC_CONN_CLOSING) {
            conn->ops->end_sub(sub, 503, "slow_consumer",
                               "the client is behind: subscribe again when it has read what is "
                               "queued");
        }
        return;
    }
    if (!cc_livequery_send_snapshot(sub, snapshot)) {
        fanout->metrics->snapshots_refused++;
        set_state(fanout, sub, CC_SUB_LIVE);
        conn->ops->end_sub(sub, strcmp(snapshot->error_code, "snapshot_too_large") == 0 ? 413 : 503,
                           snapshot->error_code, snapshot->error_message);
        return;
    }
    fanout->metrics->snapshots_served++;
    if (conn->state == CC_CONN_AWAITING_SNAPSHOT) {
        cc_conn_set_state(conn, CC_CONN_HEADERS);
        lws_callback_on_writable(conn->wsi);
    }
    if (!join_ring(fanout, sub)) {
        start_catchup(fanout, sub);
    }
}

static void on_catchup_message(cc_fanout_t *fanout, cc_msg_t *msg)
{
    cc_sub_t *sub = find_catchup(fanout, msg->catchup_id);
    if (!sub) {
        return; /* the subscriber left meanwhile */
    }
    if (msg->kind == CC_MSG_SNAPSHOT) {
        on_snapshot(fanout, sub, msg->snapshot);
    } else if (msg->kind == CC_MSG_CATCHUP_EVENT) {
        cc_deliver_offer(&fanout->rules, sub, msg->event);
        if (!join_ring(fanout, sub) && queue_full(sub)) {
            /* Let the client catch up with us first; the stream reopens
             * from the position once its queue has room (refill). */
            set_state(fanout, sub, CC_SUB_CATCHUP_PAUSED);
        }
    } else if (msg->kind == CC_MSG_CATCHUP_CURRENT) {
        const char *position = cc_mark_token(&sub->position);
        if (msg->token && (!position || cc_token_compare(msg->token, position) > 0)) {
            cc_mark_set_token(&sub->position, msg->token);
        }
        if (!join_ring(fanout, sub)) {
            /* The ring moved past us while we caught up: go round again. */
            start_catchup(fanout, sub);
        }
    } else {
        fanout->metrics->resets_history_lost++;
        cc_emit_reset(sub, "history_lost", msg->reason);
        set_state(fanout, sub, CC_SUB_LIVE);
        continue_from_now(fanout, sub);
    }
}

void cc_fanout_send_watermarks(cc_fanout_t *fanout)
{
    char position[CC_HIGH_WATER_MARK_LEN + 1];
    uint32_t seconds, increment;
    if (!cc_position_read_through(&fanout->position, &seconds, &increment) ||
        !cc_position_public(&fanout->position, position, sizeof position)) {
        return;
    }
    if (strcmp(position, fanout->watermark) != 0) {
        bson_strncpy(fanout->watermark, position, sizeof fanout->watermark);
        fanout->watermark_number++;
    }
    /* One rendering per wire form, shared by every subscription told. */
    cc_buf_t *rendered[CC_CONN_KINDS] = {NULL};
    bson_t body = BSON_INITIALIZER;
    BSON_APPEND_TIMESTAMP(&body, "clusterTime", seconds, increment);
    BSON_APPEND_UTF8(&body, "token", position);
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &fanout->conns->all, link)
    {
        bool closing = conn->state == CC_CONN_CLOSING;
        cc_sub_t *sub;
        TAILQ_FOREACH(sub, &conn->subs, conn_link)
        {
            /* A watermark must not overtake the conflated states it speaks
             * for: they go first, or, while the client is not reading (and
             * they are still being conflated), the watermark waits. */
            bool states_waiting = cc_sub_states_waiting(sub);
            if (states_waiting && !closing && !cc_conn_stalled(conn)) {
                cc_livequery_render_pending(sub);
                states_waiting = false;
            }
            const char *at = cc_mark_token(&sub->position);
            if (closing || sub->state != CC_SUB_LIVE || states_waiting ||
                sub->watermark_number == fanout->watermark_number ||
                (at && cc_token_compare(at, position) > 0)) {
                continue;
            }
            sub->watermark_number = fanout->watermark_number;
            /* On SSE the id moves Last-Event-ID past events this stream did
             * not want, so a reconnect resumes from here, not from its last
             * matching event. */
            cc_buf_t **form = &rendered[conn->kind];
            if (!*form) {
                *form = cc_emit_render_notice(conn->kind, "watermark", position, &body);
            }
            cc_emit_body(sub, *form);
        }
    }
    bson_destroy(&body);
    for (size_t kind = 0; kind < CC_CONN_KINDS; kind++) {
        cc_buf_unref(rendered[kind]);
    }
}

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

/* cc_txn_t's dispatch: takes a live event into the ring and offers it. */
static void dispatch_live(cc_event_t *event, void *arg)
{
    cc_fanout_t *fanout = arg;
    fanout->metrics->events_captured++;
    fanout->metrics->last_cluster_time = event->cluster_seconds;
    cc_ring_append(fanout->ring, event);
    cc_position_set(&fanout->position, event->token);
    live_dispatch_t dispatch = {fanout, event, ++fanout->dispatch_sequence};
    cc_index_visit(fanout->index, event, offer_live, &dispatch);
    if (fanout->options->write_clock) {
        cc_write_clock_settle(fanout->options->write_clock, event->cluster_seconds,
                              event->cluster_increment, bson_get_monotonic_time(),
                              count_write_latency, fanout->metrics);
    }
}

void cc_fanout_settle_late_writes(cc_fanout_t *fanout)
{
    if (fanout->options->write_clock) {
        cc_write_clock_settle_late(fanout->options->write_clock, bson_get_monotonic_time(),
                                   count_write_latency, fanout->metrics);
    }
}

static void handle(cc_fanout_t *fanout, cc_msg_t *msg)
{
    if (msg->kind != CC_MSG_EVENT && msg->catchup_id == 0) {
        cc_txn_release(&fanout->txn); /* the stream moved past it, or stopped */
    }
    switch (msg->kind) {
    case CC_MSG_EVENT:
        cc_txn_on_live_event(&fanout->txn, msg->event);
        break;
    case CC_MSG_STARTED:
        fanout->capture_state = CC_CAPTURE_LIVE;
        if (msg->token) {
            cc_ring_advance_floor(fanout->ring, msg->token);
        }
        break;
    case CC_MSG_PROGRESS:
        cc_ring_advance_floor(fanout->ring, msg->token);
        cc_position_set(&fanout->position, msg->token);
        fanout->metrics->caught_up_at_us = bson_get_monotonic_time();
        break;
    case CC_MSG_RESTARTED:
        fanout->metrics->resets_capture_restarted++;
        cc_ring_reset(fanout->ring, NULL);
        cc_position_clear(&fanout->position);
        reset_all(fanout, "capture_restarted", msg->reason);
        break;
    case CC_MSG_UNAVAILABLE:
    case CC_MSG_INTERRUPTED:
        fanout->capture_state =
            msg->kind == CC_MSG_UNAVAILABLE ? CC_CAPTURE_UNAVAILABLE : CC_CAPTURE_INTERRUPTED;
        /* Clients (and /healthz, which needs no token) get changecast's
         * own words; the driver's error, with host names in it, is in the
         * log (capture_interrupted). */
        bson_strncpy(fanout->capture_reason,
                     msg->kind == CC_MSG_UNAVAILABLE && msg->reason
                         ? msg->reason
                         : "the capture stream was interrupted and is being resumed; nothing "
                           "is lost (details in changecast's log)",
                     sizeof fanout->capture_reason);
        break;
    default:
        on_catchup_message(fanout, msg);
        break;
    }
}

bool cc_fanout_drain(cc_fanout_t *fanout)
{
    if (!fanout->backlog) {
        fanout->backlog = cc_channel_take(fanout->channel);
    }
    uint64_t offers_before = fanout->metrics->subscription_checks;
    for (int handled = 0; fanout->backlog && handled < SLICE_MESSAGES; handled++) {
        cc_msg_t *msg = fanout->backlog;
        fanout->backlog = msg->next;
        handle(fanout, msg);
        cc_msg_free(msg);
        if (fanout->metrics->subscription_checks - offers_before > SLICE_OFFERS) {
            break;
        }
    }
    return fanout->backlog != NULL;
}
