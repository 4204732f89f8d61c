/* SPDX-License-Identifier: Apache-2.0 */
/* The push subsystem's shared state. server.c owns the lws context and the
 * thread; conn.c a connection's outbound bytes; subscription.c parsing and
 * the namespace index; fanout.c the order of delivery from capture, ring
 * and catch-up; deliver.c what one event means for one subscription; txn.c
 * whole transactions; livequery.c and pending.c snapshots and document
 * states; access.c tokens, origins and limits; sse.c, ws.c and http.c the
 * three kinds of requests. */
#ifndef CC_PUSH_INTERNAL_H
#define CC_PUSH_INTERNAL_H

#include "changecast/auth.h"
#include "changecast/expose.h"
#include "changecast/filter.h"
#include "changecast/push.h"
#include "changecast/ring.h"

#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/queue.h>

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

typedef enum cc_origin {
    CC_ORIGIN_NONE,    /* no Origin header: not a browser's cross-site request */
    CC_ORIGIN_SAME,    /* the push port's own origin */
    CC_ORIGIN_ALLOWED, /* in push.allowed_origins */
    CC_ORIGIN_REFUSED,
} cc_origin_t;

#define CC_MAX_TOKEN_BYTES 16384
#define CC_PEER_BUCKETS 1024
/* Namespaces one subscription may name (each is an index entry). */
#define CC_MAX_NAMESPACES_PER_SUB 64

typedef enum cc_conn_kind { CC_CONN_HTTP, CC_CONN_SSE, CC_CONN_WS } cc_conn_kind_t;

enum {
    CC_OP_INSERT = 1 << 0,
    CC_OP_UPDATE = 1 << 1,
    CC_OP_REPLACE = 1 << 2,
    CC_OP_DELETE = 1 << 3,
    CC_OP_DROP = 1 << 4,
    CC_OP_RENAME = 1 << 5,
    CC_OP_DROP_DATABASE = 1 << 6,
    CC_OP_INVALIDATE = 1 << 7,
    CC_OP_OTHER = 1 << 8,
    CC_OP_ALL = 0x1ff,
};

typedef enum cc_sub_state {
    CC_SUB_LIVE,           /* receives events as capture posts them */
    CC_SUB_REPLAYING,      /* reading the ring, a queue's worth per write */
    CC_SUB_CATCHING_UP,    /* reading its own upstream stream */
    CC_SUB_CATCHUP_PAUSED, /* its client is behind: the stream waits for it */
    CC_SUB_SNAPSHOT,       /* waiting for its snapshot read */
} cc_sub_state_t;

typedef enum cc_sub_format {
    CC_FORMAT_CHANGES, /* change events as MongoDB gives them */
    CC_FORMAT_DOCS,    /* upsert/delete of document states, conflated */
} cc_sub_format_t;

typedef struct cc_conn cc_conn_t;
typedef struct cc_pending cc_pending_t;

typedef struct cc_sub {
    cc_conn_t *conn;
    char *id; /* the client's name for it (WebSocket); NULL for SSE */
    cc_ns_pattern_t *namespaces;
    size_t namespace_count;
    cc_filter_t *filter;
    bson_t *query;      /* the filter as given */
    bson_t *view_query; /* a live query's filter with the token's rows; NULL: query */
    uint32_t ops;
    bool ops_given;
    /* Live queries (livequery.c): the filter is on documents. */
    bool live_query;
    bool want_snapshot;
    cc_sub_format_t format;
    bson_t *sort;
    int64_t limit;
    char **filter_fields; /* top-level fields the filter reads */
    size_t filter_field_count;
    cc_pending_t *pending; /* format=docs: newest state per _id not yet written */
    /* What the connection's token grants for this subscription's exact
     * namespace (NULL: look it up per event, or no restriction). */
    const cc_scope_t *scope;
    bool row_filtered;        /* a live query whose token has a row filter */
    char *snapshot_position;  /* where its snapshot was read: its changes start after */
    bson_string_t *txn_items; /* its part of the transaction being dispatched */
    size_t txn_item_count;
    bool full_document_default; /* strip fullDocument from updates */
    char *position;             /* token of the last event examined; NULL = from now */
    char *watermark;            /* the last watermark sent */
    cc_sub_state_t state;
    uint64_t catchup_id;    /* the worker request (catch-up or snapshot) it waits on */
    uint64_t seen_sequence; /* dispatch number of the last event offered */
    TAILQ_ENTRY(cc_sub) conn_link;
    TAILQ_ENTRY(cc_sub) catchup_link; /* in push->catchups while CATCHING_UP or SNAPSHOT */
} cc_sub_t;

