/* SPDX-License-Identifier: Apache-2.0 */
/* The wire subsystem's shared state: the listener (listener.c) owns
 * sessions (session.c); each session owns its upstream connection
 * (upstream.c); TLS contexts come from tls.c. Not for use outside src/wire. */
#ifndef CC_WIRE_INTERNAL_H
#define CC_WIRE_INTERNAL_H

#include "changecast/expose.h"
#include "changecast/hostport.h"
#include "changecast/peers.h"
#include "frame.h"
#include "changecast/wire.h"

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/queue.h>

typedef enum cc_session_state {
    CC_SESSION_AWAITING_CLIENT, /* accepted: no upstream until a first message arrives whole */
    CC_SESSION_WAITING_PRIMARY, /* no primary known yet: client input waits */
    CC_SESSION_CONNECTING,      /* upstream connect / TLS handshake under way */
    CC_SESSION_PROXYING,
    /* Between requests, its upstream connection lost or belonging to a
     * former primary: the next whole message opens another. */
    CC_SESSION_RELEASED,
    CC_SESSION_CLOSED, /* freed once the current callback has returned */
} cc_session_state_t;

/* Handshake replies still to be rewritten; a driver has at most one or two
 * in flight on a connection, so a few slots are plenty. */
#define CC_PENDING_HELLOS 8
#define CC_PENDING_WRITES 16

/* How a session reads one of its sockets (socket_io.c): a TLS bufferevent
 * reads for itself; a plain socket is read by the session's own event. */
typedef struct cc_reader {
    struct bufferevent *bev; /* NULL once stopped */
    struct event *event;     /* plain sockets, once connected */
    struct evbuffer *input;  /* bytes read and not yet forwarded */
    size_t high_bytes;       /* reading pauses while input holds this much */
    bool tls;
    bool paused; /* backpressure: the other side has too much unsent */
    bool full;   /* input reached high_bytes */
} cc_reader_t;

typedef struct cc_session {
    TAILQ_ENTRY(cc_session) link;
    struct cc_wire *wire;
    uint64_t id;
    cc_session_state_t state;
    struct bufferevent *client;
    struct bufferevent *upstream;
    cc_reader_t client_reader;
    cc_reader_t upstream_reader;
    struct evbuffer *staged; /* what one read callback forwards, sent once at its end */
    struct event *wait_timer;
    struct event *deadline; /* handshake_timeout_ms or message_timeout_ms, while pending */
    char peer[64];
    char peer_ip[INET6_ADDRSTRLEN];
    cc_hostport_t upstream_address;
    uint64_t epoch; /* of the primary this session is pinned to */
    uint32_t max_message_bytes;
    int32_t pending_hello_ids[CC_PENDING_HELLOS];
    bool pending_hello_load_balanced[CC_PENDING_HELLOS];
    size_t pending_hellos;
    bool handshake_seen;
    /* It authenticated (or began to) on its upstream connection, which
     * another connection could not stand in for. */
    bool authenticates;
    int32_t pending_write_ids[CC_PENDING_WRITES]; /* writes whose replies go to the clock */
    size_t pending_writes;
    int64_t replies_owed; /* requests forwarded that still expect a reply */
    bool close_when_flushed;
} cc_session_t;

/* What session.c and no_primary.c need from the layers above them, set by
 * listener.c: the files of src/wire/ call down only (listener, upstream,
 * no_primary, session, then frame, handshake, socket_io, tls, writes). */
typedef struct cc_session_up {
    void (*connect)(cc_session_t *session);       /* upstream.c: to the primary, or wait */
    void (*serve_waiting)(cc_session_t *session); /* no_primary.c */
    void (*session_freed)(struct cc_wire *wire);  /* listener.c: one fewer session */
} cc_session_up_t;

struct cc_wire {
    struct event_base *base;
    cc_session_up_t up;
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
    cc_expose_t expose; /* writes to these feed the write clock */
    uint64_t next_session_id;
    size_t session_count;
    cc_peers_t *peers; /* sessions per client address */
    /* libevent common timeouts: O(1) to arm, since a message deadline is
     * armed whenever a read ends inside a frame. */
    const struct timeval *handshake_timeout;
    const struct timeval *message_timeout;
    cc_wire_stats_t stats;
    /* The last successful hello reply a primary gave (as received), for
     * answering handshakes while none is known (no_primary.c). */
    bson_t *known_hello;
    int32_t next_reply_id; /* requestId of replies changecast writes itself */
    TAILQ_HEAD(, cc_session) sessions;
    bool draining;
    struct event *drain_timer;
    void (*drained)(void *arg);
    void *drained_arg;
    /* Every plain-socket recv lands here first; 16 KiB is what a socket
     * bufferevent reads at most at once (its max_single_read default). */
    uint8_t read_buffer[16 * 1024];
};

/* writes.c */
void cc_writes_note_request(cc_session_t *session, const cc_frame_header_t *header,
                            const char *name, struct evbuffer *input);
void cc_writes_note_reply(cc_session_t *session, const cc_frame_header_t *header,
                          struct evbuffer *input);

