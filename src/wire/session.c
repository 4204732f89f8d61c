/* SPDX-License-Identifier: Apache-2.0 */
/* A session pairs one client connection with one upstream connection to the
 * primary, like PgBouncer's session pooling: its life (the first-message and
 * message deadlines, connecting, letting an idle upstream go, closing) and
 * its two readers. Frames are read by their 16-byte header and moved whole,
 * without being re-encoded, to a staging evbuffer that is sent once per
 * read (socket_io.c); relay.c decides each frame's fate, and only
 * handshakes and their replies are rewritten. Cursors, sessions,
 * transactions and exhaust replies therefore pass untouched. */
#include "changecast/log.h"
#include "frame.h"
#include "frame_buffer.h"
#include "wire_internal.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <string.h>

static const char *state_names[] = {"awaiting_client", "waiting_primary", "connecting",
                                    "proxying",        "released",        "closed"};

/* An evbuffer high-water mark above which the reading side pauses, so a
 * slow reader never makes the proxy buffer without bound. */
#define CC_OUTPUT_HIGH_BYTES (4u * 1024 * 1024)

/* Input held before reading pauses: one largest frame plus a little. */
#define CC_INPUT_HIGH_BYTES (CC_DEFAULT_MAX_MESSAGE_BYTES + 1024)

static void on_client_event(struct bufferevent *bev, short events, void *arg);
static void on_upstream_event(struct bufferevent *bev, short events, void *arg);

static void free_session(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cc_session_t *session = arg;
    struct cc_wire *wire = session->wire;
    cc_reader_free(&session->client_reader);
    cc_reader_free(&session->upstream_reader);
    if (session->staged) {
        evbuffer_free(session->staged);
    }
    bson_free(session);
    wire->up.session_freed(wire);
}

void cc_session_close(cc_session_t *session, const char *reason, const char *detail)
{
    if (session->state == CC_SESSION_CLOSED) {
        return;
    }
    if (detail) {
        cc_info("conn=%llu event=closed reason=%s state=%s detail=\"%s\"",
                (unsigned long long)session->id, reason, state_names[session->state], detail);
    } else {
        cc_info("conn=%llu event=closed reason=%s state=%s", (unsigned long long)session->id,
                reason, state_names[session->state]);
    }
    session->state = CC_SESSION_CLOSED;
    TAILQ_REMOVE(&session->wire->sessions, session, link);
    cc_peers_release(session->wire->peers, session->peer_ip);
    if (session->wait_timer) {
        event_free(session->wait_timer);
    }
    if (session->deadline) {
        event_free(session->deadline);
    }
    /* bufferevent_free is safe inside the bufferevent's own callback: it
     * only drops a reference. The session itself is freed after the
     * current callback unwinds (libuv's close pattern). */
    cc_reader_stop(&session->client_reader);
    cc_reader_stop(&session->upstream_reader);
    if (session->client) {
        bufferevent_free(session->client);
    }
    cc_session_drop_upstream(session);
    event_base_once(session->wire->base, -1, EV_TIMEOUT, free_session, session, NULL);
}

void cc_session_drop_upstream(cc_session_t *session)
{
    if (session->upstream) {
        bufferevent_free(session->upstream);
        session->upstream = NULL;
        session->wire->stats.upstream_connections--;
    }
}

/* ---- deadlines: a socket that sends nothing whole costs a slot, never
 * an upstream connection, and not for long ---- */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cc_session_t *session = arg;
    struct cc_wire *wire = session->wire;
    if (session->state == CC_SESSION_AWAITING_CLIENT) {
        wire->stats.handshake_timeouts++;
        cc_session_close(session, "handshake_timeout",
                         "no whole first message within wire.handshake_timeout_ms");
        return;
    }
    if (session->client_reader.paused) {
        /* We stopped reading it (the upstream is slow to take bytes): the
         * rest of its message cannot arrive, and that is not its doing. */
        evtimer_add(session->deadline, wire->message_timeout);
        return;
    }
    wire->stats.message_timeouts++;
    cc_session_close(session, "message_timeout",
                     "a message was not whole within wire.message_timeout_ms");
}

static void arm_deadline(cc_session_t *session, const struct timeval *timeout)
{
    if (!session->deadline) {
        session->deadline = evtimer_new(session->wire->base, on_deadline, session);
    }
    evtimer_add(session->deadline, timeout);
}

static bool deadline_armed(const cc_session_t *session)
{
    return session->deadline && evtimer_pending(session->deadline, NULL);
}