typedef struct cc_out {
    uint8_t *data; /* LWS_PRE bytes of headroom, then pending bytes */
    size_t len;
    size_t cap;
} cc_out_t;

struct cc_conn {
    struct cc_push *push;
    struct lws *wsi;
    cc_conn_kind_t kind;
    uint64_t id;
    TAILQ_HEAD(, cc_sub) subs;
    size_t sub_count;
    cc_out_t out;
    size_t unsplittable; /* bytes of out queued as one piece (a transaction) */
    bool dirty;          /* in the flush list */
    bool closing;        /* close at the next writable callback */
    int close_code;      /* WebSocket close code */
    char close_reason[64];
    int64_t last_rx_us;
    int64_t opened_us;
    cc_grant_t *grant; /* what its token grants; NULL until it has one (WebSocket) */
    char peer_ip[64];
    bool admitted; /* counted against the per-address limit */
    /* assembling a fragmented WebSocket message */
    uint8_t *rx;
    size_t rx_len;
    /* SSE: the status line waits for a snapshot (200, or the refusal's) */
    unsigned status_pending;
    /* a plain HTTP answer waiting for its writable callback */
    char *http_body;
    size_t http_body_len;
    TAILQ_ENTRY(cc_conn) link;
    TAILQ_ENTRY(cc_conn) dirty_link;
};

typedef enum cc_capture_state {
    CC_CAPTURE_STARTING,
    CC_CAPTURE_LIVE,
    CC_CAPTURE_INTERRUPTED, /* retrying: subscribers wait, nothing is lost */
    CC_CAPTURE_UNAVAILABLE  /* cannot stream at all (standalone upstream) */
} cc_capture_state_t;

typedef struct cc_index cc_index_t;

/* Upper bounds of the write-to-delivery histogram, in milliseconds. */
#define CC_WRITE_LATENCY_BUCKETS 12
extern const double cc_write_latency_bounds_ms[CC_WRITE_LATENCY_BUCKETS];

typedef struct cc_metrics {
    uint64_t events_captured;
    uint64_t events_delivered;
    uint64_t drops_slow_consumer;
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
    /* write-to-delivery latency (write_clock.h), a Prometheus histogram */
    uint64_t write_latency_buckets[CC_WRITE_LATENCY_BUCKETS];
    uint64_t write_latency_count;
    double write_latency_sum_s;
    double last_cluster_time;
} cc_metrics_t;

struct cc_push {
    cc_push_options_t options;
    char *strings[7];
    cc_channel_t *channel;
    cc_expose_t expose;
    cc_ring_t *ring;
    cc_index_t *index;
    struct lws_context *context;
    struct lws_vhost *vhost;
    char address[300];
    pthread_t thread;
    pthread_mutex_t start_lock;
    pthread_cond_t started;
    bool start_done;
    bool start_failed;
    bson_error_t start_error;
    atomic_bool stopping;
    TAILQ_HEAD(, cc_conn) conns;
    TAILQ_HEAD(, cc_conn) dirty;
    TAILQ_HEAD(, cc_sub) catchups; /* subscriptions reading a catch-up stream */
    size_t sse_count;
    size_t ws_count;
    uint64_t next_conn_id;
    uint64_t next_catchup_id;
    uint64_t dispatch_sequence;
    cc_capture_state_t capture_state;
    char capture_reason[256];
    cc_metrics_t metrics;
    atomic_llong wire_connections;
    atomic_ullong wire_bytes_to_upstream;
    atomic_ullong wire_bytes_to_clients;
    lws_sorted_usec_list_t flush_timer;
    bool flush_scheduled;
    lws_sorted_usec_list_t heartbeat_timer;
    lws_sorted_usec_list_t watermark_timer;
    char *capture_position;         /* token capture has read up to (event or empty batch) */
    bool capture_position_is_event; /* else a high-water mark (postBatchResumeToken) */
    /* A transaction's events wait here until the stream moves past it. */
    cc_event_t **txn_events;
    size_t txn_count;
    size_t txn_capacity;
    struct cc_txn_batch *current_txn; /* set while a transaction is offered */
    cc_auth_t *auth;
    char **origins; /* push.allowed_origins */
    size_t origin_count;
    bool any_origin;
    bool tls;
    SSL_CTX *tls_ctx; /* lws's, for reloading the certificate */
    struct peer_count *peers[CC_PEER_BUCKETS];
    lws_sorted_usec_list_t expiry_timer;
    atomic_bool reload_requested;
    int hangup_fd;
    bool hangup_owned_by_lws;
};

