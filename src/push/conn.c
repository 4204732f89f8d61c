/* SPDX-License-Identifier: Apache-2.0 */
/* A connection's queue of references and the one write path. The cost of
 * a delivery is the syscall and the TCP segment, not our code, so every
 * item queued for one connection leaves in one writev() (plain TCP) or one
 * gathered lws_write() (TLS), and a flush window lets events of a few
 * milliseconds leave together. A plain socket is written directly, from
 * the flush timer, without a round trip through lws's writable callback
 * (which costs two epoll_ctl calls per write); lws is asked for that
 * callback only when it holds bytes of its own or the socket is full.
 *
 * lws must never hold half of one of our frames while it writes one of its
 * own (a pong, a close): when a writev stops inside an item, the rest of
 * that item is handed to lws_write(), which sends or buffers it and always
 * drains it before anything else. So lws buffers at most one item per
 * connection, and our queue never starts with a partial item. */
#include "conn.h"
#include "encode.h"

#include "changecast/log.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define TLS_GATHER_BYTES (64 * 1024)
#define WRITE_ROUNDS 4 /* writes per connection per turn, so one cannot hold the loop */
#define MAX_IOV 1024   /* Linux UIO_MAXIOV */
#define CLOSE_GRACE_US (1000 * 1000) /* for last words to a closing socket */
/* A full queue drops its connection only once the socket has taken no
 * byte for this long: a reader that is slow for a moment (a partial write,
 * its receive buffer full while it catches up) is paused, not dropped. */
#define STOPPED_US (1000 * 1000)

static const char *const state_names[] = {"awaiting_snapshot", "headers", "streaming", "answering",
                                          "closing"};

static cc_buf_t *slow_reset_sse;

void cc_conns_init(cc_conns_t *conns, cc_metrics_t *metrics, cc_conn_limits_t limits,
                   void (*on_room)(cc_conn_t *conn))
{
    memset(conns, 0, sizeof *conns);
    TAILQ_INIT(&conns->all);
    TAILQ_INIT(&conns->dirty);
    conns->metrics = metrics;
    conns->limits = limits;
    conns->on_room = on_room;
    if (!slow_reset_sse) {
        bson_t fields = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&fields, "reason", "slow_consumer");
        BSON_APPEND_UTF8(&fields, "message",
                         "the client stopped reading while more than push.max_queue_bytes waited "
                         "for it");
        slow_reset_sse = cc_encode_sse_notice("reset", NULL, &fields);
        bson_destroy(&fields);
    }
}

void cc_conns_cleanup(cc_conns_t *conns)
{
    bson_free(conns->scratch);
    conns->scratch = NULL;
}

cc_conn_t *cc_conn_new(cc_conns_t *conns, struct lws *wsi, cc_conn_kind_t kind,
                       const cc_conn_ops_t *ops, cc_conn_state_t state)
{
    cc_conn_t *conn = bson_malloc0(sizeof *conn);
    conn->conns = conns;
    conn->wsi = wsi;
    conn->ops = ops;
    conn->kind = (uint8_t)kind;
    conn->state = (uint8_t)state;
    conn->id = ++conns->next_id;
    conn->last_rx_us = conn->opened_us = bson_get_monotonic_time();
    TAILQ_INIT(&conn->subs);
    TAILQ_INSERT_TAIL(&conns->all, conn, link);
    conns->count[kind]++;
    if (kind != CC_CONN_HTTP && conns->limits.unsent_bytes > 0) {
        /* A client that stops reading then holds its receive window and
         * this much, not the megabytes the kernel would let its send
         * buffer grow to: until a stopped socket is full, every write to
         * it is CPU the readers wait for. In-flight bytes are not
         * counted, so a fast reader far away is not slowed. */
        int unsent = conns->limits.unsent_bytes;
        setsockopt(lws_get_socket_fd(wsi), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &unsent, sizeof unsent);
    }
    return conn;
}

static cc_item_t *item_at(const cc_conn_t *conn, uint32_t i)
{
    return &conn->items[(conn->first + i) % conn->capacity];
}

/* An item as it goes on the wire: a prefix made here (the WebSocket frame
 * header and, for a compressed message, the stored block that carries its
 * head), the head, and the body or its shared compressed form. */
typedef struct item_wire {
    uint8_t prefix[CC_WS_HEADER_MAX + CC_DEFLATE_STORED_HEADER];
    size_t prefix_len;
    const char *head;
    size_t head_len;
    const char *body;
    size_t body_len;
} item_wire_t;

