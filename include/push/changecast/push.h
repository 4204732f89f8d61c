/* SPDX-License-Identifier: Apache-2.0 */
/* push: the libwebsockets server on its own thread: Server-Sent Events on
 * /v1/events, WebSocket on /v1/ws, /healthz and /metrics. Owns the ring,
 * the subscriptions and every subscriber connection. Receives events from
 * capture through a cc_channel_t; uses core and filter. */
#ifndef CHANGECAST_PUSH_H
#define CHANGECAST_PUSH_H

#include "changecast/auth.h"
#include "changecast/channel.h"
#include "changecast/wire_stats.h"
#include "changecast/write_clock.h"

#include <bson/bson.h>
#include <stdint.h>

typedef struct cc_push_options {
    const char *listen;
    const char *expose;
    const char *full_document; /* what capture asks MongoDB for */
    int64_t ring_events;
    int64_t ring_bytes;
    int64_t flush_ms;
    int64_t max_flush_ms; /* the flush window grows up to this while the push thread is busy */
    int64_t heartbeat_ms;
    int64_t idle_timeout_ms;
    int64_t max_queue_bytes;
    int64_t unsent_bytes; /* TCP_NOTSENT_LOWAT on subscriber sockets; 0: the kernel's */
    int64_t stall_timeout_ms;
    int64_t healthz_max_lag_ms; /* /healthz 503 past this capture lag; 0: never */
    int64_t max_message_bytes;
    int64_t max_subscriptions;
    int64_t retry_ms;
    int64_t watermark_ms;
    int64_t snapshot_max_docs;
    int64_t snapshot_max_bytes;
    int64_t max_pending_docs;
    bool demo;        /* serve the demo page at / */
    bool compression; /* WebSocket permessage-deflate, compressed once per rendering */
    cc_auth_options_t auth;
    bool auth_public; /* auth.allow_anonymous_public: mode none on any address */
    const char *allowed_origins;
    int64_t max_connections;
    int64_t max_connections_per_ip;
    int64_t max_filter_bytes;
    int64_t max_filter_depth;
    const char *tls_cert_file; /* with tls_key_file: TLS only */
    const char *tls_key_file;
    const char *tls_client_ca_file;
    cc_write_clock_t *write_clock; /* optional: write-to-delivery latency */
} cc_push_options_t;

typedef struct cc_push cc_push_t;

/* Starts the push thread and returns once it listens (or failed to). */
cc_push_t *cc_push_start(const cc_push_options_t *options, cc_channel_t *channel,
                         bson_error_t *error);
const char *cc_push_address(const cc_push_t *push);

/* Wire-side numbers for /metrics, updated by the wire thread. */
void cc_push_set_wire_stats(cc_push_t *push, const cc_wire_stats_t *stats);

/* Reads key files and certificates again (SIGHUP), on the push thread. */
void cc_push_reload(cc_push_t *push);

void cc_push_stop(cc_push_t *push);

#endif
