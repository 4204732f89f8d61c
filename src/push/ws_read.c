/* SPDX-License-Identifier: Apache-2.0 */
/* push/ws_read (transports, below ws.c): a WebSocket's messages as they
 * arrive, assembled within push.max_message_bytes and handed to ws.c's
 * handler; and for a plain-TCP WebSocket the client frames, read by
 * changecast rather than lws, whose 4.1 reader accepts unmasked frames and
 * closes on a 2^64 - 1 length or an over-long control frame without a
 * close code. From the upgrade on, lws reads nothing (lws_rx_flow_control)
 * and an ev_io of the connection's own takes the bytes: each frame header
 * is checked (wsframe.c) before its payload is waited for, a text message
 * goes to cc_ws_handle_message, a ping is answered, a close is echoed, and
 * a broken rule closes with its code (docs/push-protocol.md). Writing stays
 * with conn.c. On end of stream or a socket error, lws reads again and
 * closes as it does for any socket. TLS connections keep lws's reader:
 * their bytes are lws's to decrypt. */
#include "encode.h"
#include "port.h"
#include "wsframe.h"

#include <errno.h>
#include <ev.h>
#include <string.h>
#include <sys/socket.h>

#define READ_BYTES (16 * 1024)

bool cc_ws_append(cc_port_t *port, cc_conn_t *conn, const void *bytes, size_t len, size_t announced)
{
    /* The frame's declared length counts, not what has arrived of it: a
     * header announcing 2^63 - 1 bytes is refused at its first bytes. */
    if (conn->rx_len + len > (size_t)port->options.max_message_bytes ||
        announced > (size_t)port->options.max_message_bytes - conn->rx_len - len) {
        cc_refusal_count(&port->metrics, CC_REFUSAL_MESSAGE_TOO_LARGE);
        cc_conn_close(conn, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        return false;
    }
    conn->rx = bson_realloc(conn->rx, conn->rx_len + len + 1);
    memcpy(conn->rx + conn->rx_len, bytes, len);
    conn->rx_len += len;
    return true;
}

void cc_ws_deliver(cc_port_t *port, cc_conn_t *conn, cc_ws_message_fn on_message)
{
    on_message(port, conn, conn->rx ? (const char *)conn->rx : "", conn->rx_len);
    /* Idle sockets keep no receive buffer. */
    bson_free(conn->rx);
    conn->rx = NULL;
    conn->rx_len = 0;
}

struct cc_ws_reader {
    ev_io io;
    cc_conn_t *conn;
    cc_ws_message_fn on_message;
    uint8_t *pending; /* the start of a frame not yet whole */
    size_t pending_len;
    bool in_message; /* a fragmented text message has begun */
    bool compressed; /* ...and its first frame had RSV1 */
};

/* Reads no more, and lets go of a frame not yet whole. */
static void stop_reading(struct cc_ws_reader *reader)
{
    cc_port_t *port = lws_context_user(lws_get_context(reader->conn->wsi));
    ev_io_stop(port->loop, &reader->io);
    bson_free(reader->pending);
    reader->pending = NULL;
    reader->pending_len = 0;
}

/* lws reads the socket again (and meets its end, or the close handshake). */
static void hand_back(struct cc_ws_reader *reader)
{
    stop_reading(reader);
    lws_rx_flow_control(reader->conn->wsi, 1);
}

static void refuse(struct cc_ws_reader *reader, uint16_t code, const char *why)
{
    cc_conn_t *conn = reader->conn;
    if (code == LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE) {
        cc_port_t *port = lws_context_user(lws_get_context(conn->wsi));
        cc_refusal_count(&port->metrics, CC_REFUSAL_MESSAGE_TOO_LARGE);
    }
    cc_conn_close(conn, code, why);
    hand_back(reader);
}

static void answer_ping(cc_conn_t *conn, const uint8_t *payload, size_t len)
{
    uint8_t header[CC_WS_HEADER_MAX];
    size_t header_len = cc_encode_ws_header(header, CC_WS_OP_PONG, len);
    cc_buf_t *pong = cc_buf_new(header_len + len);
    memcpy(pong->data, header, header_len);
    memcpy(pong->data + header_len, payload, len);
    cc_conn_push(conn, NULL, pong, 0);
    cc_conn_wake(conn);
}

/* A compressed message inflated in place of what arrived (from a fresh
 * state: client_no_context_takeover); false once the reader has refused
 * it. */
static bool inflate_message(struct cc_ws_reader *reader)
{
    cc_conn_t *conn = reader->conn;
    cc_port_t *port = lws_context_user(lws_get_context(conn->wsi));
    uint8_t *text;
    size_t len;
    switch (cc_deflate_inflate(conn->conns->deflate, conn->rx, conn->rx_len,
                               (size_t)port->options.max_message_bytes, &text, &len)) {
    case CC_INFLATE_OK:
        break;
    case CC_INFLATE_TOO_BIG:
        refuse(reader, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large once inflated");
        return false;
    case CC_INFLATE_CORRUPT:
        refuse(reader, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "compressed message does not inflate");
        return false;
    }
    bson_free(conn->rx);
    conn->rx = text;
    conn->rx_len = len;
    return true;
}

/* One whole, unmasked frame. */
static void handle_frame(struct cc_ws_reader *reader, const cc_ws_frame_t *frame, uint8_t *payload)
{
    cc_conn_t *conn = reader->conn;
    cc_port_t *port = lws_context_user(lws_get_context(conn->wsi));
    size_t len = (size_t)frame->payload_len;
    switch (frame->opcode) {
    case CC_WS_OP_PING:
        answer_ping(conn, payload, len);
        return;
    case CC_WS_OP_PONG:
        return; /* being read at all keeps the connection alive */
    case CC_WS_OP_CLOSE: {
        uint16_t broken = cc_ws_close_payload_check(payload, len);
        if (broken) {
            refuse(reader, broken, "malformed close frame");
            return;
        }
        /* Answered with the code it gave (RFC 6455 5.5.1), 1000 if none. */
        uint16_t code = (uint16_t)(len ? payload[0] << 8 | payload[1] : 1000);
        cc_conn_close(conn, code, "client_closed");
        hand_back(reader);
        return;
    }
    case 0x2:
        refuse(reader, LWS_CLOSE_STATUS_PROTOCOL_ERR, "binary frames are not accepted");
        return;
    default:
        break;
    }
    bool continuation = frame->opcode == 0x0;
    if (continuation != reader->in_message) {
        refuse(reader, LWS_CLOSE_STATUS_PROTOCOL_ERR,
               continuation ? "a continuation frame without a message"
                            : "a new message began before the last one ended");
        return;
    }
    if (!cc_ws_append(port, conn, payload, len, 0)) {
        hand_back(reader);
        return;
    }
    if (!continuation) {
        reader->compressed = frame->compressed;
    }
    reader->in_message = !frame->fin;
    if (frame->fin && reader->compressed && !inflate_message(reader)) {
        return;
    }
    if (frame->fin) {
        if (!bson_utf8_validate(conn->rx ? (const char *)conn->rx : "", conn->rx_len, true)) {
            refuse(reader, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "text is not UTF-8");
            return;
        }
        cc_ws_deliver(port, conn, reader->on_message);
    }
}

/* Handles every whole frame in bytes[0..len); returns how many bytes that
 * took, or -1 once the reader has handed the socket back. */
static ssize_t handle_frames(struct cc_ws_reader *reader, uint8_t *bytes, size_t len)
{
    cc_conn_t *conn = reader->conn;
    cc_port_t *port = lws_context_user(lws_get_context(conn->wsi));
    size_t at = 0;
    for (;;) {
        cc_ws_frame_t frame;
        uint16_t code;
        const char *why;
        size_t room = (size_t)port->options.max_message_bytes;
        room = conn->rx_len < room ? room - conn->rx_len : 0;
        switch (cc_ws_frame_parse(bytes + at, len - at, room, conn->deflate, &frame, &code, &why)) {
        case CC_WS_FRAME_INCOMPLETE:
            return (ssize_t)at;
        case CC_WS_FRAME_REFUSED:
            refuse(reader, code, why);
            return -1;
        case CC_WS_FRAME_OK:
            break;
        }
        if (len - at - frame.header_len < frame.payload_len) {
            return (ssize_t)at; /* its payload is still on the way */
        }
        uint8_t *payload = bytes + at + frame.header_len;
        cc_ws_unmask(payload, (size_t)frame.payload_len, frame.mask, 0);
        at += frame.header_len + (size_t)frame.payload_len;
        handle_frame(reader, &frame, payload);
        if (!ev_is_active(&reader->io)) {
            return -1;
        }
    }
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct cc_ws_reader *reader = (struct cc_ws_reader *)io;
    cc_conn_t *conn = reader->conn;
    uint8_t scratch[READ_BYTES];
    ssize_t n = recv(io->fd, scratch, sizeof scratch, 0);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            hand_back(reader);
        }
        return;
    }
    conn->last_rx_us = bson_get_monotonic_time();
    uint8_t *bytes = scratch;
    size_t len = (size_t)n;
    if (reader->pending_len) {
        reader->pending = bson_realloc(reader->pending, reader->pending_len + len);
        memcpy(reader->pending + reader->pending_len, scratch, len);
        bytes = reader->pending;
        len = reader->pending_len + len;
    }
    ssize_t used = handle_frames(reader, bytes, len);
    if (used < 0) {
        return;
    }
    size_t left = len - (size_t)used;
    if (bytes == reader->pending) {
        memmove(reader->pending, reader->pending + used, left);
        reader->pending_len = left;
        if (!left) {
            bson_free(reader->pending);
            reader->pending = NULL;
        }
    } else if (left) {
        reader->pending = bson_malloc(left);
        memcpy(reader->pending, bytes + used, left);
        reader->pending_len = left;
    }
}

void cc_ws_reader_start(cc_port_t *port, cc_conn_t *conn, cc_ws_message_fn on_message)
{
    struct cc_ws_reader *reader = bson_malloc0(sizeof *reader);
    reader->conn = conn;
    reader->on_message = on_message;
    conn->reader = reader;
    ev_io_init(&reader->io, on_readable, lws_get_socket_fd(conn->wsi), EV_READ);
    ev_io_start(port->loop, &reader->io);
    lws_rx_flow_control(conn->wsi, 0);
}

void cc_ws_reader_stop(cc_conn_t *conn)
{
    struct cc_ws_reader *reader = conn->reader;
    if (!reader) {
        return;
    }
    stop_reading(reader);
    bson_free(reader);
    conn->reader = NULL;
}