static size_t item_wire(const cc_item_t *item, item_wire_t *wire)
{
    wire->head = item->head ? item->head->data : NULL;
    wire->head_len = item->head ? item->head->len : 0;
    wire->body = item->body->data;
    wire->body_len = item->body->len;
    wire->prefix_len = 0;
    if (item->flags & CC_ITEM_WS_DEFLATED) {
        /* The message leaves off the sync flush's 00 00 ff ff (RFC 7692). */
        const cc_buf_t *deflated = item->body->deflated;
        wire->body = deflated->data;
        wire->body_len = deflated->len - 4;
        size_t stored = wire->head_len ? CC_DEFLATE_STORED_HEADER : 0;
        wire->prefix_len = cc_encode_ws_header(wire->prefix, CC_WS_OP_TEXT | CC_WS_RSV1,
                                               stored + wire->head_len + wire->body_len);
        if (stored) {
            wire->prefix_len +=
                cc_deflate_stored_header(wire->prefix + wire->prefix_len, wire->head_len);
        }
    } else if (item->flags & CC_ITEM_WS_TEXT) {
        wire->prefix_len =
            cc_encode_ws_header(wire->prefix, CC_WS_OP_TEXT, wire->head_len + wire->body_len);
    } else if (item->flags & CC_ITEM_GZIP_DEFLATED) {
        /* In a gzip stream the sync flush stays: the next event's blocks
         * follow it. (SSE items have no head.) */
        wire->body = item->body->deflated->data;
        wire->body_len = item->body->deflated->len;
    } else if (item->flags & CC_ITEM_GZIP_STORED) {
        wire->prefix_len = cc_deflate_stored_header(wire->prefix, wire->body_len);
    }
    return wire->prefix_len + wire->head_len + wire->body_len;
}

static size_t item_len(const cc_item_t *item)
{
    item_wire_t wire;
    return item_wire(item, &wire);
}

/* Copies the item's wire bytes to `at`; returns the byte after them. */
static uint8_t *put_item(uint8_t *at, const item_wire_t *wire)
{
    memcpy(at, wire->prefix, wire->prefix_len);
    at += wire->prefix_len;
    if (wire->head_len) {
        memcpy(at, wire->head, wire->head_len);
        at += wire->head_len;
    }
    memcpy(at, wire->body, wire->body_len);
    return at + wire->body_len;
}

static void pop(cc_conn_t *conn)
{
    cc_item_t *item = item_at(conn, 0);
    conn->queued_bytes -= item_len(item);
    cc_buf_unref(item->head);
    cc_buf_unref(item->body);
    conn->first = (conn->first + 1) % conn->capacity;
    if (--conn->count == 0) {
        /* Idle subscribers are most subscribers: an empty queue holds
         * nothing (one allocation per burst is nothing next to a write). */
        bson_free(conn->items);
        conn->items = NULL;
        conn->first = conn->capacity = 0;
        conn->conns->queues--;
    }
}

void cc_conn_discard(cc_conn_t *conn)
{
    while (conn->count) {
        pop(conn);
    }
}

void cc_conn_free(cc_conn_t *conn)
{
    cc_conns_t *conns = conn->conns;
    cc_conn_discard(conn);
    if (conn->dirty) {
        TAILQ_REMOVE(&conns->dirty, conn, dirty_link);
    }
    TAILQ_REMOVE(&conns->all, conn, link);
    conns->count[conn->kind]--;
    conns->freed_since_trim++;
    if (conn->kind != CC_CONN_WS) {
        cc_buf_unref(conn->answer);
    }
    bson_free(conn->rx);
    bson_free(conn);
}

void cc_conn_set_state(cc_conn_t *conn, cc_conn_state_t state)
{
    if (conn->state == state) {
        return;
    }
    cc_debug("push_conn=%llu event=conn_state from=%s to=%s", (unsigned long long)conn->id,
             state_names[conn->state], state_names[state]);
    conn->state = (uint8_t)state;
}

/* The body compressed once, by the first connection that needs it. */
static bool deflated(cc_conn_t *conn, cc_buf_t *body)
{
    if (!body->deflated && conn->conns->deflate) {
        body->deflated = cc_deflate_compress(conn->conns->deflate, body->data, body->len);
        conn->conns->metrics->compressions += body->deflated != NULL;
    }
    return body->deflated && body->deflated->len > 4;
}

