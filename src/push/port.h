/* SPDX-License-Identifier: Apache-2.0 */
/* push/port (transport layer): what the three transports share, the push
 * port as they see it (lws's context user points here), and their entry
 * points. access.c: tokens and origins from request headers, admission
 * limits, token expiry. sse.c, ws.c, http.c: the three kinds of requests,
 * each with its connection ops table; reply.c: the plain answers they share.
 * Calls the ordering layer and below. */
#ifndef CC_PUSH_PORT_H
#define CC_PUSH_PORT_H

#include "fanout.h"
#include "verdict.h"

#include "changecast/peers.h"

#include <openssl/ssl.h>

#define CC_MAX_TOKEN_BYTES 16384

typedef enum cc_origin {
    CC_ORIGIN_NONE,    /* no Origin header: not a browser's cross-site request */
    CC_ORIGIN_SAME,    /* the push port's own origin */
    CC_ORIGIN_ALLOWED, /* in push.allowed_origins */
    CC_ORIGIN_REFUSED,
} cc_origin_t;

struct ev_loop;

typedef struct cc_port {
    cc_push_options_t options;
    cc_expose_t expose;
    cc_metrics_t metrics;
    cc_conns_t conns;
    cc_deflate_t deflate;  /* the push thread's compressor and decompressor */
    cc_buf_t *gzip_header; /* what a gzip SSE response starts with */
    cc_fanout_t fanout;
    cc_auth_t *auth;
    char **origins; /* push.allowed_origins */
    size_t origin_count;
    bool any_origin;
    struct ev_loop *loop; /* the push thread's: transports' own socket watchers */
    bool tls;
    cc_peers_t *peers; /* connections per client address */
    int hangup_fd;
    bool hangup_owned_by_lws;
    cc_buf_t *sse_heartbeat;
    cc_buf_t *ws_ping;
    /* Copied in by the wire thread, read by /metrics. */
    pthread_mutex_t wire_stats_lock;
    cc_wire_stats_t wire_stats;
} cc_port_t;

/* access.c */
bool cc_access_init(cc_port_t *port, bson_error_t *error);
void cc_access_cleanup(cc_port_t *port);
cc_origin_t cc_access_origin(const cc_port_t *port, struct lws *wsi, char *origin, size_t size);
/* Whether push.allowed_origins lets this origin read answers (CORS). */
bool cc_access_origin_listed(const cc_port_t *port, const char *origin);
/* The request's token (Bearer header, access_token, cookie); false: none. */
bool cc_access_token(const cc_port_t *port, struct lws *wsi, char *out, size_t size);
/* Verifies (counting a refusal); the caller owns the grant. */
cc_grant_t *cc_access_verify(cc_port_t *port, const char *token, bson_error_t *error);
/* Counts the connection against the limits, or refuses it (counted, NULL).
 * The address returned is what cc_conn_t.peer_ip keeps. */
const char *cc_access_admit(cc_port_t *port, const char *ip, cc_refusal_t *refusal);
void cc_access_release(cc_port_t *port, cc_conn_t *conn);
void cc_access_release_ip(cc_port_t *port, const char *ip);
/* Ends the streams whose token has expired, and tokenless sockets past
 * their deadline. */
void cc_access_expire(cc_port_t *port);

/* hangup.c: SSE clients that leave (see there) */
bool cc_hangup_init(cc_port_t *port, struct lws_vhost *vhost);
void cc_hangup_watch(cc_port_t *port, cc_conn_t *conn);
void cc_hangup_unwatch(cc_port_t *port, cc_conn_t *conn);
int cc_hangup_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len);
void cc_hangup_close(cc_port_t *port);

/* transports: the lws callbacks of each protocol */
int cc_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);
int cc_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len);
/* sse.c, from http.c */
int cc_sse_open(cc_port_t *port, struct lws *wsi);
int cc_sse_writable(cc_conn_t *conn);
/* reply.c, below http.c and sse.c: a whole answer (its connection, lws's
 * opaque user data of the socket, sends the body when writable), the CORS
 * headers an allowed origin gets, and {"error": code, "message": text},
 * counted as a rejected request. */
int cc_http_reply_bytes(cc_port_t *port, struct lws *wsi, unsigned status, const char *content_type,
                        const char *body, size_t len);
int cc_http_reply(cc_port_t *port, struct lws *wsi, unsigned status, const char *content_type,
                  const char *body);
int cc_http_add_cors(cc_port_t *port, struct lws *wsi, unsigned char **p, unsigned char *end);
cc_buf_t *cc_http_error_body(cc_port_t *port, const char *code, const char *message);
int cc_http_error(cc_port_t *port, struct lws *wsi, unsigned status, const char *code,
                  const char *message);
/* ws.c: one whole client message (JSON text), no I/O beyond the queue. */
void cc_ws_handle_message(cc_port_t *port, cc_conn_t *conn, const char *text, size_t len);
void cc_ws_open(cc_port_t *port, cc_conn_t *conn);

/* ws_read.c (below ws.c): messages assembled, and a plain-TCP WebSocket's
 * frames read by changecast. */
typedef void (*cc_ws_message_fn)(cc_port_t *port, cc_conn_t *conn, const char *text, size_t len);
/* One text message's fragment (`announced`: bytes of its frame still to
 * come); false when the message grew past push.max_message_bytes (the
 * connection is closing, 1009). */
bool cc_ws_append(cc_port_t *port, cc_conn_t *conn, const void *bytes, size_t len,
                  size_t announced);
/* The assembled message is whole: handed to on_message and forgotten. */
void cc_ws_deliver(cc_port_t *port, cc_conn_t *conn, cc_ws_message_fn on_message);
void cc_ws_reader_start(cc_port_t *port, cc_conn_t *conn, cc_ws_message_fn on_message);
void cc_ws_reader_stop(cc_conn_t *conn);
extern const cc_conn_ops_t cc_ws_ops;
/* Ends every subscription of a connection that lws closed, and frees it. */
void cc_port_release_conn(cc_port_t *port, cc_conn_t *conn);
/* The same for the connection attached to a socket (lws's opaque user
 * data), which is detached first; nothing when none is. */
void cc_port_release_socket(cc_port_t *port, struct lws *wsi);

#endif
