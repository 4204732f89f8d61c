/* SPDX-License-Identifier: Apache-2.0 */
/* push/fanout (ordering layer): which events each subscription is offered,
 * in which order. fanout.c: live events from the channel in bounded
 * slices, replays from the ring, private catch-up streams, snapshots'
 * positions, watermarks, the server-behind rule. Live events pass through
 * txn.h, which holds transactions until whole. Calls txn.h, the rules
 * layer (deliver.h) and below; reaches transports only through a
 * connection's ops table. */
#ifndef CC_PUSH_FANOUT_H
#define CC_PUSH_FANOUT_H

#include "txn.h"

#include "changecast/ring.h"

typedef enum cc_capture_state {
    CC_CAPTURE_STARTING,
    CC_CAPTURE_LIVE,
    CC_CAPTURE_INTERRUPTED, /* retrying: subscribers wait, nothing is lost */
    CC_CAPTURE_UNAVAILABLE  /* cannot stream at all (standalone upstream) */
} cc_capture_state_t;

typedef struct cc_fanout {
    const cc_push_options_t *options;
    cc_conns_t *conns;
    cc_metrics_t *metrics;
    cc_channel_t *channel;
    cc_ring_t *ring;
    cc_index_t *index;
    cc_rules_t rules;
    TAILQ_HEAD(, cc_sub) catchups; /* subscriptions a worker request serves */
    uint64_t next_catchup_id;
    uint64_t dispatch_sequence;
    cc_capture_state_t capture_state;
    char capture_reason[256];
    cc_capture_position_t position;
    /* Messages taken from the channel, not yet handled (bounded slices). */
    cc_msg_t *backlog;
    cc_txn_t txn; /* live events pass through here, transactions held whole */
    /* Each distinct read-through position gets a number when it is first
     * told, so a subscription that heard it is known without a string. */
    char watermark[CC_HIGH_WATER_MARK_LEN + 1];
    uint64_t watermark_number;
} cc_fanout_t;

void cc_fanout_init(cc_fanout_t *fanout, const cc_push_options_t *options, cc_conns_t *conns,
                    cc_metrics_t *metrics, cc_channel_t *channel);
void cc_fanout_cleanup(cc_fanout_t *fanout);

/* Positions a new subscription after `after` (NULL = from now, or its
 * snapshot) and adds it to the index. */
void cc_fanout_start(cc_fanout_t *fanout, cc_sub_t *sub, const char *after);
void cc_fanout_stop(cc_fanout_t *fanout, cc_sub_t *sub);
/* Handles a slice of what capture posted; true when more is waiting. */
bool cc_fanout_drain(cc_fanout_t *fanout);
/* The queue of `conn` has room (conn.h's on_room): replays continue,
 * conflated states are rendered. */
void cc_fanout_refill(cc_fanout_t *fanout, cc_conn_t *conn);
/* Tells every live subscription that has not heard it yet how far capture
 * has read. */
void cc_fanout_send_watermarks(cc_fanout_t *fanout);
/* Counts the write-to-delivery latency of writes whose reply was recorded
 * after their change went out (0), which no later event may settle. */
void cc_fanout_settle_late_writes(cc_fanout_t *fanout);
/* Whether capture has read far enough to place a snapshot. */
bool cc_fanout_can_snapshot(const cc_fanout_t *fanout);
/* How far capture may be behind the deployment, in ms; -1 before it knows. */
int64_t cc_fanout_capture_lag_ms(const cc_fanout_t *fanout);

#endif
