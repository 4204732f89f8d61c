/* SPDX-License-Identifier: Apache-2.0 */
/* Request heads read ahead of lws (gate.h). A waiting socket is watched by
 * an ev_io of its own; while its head is incomplete, SO_RCVLOWAT is raised
 * past what has arrived, so the watcher wakes only for new bytes instead
 * of for the same ones again. */
#include "gate.h"

#include "changecast/hostport.h"
#include "changecast/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

/* lws's own limit for a head to arrive (its timeout_secs_ah_idle). */
#define HEAD_TIMEOUT_S 10.0
/* After a refusal, the client's rest is read and dropped this long, so
 * that closing with unread bytes (a reset) cannot destroy the answer. */
#define LINGER_S 2.0

typedef struct waiting {
    ev_io io;
    cc_gate_t *gate;
    ev_tstamp since;
    int lowat;     /* SO_RCVLOWAT in force (1: the kernel's default) */
    bool answered; /* refused: reading to the end, then closing */
    TAILQ_ENTRY(waiting) link;
} waiting_t;

struct cc_gate {
    cc_port_t *port;
    struct ev_loop *loop;
    struct lws_vhost *vhost;
    TAILQ_HEAD(, waiting) all;
    size_t count;
    char scratch[CC_HEAD_MAX_BYTES + 1];
};

static void on_readable(struct ev_loop *loop, ev_io *io, int revents);

cc_gate_t *cc_gate_new(cc_port_t *port, struct ev_loop *loop, struct lws_vhost *vhost)
{
    cc_gate_t *gate = bson_malloc0(sizeof *gate);
    gate->port = port;
    gate->loop = loop;
    gate->vhost = vhost;
    TAILQ_INIT(&gate->all);
    return gate;
}

static void forget(waiting_t *w)
{
    cc_gate_t *gate = w->gate;
    ev_io_stop(gate->loop, &w->io);
    TAILQ_REMOVE(&gate->all, w, link);
    gate->count--;
    bson_free(w);
}

static void drop(waiting_t *w)
{
    close(w->io.fd);
    forget(w);
}

void cc_gate_free(cc_gate_t *gate)
{
    if (!gate) {
        return;
    }
    while (!TAILQ_EMPTY(&gate->all)) {
        drop(TAILQ_FIRST(&gate->all));
    }
    bson_free(gate);
}

void cc_gate_take(cc_gate_t *gate, int accepted)
{
    /* Bounded like connections: a crowd of silent sockets costs a
     * descriptor each for HEAD_TIMEOUT_S at most. */
    if (gate->count >= (size_t)gate->port->options.max_connections) {
        cc_refusal_count(&gate->port->metrics, CC_REFUSAL_TOO_MANY_CONNECTIONS);
        return;
    }
    int fd = fcntl(accepted, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        cc_warn("event=accept_failed reason=\"%s\"", strerror(errno));
        return;
    }
    waiting_t *w = bson_malloc0(sizeof *w);
    w->gate = gate;
    w->since = ev_now(gate->loop);
    w->lowat = 1;
    ev_io_init(&w->io, on_readable, fd, EV_READ);
    ev_io_start(gate->loop, &w->io);
    TAILQ_INSERT_TAIL(&gate->all, w, link);
    gate->count++;
}

static void set_lowat(waiting_t *w, int bytes)
{
    if (w->lowat != bytes &&
        setsockopt(w->io.fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof bytes) == 0) {
        w->lowat = bytes;
    }
}

static void answer(waiting_t *w, cc_head_verdict_t verdict, size_t peeked)
{
    cc_gate_t *gate = w->gate;
    unsigned status;
    const char *reason, *code, *message;
    switch (verdict) {
    case CC_HEAD_URI_TOO_LONG:
        status = 414, reason = "URI Too Long", code = "uri_too_long";
        message = "the request line is longer than 6,144 bytes, or has more query arguments than "
                  "fit beside its header fields: a token belongs in the Authorization header, or "
                  "in a WebSocket message, not in the URL";
        break;
    case CC_HEAD_FIELDS_TOO_LARGE:
        status = 431, reason = "Request Header Fields Too Large", code = "headers_too_large";
        message = "the request's head is over 8,192 bytes, or has more than 64 header fields";
        break;
    default:
        status = 400, reason = "Bad Request", code = "bad_request";
        message = "the push port's endpoints take no request body (Content-Length above 0, or "
                  "Transfer-Encoding)";
        break;
    }
    char origin[256], cors[400] = "";
    if (cc_head_field(gate->scratch, peeked, "Origin", origin, sizeof origin) &&
        cc_access_origin_listed(gate->port, origin)) {
        snprintf(cors, sizeof cors,
                 "access-control-allow-origin: %s\r\naccess-control-allow-credentials: "
                 "true\r\nvary: Origin\r\n",
                 origin);
    }
    cc_buf_t *body = cc_http_error_body(gate->port, code, message);
    char head[1024];
    int head_len = snprintf(head, sizeof head,
                            "HTTP/1.1 %u %s\r\ncontent-type: application/json\r\ncontent-length: "
                            "%u\r\ncache-control: no-store\r\nconnection: close\r\n%s\r\n",
                            status, reason, (unsigned)body->len, cors);
    struct iovec parts[] = {{head, (size_t)head_len}, {body->data, body->len}};
    struct msghdr msg = {.msg_iov = parts, .msg_iovlen = 2};
    /* The socket has sent nothing yet: the answer fits its buffer. */
    ssize_t sent = sendmsg(w->io.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    cc_buf_unref(body);
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    char peer_text[INET6_ADDRSTRLEN] = "?";
    if (getpeername(w->io.fd, (struct sockaddr *)&peer, &peer_len) == 0) {
        cc_sockaddr_ip((struct sockaddr *)&peer, peer_text, sizeof peer_text);
    }
    cc_info("event=request_refused status=%u error=%s peer=%s", status, code, peer_text);
    if (sent < 0) {
        drop(w);
        return;
    }
    shutdown(w->io.fd, SHUT_WR);
    set_lowat(w, 1);
    w->answered = true;
    w->since = ev_now(gate->loop);
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    waiting_t *w = (waiting_t *)io;
    cc_gate_t *gate = w->gate;
    if (w->answered) {
        ssize_t n = recv(io->fd, gate->scratch, sizeof gate->scratch, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            drop(w);
        }
        return;
    }
    ssize_t n = recv(io->fd, gate->scratch, sizeof gate->scratch, MSG_PEEK);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            drop(w); /* gone before its request was whole */
        }
        return;
    }
    cc_head_verdict_t verdict = cc_head_check(gate->scratch, (size_t)n);
    if (verdict == CC_HEAD_INCOMPLETE) {
        set_lowat(w, (int)n + 1);
        return;
    }
    if (verdict != CC_HEAD_OK) {
        answer(w, verdict, (size_t)n);
        return;
    }
    set_lowat(w, 1);
    int fd = io->fd;
    forget(w);
    /* lws reads the socket from its first byte; on failure it closes it. */
    lws_adopt_socket_vhost(gate->vhost, fd);
}

void cc_gate_sweep(cc_gate_t *gate, ev_tstamp now)
{
    waiting_t *w, *next;
    for (w = TAILQ_FIRST(&gate->all); w; w = next) {
        next = TAILQ_NEXT(w, link);
        if (now - w->since >= (w->answered ? LINGER_S : HEAD_TIMEOUT_S)) {
            drop(w);
        }
    }
}
