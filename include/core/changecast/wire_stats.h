/* SPDX-License-Identifier: Apache-2.0 */
/* core/wire_stats: what the wire proxy counts, as the push port's /metrics
 * shows it. A plain struct so that wire and push, which never include each
 * other, can both name it; the daemon copies it from one to the other. */
#ifndef CHANGECAST_WIRE_STATS_H
#define CHANGECAST_WIRE_STATS_H

#include <stdint.h>

typedef struct cc_wire_stats {
    int64_t connections;          /* application connections open */
    int64_t upstream_connections; /* connections open to MongoDB on their behalf */
    uint64_t bytes_to_upstream;
    uint64_t bytes_to_clients;
    uint64_t refused_max_connections;        /* wire.max_connections reached */
    uint64_t refused_max_connections_per_ip; /* wire.max_connections_per_ip reached */
    uint64_t handshake_timeouts; /* no whole first message within handshake_timeout_ms */
    uint64_t message_timeouts;   /* a started message not whole within message_timeout_ms */
} cc_wire_stats_t;

#endif
