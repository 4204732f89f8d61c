/* SPDX-License-Identifier: Apache-2.0 */
/* Noticing SSE clients that leave. libwebsockets 4.1 stops reading an
 * HTTP/1 connection once an event-stream response has begun, so when the
 * client closes (or sends anything more), its socket stays readable and
 * the poll loop spins at full CPU until a write fails. An epoll set of our
 * own, watching the SSE sockets for input and hangup, is adopted into the
 * lws loop as a raw file: it becomes readable exactly when some SSE client
 * has gone or sent bytes it has no business sending, and costs nothing
 * otherwise. Either way the connection is closed. */
#include "changecast/log.h"
#include "port.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

bool cc_hangup_init(cc_port_t *port, struct lws_vhost *vhost)
{
    port->hangup_fd = epoll_create1(EPOLL_CLOEXEC);
    if (port->hangup_fd < 0) {
        return false;
    }
    lws_sock_file_fd_type fd = {.filefd = port->hangup_fd};
    if (!lws_adopt_descriptor_vhost(vhost, LWS_ADOPT_RAW_FILE_DESC, fd, "changecast-hangup",
                                    NULL)) {
        close(port->hangup_fd);
        port->hangup_fd = -1;
        return false;
    }
    /* lws owns the descriptor now and closes it with the context. */
    port->hangup_owned_by_lws = true;
    return true;
}

void cc_hangup_watch(cc_port_t *port, cc_conn_t *conn)
{
    struct epoll_event event = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.ptr = conn};
    epoll_ctl(port->hangup_fd, EPOLL_CTL_ADD, lws_get_socket_fd(conn->wsi), &event);
}

void cc_hangup_unwatch(cc_port_t *port, cc_conn_t *conn)
{
    epoll_ctl(port->hangup_fd, EPOLL_CTL_DEL, lws_get_socket_fd(conn->wsi), NULL);
}

int cc_hangup_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    if (reason != LWS_CALLBACK_RAW_RX_FILE) {
        return 0;
    }
    cc_port_t *port = lws_context_user(lws_get_context(wsi));
    struct epoll_event events[64];
    int n = epoll_wait(port->hangup_fd, events, 64, 0);
    for (int i = 0; i < n; i++) {
        /* A watched connection is unwatched before it is freed, and this
         * runs on the push thread, so the pointer is live. */
        cc_conn_t *conn = events[i].data.ptr;
        char byte;
        bool gone = recv(lws_get_socket_fd(conn->wsi), &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
        cc_conn_close(conn, 0, gone ? "client_gone" : "client_sent_data");
    }
    return 0;
}

void cc_hangup_close(cc_port_t *port)
{
    if (port->hangup_fd >= 0 && !port->hangup_owned_by_lws) {
        close(port->hangup_fd);
        port->hangup_fd = -1;
    }
}
