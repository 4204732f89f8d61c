/* SPDX-License-Identifier: Apache-2.0 */
/* push/conn (queue layer): a subscriber connection, its one state, and its
 * bounded queue of references to shared buffers, with the ONE write path
 * (the only caller of lws_write in changecast). A queue holds (head, body)
 * pairs of cc_buf_t references, never copies; an idle connection holds no
 * queue at all. When a write leaves room, the queue calls up through one
 * callback (cc_conns_t.on_room), as PgBouncer's sbuf does; nothing else
 * here knows of subscriptions, events or transports. Calls buf, encode,
 * metrics and lws. */
#ifndef CC_PUSH_CONN_H
#define CC_PUSH_CONN_H

#include "buf.h"
#include "deflate.h"
#include "metrics.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <sys/queue.h>

typedef enum cc_conn_kind { CC_CONN_HTTP, CC_CONN_SSE, CC_CONN_WS, CC_CONN_KINDS } cc_conn_kind_t;

typedef enum cc_conn_state {
    CC_CONN_AWAITING_SNAPSHOT, /* SSE: the status line waits for the snapshot read */
    CC_CONN_HEADERS,           /* SSE: 200 and headers at the next writable callback */
    CC_CONN_STREAMING,         /* queued items flow to the socket */
    CC_CONN_ANSWERING,         /* one HTTP answer (or an SSE refusal) at the next writable */
    CC_CONN_CLOSING,           /* what is queued goes out, then the connection closes */
} cc_conn_state_t;

enum {
    CC_ITEM_WS_TEXT = 1 << 0, /* a WebSocket text frame header goes before head + body */
    /* permessage-deflate: RSV1 set, the head in a stored block, then the
     * body's shared compressed form (cc_conn_push decides) */
    CC_ITEM_WS_DEFLATED = 1 << 1,
    /* SSE with Content-Encoding gzip: the body's shared compressed blocks,
     * or (a body under CC_DEFLATE_MIN_BYTES) a stored block of it; an
     * item pushed CC_ITEM_RAW (the gzip header) goes as it is */
    CC_ITEM_GZIP_DEFLATED = 1 << 2,
    CC_ITEM_GZIP_STORED = 1 << 3,
    CC_ITEM_RAW = 1 << 4,
};

typedef struct cc_item {
    cc_buf_t *head; /* NULL, or the per-subscription part of a message */
    cc_buf_t *body; /* shared */
    uint32_t flags;
} cc_item_t;

typedef struct cc_conn cc_conn_t;
struct cc_sub;
struct cc_grant;

/* What a transport does for the layers below it (fan-out reaches SSE and
 * WebSocket through this table, never by name). */
typedef struct cc_conn_ops {
    const char *name;
    /* One subscription cannot go on (its snapshot was refused, or capture
     * restarted while it waited): SSE answers with `status` if its status
     * line is still pending, WebSocket sends an error and forgets it. */
    void (*end_sub)(struct cc_sub *sub, unsigned status, const char *code, const char *message);
} cc_conn_ops_t;

/* What one connection may hold (push.* options). */
typedef struct cc_conn_limits {
    size_t max_queue_bytes;
    int64_t stall_timeout_ms;
    int unsent_bytes; /* TCP_NOTSENT_LOWAT of a subscriber's socket; 0: the kernel's */
} cc_conn_limits_t;

/* Every connection of the push thread. */
typedef struct cc_conns {
    TAILQ_HEAD(, cc_conn) all;
    TAILQ_HEAD(, cc_conn) dirty; /* queued items wait for the flush window */
    size_t count[CC_CONN_KINDS];
    size_t queues;           /* connections holding a queue right now */
    size_t freed_since_trim; /* connections gone since memory was last given back */
    uint64_t next_id;
    cc_conn_limits_t limits;
    cc_metrics_t *metrics;
    /* The one call up: a connection's queue has room (replays continue,
     * conflated states are rendered). */
    void (*on_room)(cc_conn_t *conn);
    uint8_t *scratch; /* TLS writes gather here, reused */
    size_t scratch_cap;
    cc_deflate_t *deflate; /* the push thread's compressor; NULL: compression off */
} cc_conns_t;

