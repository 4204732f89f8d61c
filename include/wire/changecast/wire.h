/* SPDX-License-Identifier: Apache-2.0 */
/* wire: the MongoDB wire proxy. Runs on one libevent event_base (the wire
 * thread) and never blocks it. Owns the client listener, the sessions and
 * their upstream connections. Reads the primary from core/primary. */
#ifndef CHANGECAST_WIRE_H
#define CHANGECAST_WIRE_H

#include "changecast/primary.h"
#include "changecast/wire_stats.h"
#include "changecast/write_clock.h"

#include <bson/bson.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct cc_wire cc_wire_t;

typedef struct cc_wire_options {
    const char *listen; /* host:port */
    /* TLS towards clients; cert and key empty = plain TCP. */
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_client_ca_file; /* set = mutual TLS */
    /* TLS towards the upstream, from the connection string's tls options. */
    bool upstream_tls;
    const char *upstream_tls_ca_file;
    const char *upstream_tls_cert_key_file;
    bool upstream_tls_allow_invalid_hostnames;
    bool upstream_tls_allow_invalid_certificates;
    int64_t max_connections;
    int64_t max_connections_per_ip;
    int64_t handshake_timeout_ms; /* first message whole, or closed */
    int64_t message_timeout_ms;   /* a started message whole, or closed */
    int64_t primary_wait_ms;
    int64_t connect_timeout_ms;
    /* Optional: write replies to these namespaces are timed (write_clock.h). */
    cc_write_clock_t *write_clock;
    const char *expose;
} cc_wire_options_t;

/* base must have been created after evthread_use_pthreads(): the topology
 * monitor wakes the wire thread from its own thread. */
cc_wire_t *cc_wire_new(struct event_base *base, const cc_wire_options_t *options,
                       cc_primary_t *primary, bson_error_t *error);

/* The address actually bound, with port 0 resolved. */
const char *cc_wire_address(const cc_wire_t *wire);

/* Loads the client TLS certificate and key again (SIGHUP); new connections
 * use them, existing ones keep theirs. On failure the old ones stay. */
bool cc_wire_reload_tls(cc_wire_t *wire, bson_error_t *error);

/* Stops accepting; each connection closes once no reply is owed to its
 * client, or when timeout_ms passes. done runs when none are left. */
void cc_wire_drain(cc_wire_t *wire, int64_t timeout_ms, void (*done)(void *arg), void *arg);

/* Connections open now, bytes forwarded since start (handshake rewrites
 * included), refusals and deadlines. */
void cc_wire_stats(const cc_wire_t *wire, cc_wire_stats_t *out);

void cc_wire_free(cc_wire_t *wire);

#endif
