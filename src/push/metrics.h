/* SPDX-License-Identifier: Apache-2.0 */
/* push/metrics (pure layer): the counters every layer adds to and /metrics
 * reads (http.c). Plain data, owned by the push thread. */
#ifndef CC_PUSH_METRICS_H
#define CC_PUSH_METRICS_H

#include <stdint.h>

/* Why a request or message was refused: counted in /metrics. */
typedef enum cc_refusal {
    CC_REFUSAL_TOKEN_MISSING,
    CC_REFUSAL_TOKEN_INVALID,
    CC_REFUSAL_TOKEN_EXPIRED,
    CC_REFUSAL_TOKEN_NOT_YET_VALID,
    CC_REFUSAL_CLAIM_MISSING,
    CC_REFUSAL_CLAIM_INVALID,
    CC_REFUSAL_NOT_GRANTED,
    CC_REFUSAL_FIELD_NOT_GRANTED,
    CC_REFUSAL_ORIGIN_NOT_ALLOWED,
    CC_REFUSAL_TOO_MANY_CONNECTIONS,
    CC_REFUSAL_TOO_MANY_CONNECTIONS_PER_IP,
    CC_REFUSAL_FILTER_TOO_LARGE,
    CC_REFUSAL_FILTER_TOO_DEEP,
    CC_REFUSAL_TOO_MANY_SUBSCRIPTIONS,
    CC_REFUSAL_MESSAGE_TOO_LARGE,
    CC_REFUSAL_COUNT
} cc_refusal_t;

/* Upper bounds of the write-to-delivery histogram, in milliseconds. */
#define CC_WRITE_LATENCY_BUCKETS 12
extern const double cc_write_latency_bounds_ms[CC_WRITE_LATENCY_BUCKETS];

typedef struct cc_metrics {
    uint64_t events_captured;
    uint64_t events_delivered;
    uint64_t drops_slow_consumer;  /* the client's own socket stopped taking bytes */
    uint64_t paused_server_behind; /* live subscriptions paused: their socket drained, we lagged */
    uint64_t resets_server_behind; /* ...and fell off the ring while paused */
    uint64_t resets_history_lost;
    uint64_t resets_capture_restarted;
    uint64_t catchups_started;
    uint64_t subscription_checks; /* live events offered to subscriptions */
    uint64_t requests_rejected;
    uint64_t snapshots_served;
    uint64_t snapshots_refused;
    uint64_t resets_too_many_pending;
    uint64_t transactions_grouped;
    uint64_t refusals[CC_REFUSAL_COUNT];
    uint64_t expired_streams;
    uint64_t writes;         /* send calls on subscriber sockets */
    uint64_t partial_writes; /* ...that the socket did not take whole */
    uint64_t renderings;     /* shared renderings made (one per event and wire form) */
    uint64_t compressions;   /* shared buffers compressed (once each, whoever gets them) */
    uint64_t compressed_ws;  /* WebSockets that agreed to permessage-deflate */
    uint64_t compressed_sse; /* SSE streams answered in gzip */
    /* write-to-delivery latency (write_clock.h), a Prometheus histogram */
    uint64_t write_latency_buckets[CC_WRITE_LATENCY_BUCKETS];
    uint64_t write_latency_count;
    double write_latency_sum_s;
    double last_cluster_time;
    int64_t caught_up_at_us; /* monotonic: the last empty batch, when capture had read all */
    int64_t flush_window_ms; /* as adapted to load (server.c) */
} cc_metrics_t;

#endif