/* conn.c */
cc_conn_t *cc_conn_new(struct cc_push *push, struct lws *wsi, cc_conn_kind_t kind);
void cc_conn_free(cc_conn_t *conn);
void cc_conn_append(cc_conn_t *conn, const void *bytes, size_t len);
void cc_conn_append_ws_text(cc_conn_t *conn, const char *const *parts, const size_t *lens,
                            size_t count);
void cc_conn_append_sse(cc_conn_t *conn, const char *id, const char *type, const char *const *parts,
                        const size_t *lens, size_t count);
void cc_conn_mark_dirty(cc_conn_t *conn);
/* The document as relaxed JSON, or when that is impossible (a string that
 * is not UTF-8) a fixed error object, never NULL. */
char *cc_json_or_placeholder(const bson_t *doc, size_t *len);
/* Writes every pending byte in one lws_write; -1 to close. */
int cc_conn_flush(cc_conn_t *conn);
void cc_conn_drop(cc_conn_t *conn, int ws_code, const char *reason);
bool cc_conn_over_limit(const cc_conn_t *conn);
bool cc_conn_stalled(cc_conn_t *conn);

/* subscription.c */
cc_sub_t *cc_sub_new(cc_conn_t *conn, const char *id);
void cc_sub_free(cc_sub_t *sub);
bool cc_sub_add_namespace(struct cc_push *push, cc_sub_t *sub, const char *text, const char **code,
                          bson_error_t *error);
bool cc_sub_set_ops(cc_sub_t *sub, const char *comma_separated, bson_error_t *error);
bool cc_sub_set_full_document(struct cc_push *push, cc_sub_t *sub, const char *mode,
                              bson_error_t *error);
bool cc_sub_set_filter_json(cc_sub_t *sub, const char *json, size_t len, bson_error_t *error);
bool cc_sub_set_format(cc_sub_t *sub, const char *format, bson_error_t *error);
bool cc_sub_set_sort_json(cc_sub_t *sub, const char *json, bson_error_t *error);
uint32_t cc_op_bit(const char *operation);
cc_index_t *cc_index_new(void);
void cc_index_free(cc_index_t *index);
void cc_index_add(cc_index_t *index, cc_sub_t *sub);
void cc_index_remove(cc_index_t *index, cc_sub_t *sub);
/* Calls fn for each subscription whose namespaces may match. */
void cc_index_visit(cc_index_t *index, const cc_event_t *event,
                    void (*fn)(cc_sub_t *sub, void *arg), void *arg);

/* fanout.c */
/* Positions a new subscription after `after` (NULL = from now) and adds it. */
void cc_fanout_start(struct cc_push *push, cc_sub_t *sub, const char *after);
void cc_fanout_stop(struct cc_push *push, cc_sub_t *sub);
void cc_fanout_drain_channel(struct cc_push *push);
void cc_fanout_send_reset(cc_sub_t *sub, const char *reason, const char *message);
/* After a write left room in the connection's queue: replays continue. */
void cc_fanout_refill(cc_conn_t *conn);
/* Tells every live subscription that has not heard it yet how far capture
 * has read: everything up to there that matched it has been queued. */
void cc_fanout_send_watermarks(struct cc_push *push);