struct cc_conn {
    cc_conns_t *conns;
    struct lws *wsi;
    const cc_conn_ops_t *ops;
    uint64_t id;
    const char *close_reason; /* static text */
    /* the queue: a ring of items, allocated only while non-empty */
    cc_item_t *items;
    uint32_t first, count, capacity;
    uint16_t close_code;
    uint8_t kind;  /* cc_conn_kind_t */
    uint8_t state; /* cc_conn_state_t: change it with cc_conn_set_state() */
    size_t queued_bytes;
    /* Bytes are left behind and the socket last took some then; 0: drained. */
    int64_t stalled_since_us;
    int64_t closing_since_us;
    int64_t last_rx_us;
    int64_t opened_us;
    bool dirty : 1;
    bool room_wanted : 1; /* cc_conn_has_room() found the queue full */
    bool deflate : 1;     /* WebSocket: permessage-deflate was agreed */
    bool gzip : 1;        /* SSE: the response is Content-Encoding gzip */
    uint16_t answer_status;
    uint32_t sub_count;
    TAILQ_HEAD(, cc_sub) subs;
    struct cc_grant *grant; /* what its token grants; NULL until it has one (WebSocket) */
    /* The per-address table's copy of the client's address while it is
     * counted against push.max_connections_per_ip; NULL before. */
    const char *peer_ip;
    uint8_t *rx; /* a WebSocket message being assembled */
    size_t rx_len;
    union {
        cc_buf_t *answer;            /* HTTP and SSE, ANSWERING: the body */
        struct cc_ws_reader *reader; /* WebSocket over plain TCP: ws_read.c's, freed there */
    };
    TAILQ_ENTRY(cc_conn) link;
    TAILQ_ENTRY(cc_conn) dirty_link;
};

void cc_conns_init(cc_conns_t *conns, cc_metrics_t *metrics, cc_conn_limits_t limits,
                   void (*on_room)(cc_conn_t *conn));
void cc_conns_cleanup(cc_conns_t *conns);

cc_conn_t *cc_conn_new(cc_conns_t *conns, struct lws *wsi, cc_conn_kind_t kind,
                       const cc_conn_ops_t *ops, cc_conn_state_t state);
/* The connection is gone (lws closed it): its subscriptions are already
 * released by the transport. */
void cc_conn_free(cc_conn_t *conn);
void cc_conn_set_state(cc_conn_t *conn, cc_conn_state_t state);

/* Queues one item, taking both references. */
void cc_conn_push(cc_conn_t *conn, cc_buf_t *head, cc_buf_t *body, uint32_t flags);
/* Items queued: leave within the flush window. */
void cc_conn_wake(cc_conn_t *conn);
/* Forgets everything queued (a reset or a drop follows). */
void cc_conn_discard(cc_conn_t *conn);

/* The overload rule, in one place. True while the queue is under its
 * bound. Past it: if the socket is not taking bytes (a write left some
 * behind), the client is slow and is closed (slow_consumer, counted);
 * otherwise the server is behind and the caller stops queueing live
 * events for now (it replays from the ring when on_room comes). */
bool cc_conn_has_room(cc_conn_t *conn);
bool cc_conn_stalled(const cc_conn_t *conn);

/* Writes what is queued, flushing the dirty list's connections directly
 * where the socket is ours to write (plain TCP, nothing buffered by lws),
 * else at their writable callback. */
void cc_conns_flush(cc_conns_t *conns);
/* The writable callback of a streaming or closing connection; -1 to close. */
int cc_conn_on_writable(cc_conn_t *conn);
/* ANSWERING: writes the answer's body after the headers; -1: done, close. */
int cc_conn_write_answer(cc_conn_t *conn);

/* The one way a connection ends: logs the reason once; what is queued
 * still goes out (a reset, a close reason) if the socket takes it within a
 * second, then lws closes it. */
void cc_conn_close(cc_conn_t *conn, int ws_code, const char *reason);
/* Slow consumers stalled past push.stall_timeout_ms are closed, and
 * closing sockets that took no last words within a second are cut. */
void cc_conns_sweep(cc_conns_t *conns, int64_t now_us);

#endif
