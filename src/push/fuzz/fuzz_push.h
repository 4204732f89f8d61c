/* SPDX-License-Identifier: Apache-2.0 */
/* What the push fuzz targets share (header only): a push port with no
 * thread, no lws context and no sockets, holding just what request and
 * message parsing reach (options, exposed namespaces, the index, the ring,
 * the channel, auth in mode none). Connections are made with a NULL wsi:
 * parsing never writes to a socket; it only queues references, and writes
 * happen in the flush, which these targets never run. */
#ifndef CC_FUZZ_PUSH_H
#define CC_FUZZ_PUSH_H

#include "push/port.h"
#include "push/request.h"

#include <stdlib.h>
#include <string.h>

static void fuzz_on_room(cc_conn_t *conn)
{
    (void)conn;
}

static inline cc_port_t *fuzz_port(void)
{
    static cc_port_t *port;
    static cc_channel_t *channel;
    if (port) {
        return port;
    }
    port = calloc(1, sizeof *port);
    channel = cc_channel_new();
    bson_error_t error;
    cc_push_options_t *o = &port->options;
    o->listen = "127.0.0.1:0";
    o->expose = "shop.*,it.orders,chat.*";
    o->full_document = "updateLookup";
    o->flush_ms = 5;
    o->ring_events = 64;
    o->ring_bytes = 1 << 20;
    o->max_queue_bytes = 1 << 20;
    o->stall_timeout_ms = 30000;
    o->max_message_bytes = 65536;
    o->max_subscriptions = 16;
    o->snapshot_max_docs = 100;
    o->snapshot_max_bytes = 1 << 20;
    o->max_pending_docs = 100;
    o->max_connections = 100;
    o->max_connections_per_ip = 100;
    o->max_filter_bytes = 16384;
    o->max_filter_depth = 16;
    cc_auth_options_init(&o->auth);
    o->auth.mode = CC_AUTH_MODE_NONE;
    if (!cc_expose_parse(o->expose, &port->expose, &error) || !cc_access_init(port, &error)) {
        abort();
    }
    cc_conns_init(&port->conns, &port->metrics,
                  (cc_conn_limits_t){(size_t)o->max_queue_bytes, o->stall_timeout_ms, 0},
                  fuzz_on_room);
    cc_fanout_init(&port->fanout, o, &port->conns, &port->metrics, channel);
    port->fanout.capture_state = CC_CAPTURE_LIVE;
    /* A high-water mark, so snapshot requests are placed and queued. */
    cc_position_set(&port->fanout.position, "826B07A4CE000000052B0429296E1404");
    return port;
}

/* Forgets what the parsing asked of capture (snapshot and catch-up requests
 * are cancelled when their subscriptions go). */
static inline void fuzz_port_settle(cc_port_t *port)
{
    for (cc_msg_t *msg = cc_channel_take(port->fanout.channel), *next; msg; msg = next) {
        next = msg->next;
        cc_msg_free(msg);
    }
}

#endif