/* The cluster time up to which capture has read every event: its
 * position's time, or just before it for a high-water mark. */
bool cc_fanout_read_through(const struct cc_push *push, uint32_t *seconds, uint32_t *increment);
/* The token that stands, for clients, for how far capture has read: a
 * high-water mark, never an event's own token (which names a collection
 * and a document key the client may not be granted). False when none can
 * be given (a token layout we cannot rebuild). */
bool cc_fanout_public_position(const struct cc_push *push, char *out, size_t size);
/* Takes a live event into the ring and offers it to every candidate. */
void cc_fanout_dispatch_live(struct cc_push *push, cc_event_t *event);
/* Sends a message that is not a change: on a WebSocket {type, id, ...body};
 * on SSE "event: type" with body as data, and an id line when sse_id. */
void cc_fanout_send_notice(cc_sub_t *sub, const char *type, const char *sse_id, const bson_t *body);
/* deliver.c */
/* Examines one event for one subscription, in stream order. */
void cc_deliver_offer(cc_sub_t *sub, cc_event_t *event);
/* After a subscription's connection got more bytes: flush or drop. */
void cc_deliver_queued(cc_sub_t *sub, bool one_piece);

/* txn.c */
/* Subscriptions that got part of the transaction being dispatched. */
typedef struct cc_txn_batch {
    cc_sub_t **subs;
    size_t count;
    size_t capacity;
} cc_txn_batch_t;
void cc_txn_on_live_event(struct cc_push *push, cc_event_t *event);
/* Dispatches the transaction held back, if any. */
void cc_txn_release(struct cc_push *push);

/* livequery.c */
typedef enum cc_verdict { CC_VERDICT_SKIP, CC_VERDICT_UPSERT, CC_VERDICT_DELETE } cc_verdict_t;
/* Checks a live query's request once it is complete; *code names the
 * error for the client. */
bool cc_livequery_prepare(struct cc_push *push, cc_sub_t *sub, const char **code,
                          bson_error_t *error);
/* What a change means for a live query's view. */
cc_verdict_t cc_livequery_judge(const cc_sub_t *sub, const cc_event_t *event);
/* Whether capture has read far enough to place a snapshot. */
bool cc_livequery_can_snapshot(const struct cc_push *push);
/* Asks a worker for the subscription's snapshot. */
void cc_livequery_request_snapshot(struct cc_push *push, cc_sub_t *sub, uint64_t request_id);
/* Queues snapshot-begin, the documents and snapshot-end; false when the
 * snapshot was refused (the caller ends the subscription). */
bool cc_livequery_send_snapshot(cc_sub_t *sub, const cc_snapshot_t *snapshot);
/* Writes a format=docs subscription's waiting states into its connection. */
void cc_livequery_render_pending(cc_sub_t *sub);

/* pending.c */
cc_pending_t *cc_pending_new(void);
void cc_pending_free(cc_pending_t *pending);
size_t cc_pending_count(const cc_pending_t *pending);
/* doc_json (owned; NULL: the event's post-image) is the upserted state. */
void cc_pending_put(cc_pending_t *pending, cc_event_t *event, bool upsert, char *doc_json);
void cc_pending_drain(cc_pending_t *pending,
                      void (*emit)(cc_event_t *event, bool upsert, const char *doc_json, bool last,
                                   void *arg),
                      void *arg);

/* access.c */
bool cc_access_init(struct cc_push *push, bson_error_t *error);
void cc_access_cleanup(struct cc_push *push);
const char *cc_refusal_name(cc_refusal_t refusal);
void cc_access_refused(struct cc_push *push, cc_refusal_t refusal);
cc_refusal_t cc_refusal_from_auth(const bson_error_t *error);
cc_origin_t cc_access_origin(const struct cc_push *push, struct lws *wsi, char *origin,
                             size_t size);