#define ITEM_DROPPED UINT32_MAX

/* How an item goes out on this connection, decided once when it is queued
 * (its length must not change while it waits); ITEM_DROPPED if it cannot. */
static uint32_t compression(cc_conn_t *conn, const cc_buf_t *head, cc_buf_t *body, uint32_t flags)
{
    bool large = body->len >= CC_DEFLATE_MIN_BYTES;
    if (conn->deflate && (flags & CC_ITEM_WS_TEXT) && large &&
        (!head || head->len <= CC_DEFLATE_STORED_MAX) && deflated(conn, body)) {
        return flags | CC_ITEM_WS_DEFLATED;
    }
    if (conn->gzip && !(flags & CC_ITEM_RAW)) {
        BSON_ASSERT(!head); /* SSE renderings are whole */
        if (large && deflated(conn, body)) {
            return flags | CC_ITEM_GZIP_DEFLATED;
        }
        if (body->len <= CC_DEFLATE_STORED_MAX) {
            return flags | CC_ITEM_GZIP_STORED;
        }
        /* zlib failed on a large body: the stream cannot go on. */
        cc_conn_close(conn, 0, "compression_failed");
        return ITEM_DROPPED;
    }
    return flags;
}

void cc_conn_push(cc_conn_t *conn, cc_buf_t *head, cc_buf_t *body, uint32_t flags)
{
    flags = compression(conn, head, body, flags);
    if (flags == ITEM_DROPPED) {
        cc_buf_unref(head);
        cc_buf_unref(body);
        return;
    }
    if (conn->count == conn->capacity) {
        uint32_t capacity = conn->capacity ? conn->capacity * 2 : 8;
        cc_item_t *items = bson_malloc(capacity * sizeof *items);
        for (uint32_t i = 0; i < conn->count; i++) {
            items[i] = *item_at(conn, i);
        }
        if (!conn->items) {
            conn->conns->queues++;
        }
        bson_free(conn->items);
        conn->items = items;
        conn->first = 0;
        conn->capacity = capacity;
    }
    cc_item_t *item = &conn->items[(conn->first + conn->count++) % conn->capacity];
    *item = (cc_item_t){head, body, flags};
    conn->queued_bytes += item_len(item);
}

void cc_conn_wake(cc_conn_t *conn)
{
    if (!conn->dirty && conn->state == CC_CONN_STREAMING) {
        conn->dirty = true;
        TAILQ_INSERT_TAIL(&conn->conns->dirty, conn, dirty_link);
    }
}

bool cc_conn_stalled(const cc_conn_t *conn)
{
    return conn->stalled_since_us != 0;
}

static void drop_slow(cc_conn_t *conn)
{
    conn->conns->metrics->drops_slow_consumer++;
    cc_conn_discard(conn);
    if (conn->kind == CC_CONN_SSE && conn->state == CC_CONN_STREAMING) {
        cc_conn_push(conn, NULL, cc_buf_ref(slow_reset_sse), 0);
    }
    cc_conn_close(conn, 1013, "slow_consumer");
}

/* Bytes wait and the socket has taken none of them for STOPPED_US: the
 * one test for a client that stopped reading. */
static bool socket_stopped(const cc_conn_t *conn, int64_t now_us)
{
    return cc_conn_stalled(conn) && now_us - conn->stalled_since_us >= STOPPED_US;
}

bool cc_conn_has_room(cc_conn_t *conn)
{
    if (conn->state == CC_CONN_CLOSING) {
        return false;
    }
    if (conn->queued_bytes < conn->conns->limits.max_queue_bytes) {
        conn->room_wanted = false;
        return true;
    }
    conn->room_wanted = true; /* the sweep asks again if no event does */
    if (socket_stopped(conn, bson_get_monotonic_time())) {
        drop_slow(conn);
    }
    return false;
}

void cc_conn_close(cc_conn_t *conn, int ws_code, const char *reason)
{
    if (conn->state == CC_CONN_CLOSING) {
        return;
    }
    cc_info("push_conn=%llu event=dropped reason=%s", (unsigned long long)conn->id, reason);
    cc_conn_set_state(conn, CC_CONN_CLOSING);
    conn->closing_since_us = bson_get_monotonic_time();
    conn->close_code = (uint16_t)ws_code;
    conn->close_reason = reason;
    lws_callback_on_writable(conn->wsi);
}

