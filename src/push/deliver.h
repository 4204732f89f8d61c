/* SPDX-License-Identifier: Apache-2.0 */
/* push/deliver (rules layer): what one event means for one subscription,
 * and the references that go into its connection's queue. deliver.c: the
 * namespace, the token's grant (row decision and field projection, shared
 * per scope through render.h), the subscriber's filter on what it may see,
 * queued through emit.h. livequery.c: live-query verdicts, snapshots and conflated
 * document states. Calls the pure layers and conn.h; reaches the ordering
 * layer above only through rules->gather. */
#ifndef CC_PUSH_DELIVER_H
#define CC_PUSH_DELIVER_H

#include "conn.h"
#include "emit.h"
#include "position.h"
#include "sub.h"

#include "changecast/channel.h"

typedef struct cc_rules {
    cc_metrics_t *metrics;
    int64_t max_pending_docs;
    /* Set while a transaction is dispatched: each subscription's parts are
     * gathered (txn.c) instead of queued, so they leave in one piece. */
    void (*gather)(cc_sub_t *sub, cc_buf_t *body, void *arg);
    void *gather_arg;
} cc_rules_t;

/* Examines one event for one subscription, in stream order. */
void cc_deliver_offer(cc_rules_t *rules, cc_sub_t *sub, cc_event_t *event);

/* livequery.c */
typedef enum cc_verdict { CC_VERDICT_SKIP, CC_VERDICT_UPSERT, CC_VERDICT_DELETE } cc_verdict_t;
/* What a change means for a live query's view. */
cc_verdict_t cc_livequery_judge(const cc_sub_t *sub, const cc_event_t *event);
/* Asks a worker for the subscription's snapshot, read where capture has
 * read up to. */
void cc_livequery_request_snapshot(cc_channel_t *channel, const cc_push_options_t *options,
                                   const cc_capture_position_t *position, cc_sub_t *sub,
                                   uint64_t request_id);
/* Queues snapshot-begin, the documents and snapshot-end; false when the
 * snapshot was refused (the caller ends the subscription). */
bool cc_livequery_send_snapshot(cc_sub_t *sub, const cc_snapshot_t *snapshot);
/* Queues a format=docs subscription's waiting states. */
void cc_livequery_render_pending(cc_sub_t *sub);

#endif