static void disarm_deadline(cc_session_t *session)
{
    if (deadline_armed(session)) {
        evtimer_del(session->deadline);
    }
}

/* Between messages a connection may idle for ever, as on MongoDB; a
 * message that has started must arrive whole within message_timeout_ms. */
static void watch_partial_message(cc_session_t *session)
{
    bool partial = evbuffer_get_length(session->client_reader.input) > 0;
    if (partial && !deadline_armed(session)) {
        arm_deadline(session, session->wire->message_timeout);
    } else if (!partial) {
        disarm_deadline(session);
    }
}

/* A client proves itself with a whole first message (its hello) before
 * MongoDB is asked for a connection on its behalf. */
static bool first_message_arrived(cc_session_t *session)
{
    cc_frame_header_t header;
    bson_error_t error;
    switch (cc_frame_buffer_next(session->client_reader.input, session->max_message_bytes,
                                 CC_FROM_CLIENT, &header, &error)) {
    case CC_FRAME_INCOMPLETE:
        return false;
    case CC_FRAME_INVALID:
        cc_session_close(session, "frame_rejected", error.message);
        return false;
    default:
        disarm_deadline(session);
        return true;
    }
}

bool cc_session_idle(const cc_session_t *session)
{
    return session->replies_owed <= 0 &&
           (!session->client || evbuffer_get_length(bufferevent_get_output(session->client)) == 0);
}

static void close_if_drained(cc_session_t *session)
{
    if (session->wire->draining && session->state != CC_SESSION_CLOSED &&
        cc_session_idle(session)) {
        cc_session_close(session, "draining", NULL);
    }
}

/* Pauses reading from `from` while `to` holds too much unsent data. */
static void apply_backpressure(cc_reader_t *from, struct bufferevent *to)
{
    if (to && evbuffer_get_length(bufferevent_get_output(to)) > CC_OUTPUT_HIGH_BYTES) {
        cc_reader_pause(from);
    }
}

/* Sends what one pass of read_frames staged, in one write when it can. */
static void send_staged(cc_session_t *session, cc_frame_origin_t origin)
{
    bool to_upstream = origin == CC_FROM_CLIENT;
    struct bufferevent *to = to_upstream ? session->upstream : session->client;
    if (evbuffer_get_length(session->staged) == 0) {
        return;
    }
    if (session->state == CC_SESSION_CLOSED || !to) {
        evbuffer_drain(session->staged, evbuffer_get_length(session->staged));
        return;
    }
    /* Until the upstream is connected, its bufferevent holds what the
     * client sent and writes it once connected. */
    bool connected = !to_upstream || session->state == CC_SESSION_PROXYING;
    size_t staged = evbuffer_get_length(session->staged);
    *(to_upstream ? &session->wire->stats.bytes_to_upstream
                  : &session->wire->stats.bytes_to_clients) += staged;
    if (!cc_socket_send(to, session->staged, connected)) {
        /* What the bufferevent's own write would have reported. */
        (to_upstream ? on_upstream_event : on_client_event)(to, BEV_EVENT_WRITING | BEV_EVENT_ERROR,
                                                            session);
    }
}

/* The loop shared by both directions: whole frames only, stop on the first
 * incomplete one, close on the first invalid one. Forwarded frames are
 * staged and sent together at the end. */
typedef bool (*frame_handler_t)(cc_session_t *session, const cc_frame_header_t *header,
                                bson_error_t *error);

static void read_frames(cc_session_t *session, cc_reader_t *from, cc_frame_origin_t origin,
                        frame_handler_t handle)
{
    while (session->state == CC_SESSION_PROXYING) {
        cc_frame_header_t header;
        bson_error_t error;
        cc_frame_status_t status =
            cc_frame_buffer_next(from->input, session->max_message_bytes, origin, &header, &error);
        if (status == CC_FRAME_INCOMPLETE) {
            break;
        }
        if (status == CC_FRAME_INVALID || !handle(session, &header, &error)) {
            cc_session_close(
                session, origin == CC_FROM_CLIENT ? "frame_rejected" : "upstream_frame_rejected",
                error.message);
            break;
        }
    }
    cc_reader_consumed(from);
    send_staged(session, origin);
}

