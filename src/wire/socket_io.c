/* SPDX-License-Identifier: Apache-2.0 */
/* The plain-socket fast path of a session: how it reads a socket and how
 * it hands bytes to the other one. May call libevent only.
 *
 * libevent's socket bufferevent costs ~5 syscalls per forwarded message:
 * evbuffer_read asks FIONREAD before every readv, and adding to an output
 * buffer arms the write event, the write happens one loop iteration later,
 * and the event is disarmed again (two epoll_ctl). HAProxy needs ~2.5
 * (recv, send). So on a plain socket a session reads with its own
 * persistent read event and one recv, and writes what it forwards straight
 * to the destination socket when nothing is queued in front of it; only an
 * unsent remainder goes through the bufferevent's output, which then
 * flushes it (and reports its errors) as before. A TLS bufferevent keeps
 * doing both itself: its bytes must go through OpenSSL. */
#include "wire_internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

static bool is_plain(const cc_reader_t *reader)
{
    return !reader->tls;
}

bool cc_reader_open(cc_reader_t *reader, struct bufferevent *bev, size_t high_bytes)
{
    reader->bev = bev;
    reader->high_bytes = high_bytes;
    reader->tls = bufferevent_openssl_get_ssl(bev) != NULL;
    if (reader->tls) {
        bufferevent_setwatermark(bev, EV_READ, 0, high_bytes);
        reader->input = bufferevent_get_input(bev);
    } else {
        reader->input = evbuffer_new();
    }
    return reader->input != NULL;
}

bool cc_reader_start(cc_reader_t *reader, event_callback_fn on_readable, void *arg)
{
    if (!reader->bev) {
        return true;
    }
    if (!is_plain(reader)) {
        return reader->paused || bufferevent_enable(reader->bev, EV_READ) == 0;
    }
    evutil_socket_t fd = bufferevent_getfd(reader->bev);
    if (reader->event || fd < 0) {
        return true; /* already reading, or not connected yet */
    }
    reader->event =
        event_new(bufferevent_get_base(reader->bev), fd, EV_READ | EV_PERSIST, on_readable, arg);
    if (!reader->event) {
        return false;
    }
    return reader->paused || event_add(reader->event, NULL) == 0;
}

void cc_reader_pause(cc_reader_t *reader)
{
    reader->paused = true;
    if (!reader->bev) {
        return;
    }
    if (!is_plain(reader)) {
        bufferevent_disable(reader->bev, EV_READ);
    } else if (reader->event) {
        event_del(reader->event);
    }
}

void cc_reader_resume(cc_reader_t *reader)
{
    reader->paused = false;
    if (!reader->bev) {
        return;
    }
    if (!is_plain(reader)) {
        bufferevent_enable(reader->bev, EV_READ);
    } else if (reader->event && !reader->full) {
        event_add(reader->event, NULL);
    }
}

typedef enum cc_read_result {
    CC_READ_DATA,
    CC_READ_AGAIN, /* nothing to read now */
    CC_READ_EOF,
    CC_READ_ERROR, /* errno says why */
} cc_read_result_t;

