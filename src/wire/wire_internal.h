/* SPDX-License-Identifier: Apache-2.0 */
/* The wire subsystem's shared state: the listener (listener.c) owns
 * sessions (session.c); each session owns its upstream connection
 * (upstream.c); TLS contexts come from tls.c. Not for use outside src/wire. */
#ifndef CC_WIRE_INTERNAL_H
#define CC_WIRE_INTERNAL_H

#include "changecast/hostport.h"
#include "changecast/wire.h"

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <sys/queue.h>

typedef enum cc_session_state {
    CC_SESSION_WAITING_PRIMARY, /* no primary known yet: client input waits */
    CC_SESSION_CONNECTING,      /* upstream connect / TLS handshake under way */
    CC_SESSION_PROXYING,
    CC_SESSION_CLOSED, /* freed once the current callback has returned */
} cc_session_state_t;

/* Handshake replies still to be rewritten; a driver has at most one or two
 * in flight on a connection, so a few slots are plenty. */
#define CC_PENDING_HELLOS 8

typedef struct cc_session {
    TAILQ_ENTRY(cc_session) link;
    struct cc_wire *wire;
    uint64_t id;
    cc_session_state_t state;
    struct bufferevent *client;
    struct bufferevent *upstream;
    struct event *wait_timer;
    char peer[64];
    cc_hostport_t upstream_address;
    uint64_t epoch; /* of the primary this session is pinned to */
    uint32_t max_message_bytes;
    int32_t pending_hello_ids[CC_PENDING_HELLOS];
    bool pending_hello_load_balanced[CC_PENDING_HELLOS];
    size_t pending_hellos;
    bool handshake_seen;
    int64_t replies_owed; /* requests forwarded that still expect a reply */
    bool close_when_flushed;
} cc_session_t;

struct cc_wire {
    struct event_base *base;
    struct evdns_base *dns;
    struct evconnlistener *listener;
    cc_wire_options_t options;
    char *strings[7]; /* owned copies of the option strings */
    char address[300];
    cc_primary_t *primary;
    struct event *primary_changed;
    SSL_CTX *client_tls;
    SSL_CTX *upstream_tls;
    bson_oid_t service_id;
    uint64_t next_session_id;
    size_t session_count;
    TAILQ_HEAD(, cc_session) sessions;
    bool draining;
    struct event *drain_timer;
    void (*drained)(void *arg);
    void *drained_arg;
};

/* session.c */
void cc_session_open(struct cc_wire *wire, evutil_socket_t fd, const struct sockaddr *peer,
                     int peer_len);
void cc_session_close(cc_session_t *session, const char *reason, const char *detail);
void cc_session_process_client(cc_session_t *session);
bool cc_session_idle(const cc_session_t *session);
/* Hands the session its (connecting) upstream bufferevent. */
void cc_session_start_upstream(cc_session_t *session, struct bufferevent *upstream);

/* upstream.c */
void cc_upstream_connect(cc_session_t *session);
bool cc_upstream_init(struct cc_wire *wire, bson_error_t *error);
void cc_upstream_cleanup(struct cc_wire *wire);

/* listener.c */
void cc_wire_session_gone(struct cc_wire *wire);

/* tls.c */
SSL_CTX *cc_tls_server_context(const char *cert_file, const char *key_file,
                               const char *client_ca_file, bson_error_t *error);
SSL_CTX *cc_tls_client_context(const char *ca_file, const char *cert_key_file,
                               bool allow_invalid_certificates, bson_error_t *error);
SSL *cc_tls_client_session(SSL_CTX *context, const char *host, bool verify_hostname);

#endif