/* The bytes of the queue's head item from `skip` on, as one buffer lws
 * can send or keep (LWS_PRE of headroom before them). */
static int hand_rest_to_lws(cc_conn_t *conn, size_t skip)
{
    item_wire_t wire;
    size_t len = item_wire(item_at(conn, 0), &wire);
    uint8_t *copy = bson_malloc(LWS_PRE + len);
    put_item(copy + LWS_PRE, &wire);
    /* LWS_WRITE_HTTP is lws's raw write, also on a WebSocket: the frame
     * is complete, lws must not frame it again. */
    int written = lws_write(conn->wsi, copy + LWS_PRE + skip, len - skip, LWS_WRITE_HTTP);
    bson_free(copy);
    pop(conn);
    return written < 0 ? -1 : 0;
}

/* One writev of as much of the queue as the socket takes. 1: all of it
 * went out; 0: the socket is full; -1: the socket failed. */
static int write_plain(cc_conn_t *conn)
{
    struct iovec iov[MAX_IOV];
    /* Every item takes at least one iovec, so at most MAX_IOV prefixes. */
    uint8_t prefixes[MAX_IOV][sizeof(((item_wire_t *)0)->prefix)];
    int n = 0;
    uint32_t items = 0;
    size_t offered = 0;
    while (items < conn->count && n + 3 <= MAX_IOV) {
        item_wire_t wire;
        offered += item_wire(item_at(conn, items), &wire);
        if (wire.prefix_len) {
            memcpy(prefixes[items], wire.prefix, wire.prefix_len);
            iov[n++] = (struct iovec){prefixes[items], wire.prefix_len};
        }
        if (wire.head_len) {
            iov[n++] = (struct iovec){(void *)(uintptr_t)wire.head, wire.head_len};
        }
        iov[n++] = (struct iovec){(void *)(uintptr_t)wire.body, wire.body_len};
        items++;
    }
    conn->conns->metrics->writes++;
    ssize_t sent = writev(lws_get_socket_fd(conn->wsi), iov, n);
    if (sent < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    }
    size_t left = (size_t)sent;
    while (conn->count) {
        size_t len = item_len(item_at(conn, 0));
        if (left < len) {
            break;
        }
        left -= len;
        pop(conn);
    }
    if ((size_t)sent == offered) {
        return 1;
    }
    if (left && hand_rest_to_lws(conn, left) < 0) {
        return -1;
    }
    return 0;
}

/* TLS: whole items gathered into one record-sized buffer, then lws_write
 * (lws keeps what the socket does not take, at most this much). */
static int write_tls(cc_conn_t *conn)
{
    cc_conns_t *conns = conn->conns;
    size_t len = 0;
    uint32_t items = 0;
    while (items < conn->count) {
        item_wire_t wire;
        size_t item = item_wire(item_at(conn, items), &wire);
        if (items && len + item > TLS_GATHER_BYTES) {
            break;
        }
        if (LWS_PRE + len + item > conns->scratch_cap) {
            conns->scratch_cap = LWS_PRE + len + item + TLS_GATHER_BYTES;
            conns->scratch = bson_realloc(conns->scratch, conns->scratch_cap);
        }
        put_item(conns->scratch + LWS_PRE + len, &wire);
        len += item;
        items++;
    }
    conns->metrics->writes++;
    if (lws_write(conn->wsi, conns->scratch + LWS_PRE, len, LWS_WRITE_HTTP) < (int)len) {
        return -1;
    }
    while (items--) {
        pop(conn);
    }
    return lws_partial_buffered(conn->wsi) ? 0 : 1;
}

/* One write of the queue's head, by the socket's kind. */
static int write_once(cc_conn_t *conn)
{
    return lws_is_ssl(conn->wsi) ? write_tls(conn) : write_plain(conn);
}

/* Writes up to WRITE_ROUNDS times while the socket takes everything and
 * the layer above has more; -1 to close. */