static cc_read_result_t fill(cc_reader_t *reader, uint8_t *scratch, size_t scratch_bytes)
{
    /* The high-water mark bufferevent_setwatermark gives a TLS reader:
     * input that cannot be forwarded yet (no upstream) stays bounded. */
    size_t queued = evbuffer_get_length(reader->input);
    if (queued >= reader->high_bytes) {
        reader->full = true;
        event_del(reader->event);
        return CC_READ_AGAIN;
    }
    size_t room = reader->high_bytes - queued;
    /* recv into one scratch buffer, then copy: reserving space in the
     * input instead would pin a chain of scratch_bytes per small message
     * queued downstream (evbuffer_read sizes its chains with FIONREAD). */
    ssize_t n =
        recv(event_get_fd(reader->event), scratch, room < scratch_bytes ? room : scratch_bytes, 0);
    if (n > 0) {
        if (evbuffer_add(reader->input, scratch, (size_t)n) != 0) {
            errno = ENOMEM;
            return CC_READ_ERROR;
        }
        return CC_READ_DATA;
    }
    if (n == 0) {
        return CC_READ_EOF;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? CC_READ_AGAIN
                                                                     : CC_READ_ERROR;
}

bool cc_reader_read(cc_reader_t *reader, uint8_t *scratch, size_t scratch_bytes,
                    bufferevent_event_cb on_event, void *arg)
{
    switch (fill(reader, scratch, scratch_bytes)) {
    case CC_READ_DATA:
        return true;
    case CC_READ_AGAIN:
        return false;
    case CC_READ_EOF:
        on_event(reader->bev, BEV_EVENT_READING | BEV_EVENT_EOF, arg);
        return false;
    case CC_READ_ERROR:
        on_event(reader->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, arg);
        return false;
    }
    return false;
}

void cc_reader_consumed(cc_reader_t *reader)
{
    if (reader->full && evbuffer_get_length(reader->input) < reader->high_bytes) {
        reader->full = false;
        if (!reader->paused && reader->event) {
            event_add(reader->event, NULL);
        }
    }
}

void cc_reader_stop(cc_reader_t *reader)
{
    if (reader->event) {
        event_del(reader->event);
    }
    if (reader->tls) {
        reader->input = NULL; /* belongs to the bufferevent about to be freed */
    }
    reader->bev = NULL;
}

void cc_reader_free(cc_reader_t *reader)
{
    if (reader->event) {
        event_free(reader->event);
    }
    if (!reader->tls && reader->input) {
        evbuffer_free(reader->input);
    }
}

void cc_reader_reset(cc_reader_t *reader)
{
    cc_reader_stop(reader);
    cc_reader_free(reader);
    memset(reader, 0, sizeof *reader);
}

/* What one pass of a session stages is a few chains at most (one per
 * frame read); more goes out over two calls. */
#define CC_SEND_CHUNKS 8

/* send/sendmsg, not libevent's writev: a socket call skips the file
 * layer's write path (file position lock, fsnotify), which the profile of
 * 64 ping clients showed costing ~0.8 us per message more than HAProxy's
 * send. Returns what send returns; what was sent is drained. */
static ssize_t send_staged_bytes(int fd, struct evbuffer *staged)
{
    struct evbuffer_iovec chunks[CC_SEND_CHUNKS];
    int count = evbuffer_peek(staged, -1, NULL, chunks, CC_SEND_CHUNKS);
    if (count > CC_SEND_CHUNKS) {
        count = CC_SEND_CHUNKS;
    }
    ssize_t sent;
    if (count == 1) {
        sent = send(fd, chunks[0].iov_base, chunks[0].iov_len, MSG_NOSIGNAL);
    } else {
        struct iovec iov[CC_SEND_CHUNKS];
        for (int i = 0; i < count; i++) {
            iov[i] = (struct iovec){.iov_base = chunks[i].iov_base, .iov_len = chunks[i].iov_len};
        }
        struct msghdr message = {.msg_iov = iov, .msg_iovlen = (size_t)count};
        sent = sendmsg(fd, &message, MSG_NOSIGNAL);
    }
    if (sent > 0) {
        evbuffer_drain(staged, (size_t)sent);
    }
    return sent;
}

bool cc_socket_send(struct bufferevent *to, struct evbuffer *staged, bool connected)
{
    struct evbuffer *output = bufferevent_get_output(to);
    /* Bytes for one socket are never reordered: anything already queued
     * in the output goes first, so the staged bytes queue behind it. */
    if (connected && evbuffer_get_length(output) == 0 && !bufferevent_openssl_get_ssl(to)) {
        if (send_staged_bytes(bufferevent_getfd(to), staged) < 0 && errno != EAGAIN &&
            errno != EWOULDBLOCK && errno != EINTR) {
            int error = errno;
            evbuffer_drain(staged, evbuffer_get_length(staged));
            errno = error;
            return false;
        }
    }
    if (evbuffer_get_length(staged) > 0) {
        evbuffer_add_buffer(output, staged);
    }
    return true;
}