/* session.c: `ip` was admitted for the session (cc_peers_admit). */
void cc_session_open(struct cc_wire *wire, evutil_socket_t fd, const struct sockaddr *peer,
                     const char *ip);
void cc_session_close(cc_session_t *session, const char *reason, const char *detail);
/* The session's upstream bufferevent is freed. */
void cc_session_drop_upstream(cc_session_t *session);
/* Sends a reply frame changecast wrote itself (taken: bson_malloc'd). */
void cc_session_answer(cc_session_t *session, uint8_t *frame, size_t len);
/* A message held for want of a primary is no longer waited on. */
void cc_session_stop_waiting(cc_session_t *session);

/* no_primary.c: while a session has no upstream connection, handshakes are
 * answered from wire->known_hello and any other message is held up to
 * primary_wait_ms, then answered with a retryable error. */
void cc_waiting_serve(cc_session_t *session);
void cc_session_process_client(cc_session_t *session);
bool cc_session_idle(const cc_session_t *session);

/* relay.c: one whole frame at the head of the client's (upstream's) input,
 * moved to session->staged, rewritten if it is a handshake (its reply);
 * false with *error when the frame cannot be taken (the session closes). */
bool cc_relay_client_frame(cc_session_t *session, const cc_frame_header_t *header,
                           bson_error_t *error);
bool cc_relay_upstream_frame(cc_session_t *session, const cc_frame_header_t *header,
                             bson_error_t *error);

/* The command of a legacy OP_QUERY frame on a "<db>.$cmd" namespace, its
 * {$query: ...} wrapper taken off; what rebuilding the frame needs stays in
 * `parts`, pointing into the frame. */
typedef enum cc_command_status {
    CC_COMMAND_FOUND,
    CC_COMMAND_NONE,      /* a query on a collection, not a command */
    CC_COMMAND_MALFORMED, /* *error says why */
} cc_command_status_t;

typedef struct cc_query_command {
    cc_query_t query;
    bson_t query_doc;
    const char *wrapper_key; /* NULL: the document is the command itself */
} cc_query_command_t;

cc_command_status_t cc_relay_query_command(const uint8_t *frame, const cc_frame_header_t *header,
                                           bson_t *command, cc_query_command_t *parts,
                                           bson_error_t *error);
/* Its upstream connection was lost, or belongs to a former primary: a
 * session between requests that never authenticated lets it go and stays
 * open (RELEASED), as a mongos keeps its clients' connections when a shard
 * goes. False: the session must be closed instead. */
bool cc_session_release_upstream(cc_session_t *session, const char *reason);
/* Hands the session its (connecting) upstream bufferevent; false when the
 * session had to be closed. */
bool cc_session_start_upstream(cc_session_t *session, struct bufferevent *upstream);

/* socket_io.c */
bool cc_reader_open(cc_reader_t *reader, struct bufferevent *bev, size_t high_bytes);
/* Starts reading; a plain socket that is not connected yet starts when
 * called again once it is. */
bool cc_reader_start(cc_reader_t *reader, event_callback_fn on_readable, void *arg);
void cc_reader_pause(cc_reader_t *reader);
void cc_reader_resume(cc_reader_t *reader);
/* One recv on a plain socket into reader->input; true when bytes arrived.
 * End of stream and errors go to on_event as the bufferevent would report
 * them (BEV_EVENT_READING | EOF or ERROR), with errno as recv left it. */
bool cc_reader_read(cc_reader_t *reader, uint8_t *scratch, size_t scratch_bytes,
                    bufferevent_event_cb on_event, void *arg);
/* Resumes a reader paused by its high-water mark once input has drained. */
void cc_reader_consumed(cc_reader_t *reader);
/* Before the bufferevent is freed; cc_reader_free once the session goes. */
void cc_reader_stop(cc_reader_t *reader);
void cc_reader_free(cc_reader_t *reader);
/* Stopped and freed, ready to be opened on another bufferevent. */
void cc_reader_reset(cc_reader_t *reader);
/* Moves every staged byte towards `to`: written straight to its socket
 * when `connected`, plain and nothing is queued; the rest is queued in its
 * output. false (errno set, staged emptied) on a write error. */
bool cc_socket_send(struct bufferevent *to, struct evbuffer *staged, bool connected);

/* upstream.c */
void cc_upstream_connect(cc_session_t *session);
bool cc_upstream_init(struct cc_wire *wire, bson_error_t *error);
void cc_upstream_cleanup(struct cc_wire *wire);

/* listener.c */
void cc_wire_session_gone(struct cc_wire *wire);

static inline struct timeval cc_timeval_from_ms(int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* tls.c */
SSL_CTX *cc_tls_server_context(const char *cert_file, const char *key_file,
                               const char *client_ca_file, bson_error_t *error);
SSL_CTX *cc_tls_client_context(const char *ca_file, const char *cert_key_file,
                               bool allow_invalid_certificates, bson_error_t *error);
SSL *cc_tls_client_session(SSL_CTX *context, const char *host, bool verify_hostname);

#endif