/* The request's token (Bearer header, access_token, cookie); false: none. */
bool cc_access_token(const struct cc_push *push, struct lws *wsi, char *out, size_t size);
/* Verifies (counting a refusal); the caller owns the grant. */
cc_grant_t *cc_access_verify(struct cc_push *push, const char *token, bson_error_t *error);
/* Counts the connection against the limits, or refuses it (counted). */
bool cc_access_admit(struct cc_push *push, const char *ip, cc_refusal_t *refusal);
void cc_access_release(struct cc_push *push, cc_conn_t *conn);
void cc_access_release_ip(struct cc_push *push, const char *ip);
/* Ends the streams whose token has expired. */
void cc_access_expire(struct cc_push *push);
/* Checks a subscription against its connection's grant: namespaces
 * granted, filter and sort within the shown fields; combines the claim's
 * row filter into a live query's filter. *refusal says why not. */
bool cc_access_check_sub(struct cc_push *push, const cc_grant_t *grant, cc_sub_t *sub,
                         cc_refusal_t *refusal, bson_error_t *error);
/* 401, 403, 429 or 400. */
int cc_refusal_status(cc_refusal_t refusal);
/* The filter limits (push.max_filter_bytes/depth) on a parsed filter. */
bool cc_access_check_filter_shape(struct cc_push *push, const bson_t *filter, size_t sent_bytes,
                                  cc_refusal_t *refusal, bson_error_t *error);

/* hangup.c */
bool cc_hangup_init(struct cc_push *push);
void cc_hangup_watch(struct cc_push *push, cc_conn_t *conn);
void cc_hangup_unwatch(struct cc_push *push, cc_conn_t *conn);
int cc_hangup_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len);
void cc_hangup_close(struct cc_push *push);

/* sse_request.c */
typedef struct cc_sse_request {
    char token[CC_MAX_RESUME_TOKEN + 8]; /* Last-Event-ID / lastEventId, normalized */
    bool has_token;
} cc_sse_request_t;
typedef struct cc_http_refusal {
    unsigned status;
    const char *code;
    bson_error_t error;
} cc_http_refusal_t;
bool cc_sse_read_token(const char *text, cc_sse_request_t *request);
/* One query argument into the subscription; false with why's status, code
 * and message. */
bool cc_sse_read_arg(struct cc_push *push, cc_sub_t *sub, cc_sse_request_t *request,
                     const char *name, const char *value, cc_http_refusal_t *why);
/* The request as a whole, once every argument is read. */
bool cc_sse_check_request(struct cc_push *push, cc_sub_t *sub, cc_http_refusal_t *why);

/* sse.c, ws.c, http.c */
int cc_sse_open(struct cc_push *push, struct lws *wsi, cc_conn_t **slot);
/* The writable callback of a stream whose status line is still pending:
 * the event-stream headers, or the refusal; -1 to close. */
int cc_sse_write_status(cc_conn_t *conn);
/* Refuses a stream whose status line is still pending. */
void cc_sse_refuse(cc_conn_t *conn, unsigned status, const char *code, const char *message);
int cc_ws_receive(cc_conn_t *conn, const void *in, size_t len);
/* One whole client message (JSON text): no I/O beyond the connection's
 * queue, so the fuzzer reaches it. */
void cc_ws_handle_message(cc_conn_t *conn, const char *text, size_t len);
void cc_ws_send_json(cc_conn_t *conn, const bson_t *message);
/* A new socket: its token from the upgrade (or none yet), and the limits. */
void cc_ws_open(cc_conn_t *conn);
/* Ends one subscription of a WebSocket with an error message. */
void cc_ws_refuse_sub(cc_sub_t *sub, const char *code, const char *message);
int cc_http_serve(struct cc_push *push, struct lws *wsi, const char *path, cc_conn_t **slot);
int cc_http_reply(struct cc_push *push, struct lws *wsi, cc_conn_t **slot, unsigned status,
                  const char *content_type, const char *body);
int cc_http_reply_bytes(struct cc_push *push, struct lws *wsi, cc_conn_t **slot, unsigned status,
                        const char *content_type, const char *body, size_t len);
/* Adds the CORS headers when the request comes from an allowed cross-site
 * origin; nonzero when the headers do not fit. */
int cc_http_add_cors(struct cc_push *push, struct lws *wsi, unsigned char **p, unsigned char *end);
int cc_http_error(struct cc_push *push, struct lws *wsi, cc_conn_t **slot, unsigned status,
                  const char *code, const char *message);

#endif
