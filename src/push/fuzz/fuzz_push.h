/* SPDX-License-Identifier: Apache-2.0 */
/* What the push fuzz targets share (header only): a push context with no
 * thread, no lws context and no sockets, holding just what request and
 * message parsing reach (options, exposed namespaces, the index, the ring,
 * the channel, auth in mode none). Connections are made with a NULL wsi:
 * parsing never writes to the socket, it only queues bytes. */
#ifndef CC_FUZZ_PUSH_H
#define CC_FUZZ_PUSH_H

#include "push/push_internal.h"

#include <stdlib.h>
#include <string.h>

static inline struct cc_push *fuzz_push(void)
{
    static struct cc_push *push;
    if (push) {
        return push;
    }
    push = calloc(1, sizeof *push);
    bson_error_t error;
    push->options.listen = "127.0.0.1:0";
    push->options.expose = "shop.*,it.orders,chat.*";
    push->options.full_document = "updateLookup";
    push->options.flush_ms = 5;
    push->options.max_queue_bytes = 1 << 20;
    push->options.max_message_bytes = 65536;
    push->options.max_subscriptions = 16;
    push->options.snapshot_max_docs = 100;
    push->options.snapshot_max_bytes = 1 << 20;
    push->options.max_pending_docs = 100;
    push->options.max_connections = 100;
    push->options.max_connections_per_ip = 100;
    push->options.max_filter_bytes = 16384;
    push->options.max_filter_depth = 16;
    cc_auth_options_init(&push->options.auth);
    push->options.auth.mode = CC_AUTH_MODE_NONE;
    if (!cc_expose_parse(push->options.expose, &push->expose, &error) ||
        !cc_access_init(push, &error)) {
        abort();
    }
    push->index = cc_index_new();
    push->ring = cc_ring_new(64, 1 << 20);
    push->channel = cc_channel_new();
    TAILQ_INIT(&push->conns);
    TAILQ_INIT(&push->dirty);
    TAILQ_INIT(&push->catchups);
    push->capture_state = CC_CAPTURE_LIVE;
    /* A high-water mark, so snapshot requests are placed and queued. */
    push->capture_position = bson_strdup("826B07A4CE000000052B0429296E1404");
    return push;
}

/* Forgets what the parsing asked of capture (snapshot and catch-up requests
 * are cancelled when their subscriptions go). */
static inline void fuzz_push_settle(struct cc_push *push)
{
    for (cc_msg_t *msg = cc_channel_take(push->channel), *next; msg; msg = next) {
        next = msg->next;
        cc_msg_free(msg);
    }
}

#endif