void cc_session_process_client(cc_session_t *session)
{
    switch (session->state) {
    case CC_SESSION_AWAITING_CLIENT:
        if (first_message_arrived(session)) {
            session->wire->up.connect(session);
        }
        return;
    case CC_SESSION_RELEASED:
        if (first_message_arrived(session)) {
            session->wire->up.connect(session);
        } else if (session->state == CC_SESSION_RELEASED) {
            watch_partial_message(session);
        }
        return;
    case CC_SESSION_WAITING_PRIMARY:
        session->wire->up.serve_waiting(session);
        return;
    case CC_SESSION_CONNECTING:
        return; /* the input waits for the connection */
    case CC_SESSION_PROXYING:
        read_frames(session, &session->client_reader, CC_FROM_CLIENT, cc_relay_client_frame);
        if (session->state == CC_SESSION_PROXYING) {
            apply_backpressure(&session->client_reader, session->upstream);
            watch_partial_message(session);
        }
        return;
    case CC_SESSION_CLOSED:
        return;
    }
}

void cc_session_stop_waiting(cc_session_t *session)
{
    if (session->wait_timer) {
        evtimer_del(session->wait_timer);
    }
}

void cc_session_answer(cc_session_t *session, uint8_t *frame, size_t len)
{
    evbuffer_add(session->staged, frame, len);
    bson_free(frame);
    send_staged(session, CC_FROM_SERVER);
}

static void on_upstream_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    cc_session_t *session = arg;
    read_frames(session, &session->upstream_reader, CC_FROM_SERVER, cc_relay_upstream_frame);
    if (session->state == CC_SESSION_CLOSED) {
        return;
    }
    apply_backpressure(&session->upstream_reader, session->client);
    close_if_drained(session);
}

static void on_client_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    cc_session_process_client(arg);
}

static void on_client_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cc_session_t *session = arg;
    if (cc_reader_read(&session->client_reader, session->wire->read_buffer,
                       sizeof session->wire->read_buffer, on_client_event, session)) {
        cc_session_process_client(session);
    }
}

static void on_upstream_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cc_session_t *session = arg;
    if (cc_reader_read(&session->upstream_reader, session->wire->read_buffer,
                       sizeof session->wire->read_buffer, on_upstream_event, session)) {
        on_upstream_read(session->upstream, session);
    }
}

/* Output drained: resume the side that was paused for it. */
static void on_client_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    cc_session_t *session = arg;
    if (session->close_when_flushed) {
        cc_session_close(session, "upstream_closed", NULL);
        return;
    }
    cc_reader_resume(&session->upstream_reader);
    close_if_drained(session);
}

static void on_upstream_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    cc_session_t *session = arg;
    cc_reader_resume(&session->client_reader);
}