static int write_queue(cc_conn_t *conn, bool in_callback)
{
    bool tls = lws_is_ssl(conn->wsi);
    if (conn->queued_bytes < conn->conns->limits.max_queue_bytes &&
        conn->state == CC_CONN_STREAMING) {
        conn->conns->on_room(conn);
    }
    for (int round = 0; conn->count && round < WRITE_ROUNDS; round++) {
        if (lws_partial_buffered(conn->wsi) || (tls && !in_callback)) {
            lws_callback_on_writable(conn->wsi); /* lws drains its bytes first */
            return 0;
        }
        size_t before = conn->queued_bytes;
        int done = write_once(conn);
        if (done < 0) {
            return -1;
        }
        if (!done) {
            conn->conns->metrics->partial_writes++;
            /* The clock restarts whenever the socket takes bytes: only a
             * socket that takes none stays stalled long enough to drop. */
            if (!conn->stalled_since_us || conn->queued_bytes < before) {
                conn->stalled_since_us = bson_get_monotonic_time();
            }
            lws_callback_on_writable(conn->wsi);
            return 0;
        }
        conn->stalled_since_us = 0;
        if (conn->state == CC_CONN_STREAMING &&
            conn->queued_bytes < conn->conns->limits.max_queue_bytes) {
            conn->conns->on_room(conn);
        }
        in_callback = false;
    }
    if (conn->count) {
        lws_callback_on_writable(conn->wsi); /* more next turn */
    }
    return 0;
}

void cc_conns_flush(cc_conns_t *conns)
{
    cc_conn_t *conn;
    while ((conn = TAILQ_FIRST(&conns->dirty))) {
        TAILQ_REMOVE(&conns->dirty, conn, dirty_link);
        conn->dirty = false;
        if (conn->state != CC_CONN_STREAMING) {
            continue;
        }
        if (write_queue(conn, false) < 0) {
            cc_conn_close(conn, 0, "write_failed");
        }
    }
}

int cc_conn_on_writable(cc_conn_t *conn)
{
    if (conn->state == CC_CONN_CLOSING) {
        /* Last words (a reset) if the socket takes them now; then close. */
        if (conn->count && !lws_partial_buffered(conn->wsi)) {
            write_once(conn);
        }
        if (conn->kind == CC_CONN_WS && conn->close_code) {
            lws_close_reason(conn->wsi, (enum lws_close_status)conn->close_code,
                             (unsigned char *)conn->close_reason, strlen(conn->close_reason));
        }
        return -1;
    }
    if (conn->state != CC_CONN_STREAMING) {
        return 0;
    }
    if (conn->dirty) {
        TAILQ_REMOVE(&conn->conns->dirty, conn, dirty_link);
        conn->dirty = false;
    }
    return write_queue(conn, true);
}

int cc_conn_write_answer(cc_conn_t *conn)
{
    cc_buf_t *body = conn->answer;
    uint8_t *copy = bson_malloc(LWS_PRE + body->len);
    memcpy(copy + LWS_PRE, body->data, body->len);
    lws_write(conn->wsi, copy + LWS_PRE, body->len, LWS_WRITE_HTTP_FINAL);
    bson_free(copy);
    return -1; /* answered; lws closes (we keep no HTTP/1.1 connection alive) */
}

void cc_conns_sweep(cc_conns_t *conns, int64_t now_us)
{
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &conns->all, link)
    {
        /* A full queue that an event found without room, and whose socket
         * stopped, is dropped here too: no new event may come to ask
         * cc_conn_has_room() again. (format=docs states never ask: they
         * wait conflated, and their subscriber is not dropped.) */
        bool full = conn->room_wanted && conn->queued_bytes >= conns->limits.max_queue_bytes;
        bool stall_expired = cc_conn_stalled(conn) && now_us - conn->stalled_since_us >
                                                          conns->limits.stall_timeout_ms * 1000;
        if (conn->state == CC_CONN_STREAMING &&
            (stall_expired || (full && socket_stopped(conn, now_us)))) {
            drop_slow(conn);
        } else if (conn->state == CC_CONN_CLOSING &&
                   now_us - conn->closing_since_us > CLOSE_GRACE_US) {
            /* A socket that never became writable again (a client that
             * stopped reading) would hold its descriptor, its kernel
             * buffers and what lws keeps to flush before closing, for as
             * long as the client stays. lws's own flush timeout rides on
             * a timer that may not fire without I/O (docs/architecture.md),
             * so the socket is cut: shut down, lws sees the hangup at the
             * next poll and frees it; close then resets it (linger 0)
             * instead of leaving the kernel retrying unsent bytes. */
            int fd = lws_get_socket_fd(conn->wsi);
            struct linger reset = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
            shutdown(fd, SHUT_RDWR);
        }
    }
}