static void on_client_event(struct bufferevent *bev, short events, void *arg)
{
    cc_session_t *session = arg;
    if (events & BEV_EVENT_CONNECTED) {
        return;
    }
    if (events & BEV_EVENT_EOF) {
        cc_session_close(session, "client_closed", NULL);
        return;
    }
    unsigned long ssl_error = bufferevent_get_openssl_error(bev);
    if (ssl_error) {
        char detail[256];
        ERR_error_string_n(ssl_error, detail, sizeof detail);
        cc_session_close(session, "client_tls_error", detail);
        return;
    }
    cc_session_close(session, "client_error", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void on_upstream_event(struct bufferevent *bev, short events, void *arg)
{
    cc_session_t *session = arg;
    if (events & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        bufferevent_set_timeouts(bev, NULL, NULL);
        session->state = CC_SESSION_PROXYING;
        if (!cc_reader_start(&session->upstream_reader, on_upstream_readable, session)) {
            cc_session_close(session, "upstream_connect_failed", "cannot start reading");
            return;
        }
        /* The local port lets an operator (and the tests) match this line
         * with the upstream's own log of the connection. */
        struct sockaddr_storage local;
        socklen_t local_len = sizeof local;
        char local_text[64] = "?";
        if (getsockname(bufferevent_getfd(bev), (struct sockaddr *)&local, &local_len) == 0) {
            cc_sockaddr_format((struct sockaddr *)&local, local_text, sizeof local_text);
        }
        cc_info("conn=%llu event=upstream_connected upstream=%s:%u local=%s",
                (unsigned long long)session->id, session->upstream_address.host,
                session->upstream_address.port, local_text);
        cc_session_stop_waiting(session);
        cc_session_process_client(session);
        return;
    }
    if (session->state == CC_SESSION_CONNECTING) {
        /* Nothing was sent yet: the session goes back to waiting, as a
         * mongos does when it cannot reach a shard, and its messages get
         * the next primary or, after primary_wait_ms, a retryable error. */
        unsigned long ssl_error = bufferevent_get_openssl_error(bev);
        char detail[400];
        if (ssl_error) {
            ERR_error_string_n(ssl_error, detail, sizeof detail);
        } else {
            snprintf(detail, sizeof detail, "%s:%u %s", session->upstream_address.host,
                     session->upstream_address.port,
                     events & BEV_EVENT_TIMEOUT
                         ? "timed out"
                         : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        }
        cc_warn("conn=%llu event=upstream_connect_failed detail=\"%s\" action=waiting",
                (unsigned long long)session->id, detail);
        cc_reader_reset(&session->upstream_reader);
        cc_session_drop_upstream(session);
        session->state = CC_SESSION_WAITING_PRIMARY;
        session->wire->up.serve_waiting(session);
        return;
    }
    /* Replies already received still reach the client before it is closed. */
    on_upstream_read(bev, session);
    if (session->state == CC_SESSION_CLOSED) {
        return;
    }
    if (cc_session_release_upstream(session, "upstream_lost")) {
        return;
    }
    cc_reader_stop(&session->upstream_reader);
    cc_session_drop_upstream(session);
    if (evbuffer_get_length(bufferevent_get_output(session->client)) == 0) {
        cc_session_close(session, "upstream_closed", NULL);
    } else {
        session->close_when_flushed = true;
        cc_reader_pause(&session->client_reader);
    }
}

bool cc_session_release_upstream(cc_session_t *session, const char *reason)
{
    /* Anything owed or unsent belongs to that connection: a reply, an
     * exhaust stream, a hello's rewrite, a fire-and-forget message. */
    if (session->state != CC_SESSION_PROXYING || session->authenticates ||
        session->replies_owed > 0 || session->pending_hellos || session->close_when_flushed ||
        evbuffer_get_length(bufferevent_get_output(session->upstream)) > 0) {
        return false;
    }
    cc_reader_reset(&session->upstream_reader);
    cc_session_drop_upstream(session);
    session->pending_writes = 0;
    session->state = CC_SESSION_RELEASED;
    cc_info("conn=%llu event=upstream_released reason=%s", (unsigned long long)session->id, reason);
    cc_session_process_client(session); /* a whole message may be waiting */
    return true;
}

bool cc_session_start_upstream(cc_session_t *session, struct bufferevent *upstream)
{
    session->upstream = upstream;
    session->wire->stats.upstream_connections++;
    session->state = CC_SESSION_CONNECTING;
    bufferevent_setcb(upstream, on_upstream_read, on_upstream_write, on_upstream_event, session);
    bufferevent_enable(upstream, EV_WRITE);
    /* A plain socket starts reading once connected (on_upstream_event). */
    if (!cc_reader_open(&session->upstream_reader, upstream, CC_INPUT_HIGH_BYTES) ||
        !cc_reader_start(&session->upstream_reader, on_upstream_readable, session)) {
        cc_session_close(session, "upstream_connect_failed", "cannot start reading");
        return false;
    }
    return true;
}

void cc_session_open(struct cc_wire *wire, evutil_socket_t fd, const struct sockaddr *peer,
                     const char *ip)
{
    cc_session_t *session = bson_malloc0(sizeof *session);
    session->wire = wire;
    session->id = ++wire->next_session_id;
    session->state = CC_SESSION_AWAITING_CLIENT;
    session->max_message_bytes = CC_DEFAULT_MAX_MESSAGE_BYTES;
    cc_sockaddr_format(peer, session->peer, sizeof session->peer);
    bson_strncpy(session->peer_ip, ip, sizeof session->peer_ip);

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (wire->client_tls) {
        session->client =
            bufferevent_openssl_socket_new(wire->base, fd, SSL_new(wire->client_tls),
                                           BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    } else {
        session->client = bufferevent_socket_new(wire->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    TAILQ_INSERT_TAIL(&wire->sessions, session, link);
    wire->session_count++;
    if (!session->client) {
        evutil_closesocket(fd);
        cc_session_close(session, "accept_failed", "cannot create bufferevent");
        return;
    }
    bufferevent_setcb(session->client, on_client_read, on_client_write, on_client_event, session);
    bufferevent_enable(session->client, EV_WRITE);
    session->staged = evbuffer_new();
    if (!session->staged ||
        !cc_reader_open(&session->client_reader, session->client, CC_INPUT_HIGH_BYTES) ||
        !cc_reader_start(&session->client_reader, on_client_readable, session)) {
        cc_session_close(session, "accept_failed", "cannot start reading");
        return;
    }
    cc_info("conn=%llu event=accepted peer=%s tls=%s", (unsigned long long)session->id,
            session->peer, wire->client_tls ? "true" : "false");
    arm_deadline(session, wire->handshake_timeout);
}
