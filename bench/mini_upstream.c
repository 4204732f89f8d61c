/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal MongoDB upstream for the wire benchmark: it answers hello as the
 * primary of a one-member replica set, find/aggregate with an empty cursor,
 * and every other OP_MSG with {ok: 1}. It does no work, so what a benchmark
 * measures through changecast is changecast's own cost.
 *   mini_upstream PORT     (0 picks one; prints "mini_upstream ready port=N") */
#include "wire/frame_buffer.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char self[64];
static bson_oid_t election_id;
static int32_t next_request_id = 1;
static int32_t connection_count;

static void hello_reply(bson_t *reply, bool legacy)
{
    bson_init(reply);
    BSON_APPEND_BOOL(reply, legacy ? "ismaster" : "isWritablePrimary", true);
    bson_t hosts;
    BSON_APPEND_ARRAY_BEGIN(reply, "hosts", &hosts);
    BSON_APPEND_UTF8(&hosts, "0", self);
    bson_append_array_end(reply, &hosts);
    BSON_APPEND_UTF8(reply, "setName", "rs0");
    BSON_APPEND_INT32(reply, "setVersion", 1);
    BSON_APPEND_BOOL(reply, "secondary", false);
    BSON_APPEND_UTF8(reply, "primary", self);
    BSON_APPEND_UTF8(reply, "me", self);
    BSON_APPEND_OID(reply, "electionId", &election_id);
    BSON_APPEND_INT32(reply, "maxBsonObjectSize", 16777216);
    BSON_APPEND_INT32(reply, "maxMessageSizeBytes", 48000000);
    BSON_APPEND_INT32(reply, "maxWriteBatchSize", 100000);
    BSON_APPEND_DATE_TIME(reply, "localTime", (int64_t)time(NULL) * 1000);
    BSON_APPEND_INT32(reply, "logicalSessionTimeoutMinutes", 30);
    BSON_APPEND_INT32(reply, "connectionId", ++connection_count);
    BSON_APPEND_INT32(reply, "minWireVersion", 0);
    BSON_APPEND_INT32(reply, "maxWireVersion", 21);
    BSON_APPEND_BOOL(reply, "readOnly", false);
    BSON_APPEND_DOUBLE(reply, "ok", 1.0);
}

static void cursor_reply(bson_t *reply, const char *db)
{
    char ns[256];
    snprintf(ns, sizeof ns, "%s.c", db);
    bson_init(reply);
    bson_t cursor, batch;
    BSON_APPEND_DOCUMENT_BEGIN(reply, "cursor", &cursor);
    BSON_APPEND_INT64(&cursor, "id", 0);
    BSON_APPEND_UTF8(&cursor, "ns", ns);
    BSON_APPEND_ARRAY_BEGIN(&cursor, "firstBatch", &batch);
    bson_append_array_end(&cursor, &batch);
    bson_append_document_end(reply, &cursor);
    BSON_APPEND_DOUBLE(reply, "ok", 1.0);
}

static void answer(struct bufferevent *bev, const cc_frame_header_t *request, const uint8_t *frame)
{
    cc_frame_header_t header = {.request_id = next_request_id++,
                                .response_to = request->request_id};
    bson_t reply, command;
    bson_error_t error;
    size_t len;
    uint8_t *out;

    if (request->opcode == CC_OPCODE_QUERY) {
        hello_reply(&reply, true);
        out = cc_reply_build(&header, 8, &reply, &len);
    } else {
        cc_op_msg_t msg;
        if (!cc_msg_parse(frame, (size_t)request->length, &msg, &error) ||
            !bson_init_static(&command, msg.body, msg.body_len)) {
            bufferevent_free(bev);
            return;
        }
        bson_iter_t iter;
        const char *name =
            bson_iter_init(&iter, &command) && bson_iter_next(&iter) ? bson_iter_key(&iter) : "";
        if (strcmp(name, "hello") == 0 || strcmp(name, "isMaster") == 0 ||
            strcmp(name, "ismaster") == 0) {
            hello_reply(&reply, strcmp(name, "hello") != 0);
        } else if (strcmp(name, "find") == 0 || strcmp(name, "aggregate") == 0) {
            const char *db =
                bson_iter_init_find(&iter, &command, "$db") ? bson_iter_utf8(&iter, NULL) : "test";
            cursor_reply(&reply, db);
        } else {
            bson_init(&reply);
            if (strcmp(name, "insert") == 0) {
                BSON_APPEND_INT32(&reply, "n", 1);
            }
            BSON_APPEND_DOUBLE(&reply, "ok", 1.0);
        }
        out = cc_msg_build(&header, 0, &reply, &len);
        if (msg.flags & CC_MSG_MORE_TO_COME) {
            bson_free(out);
            bson_destroy(&reply);
            return;
        }
    }
    bufferevent_write(bev, out, len);
    bson_free(out);
    bson_destroy(&reply);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *input = bufferevent_get_input(bev);
    for (;;) {
        cc_frame_header_t header;
        bson_error_t error;
        cc_frame_status_t status = cc_frame_buffer_next(input, CC_DEFAULT_MAX_MESSAGE_BYTES,
                                                        CC_FROM_CLIENT, &header, &error);
        if (status == CC_FRAME_INVALID) {
            bufferevent_free(bev);
            return;
        }
        if (status == CC_FRAME_INCOMPLETE) {
            return;
        }
        answer(bev, &header, evbuffer_pullup(input, header.length));
        evbuffer_drain(input, (size_t)header.length);
    }
}

static void on_event(struct bufferevent *bev, short events, void *arg)
{
    (void)arg;
    if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_free(bev);
    }
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *peer,
                      int peer_len, void *arg)
{
    (void)listener;
    (void)peer;
    (void)peer_len;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bufferevent *bev = bufferevent_socket_new(arg, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
    struct sockaddr_in address = {.sin_family = AF_INET};
    address.sin_port = htons((uint16_t)(argc > 1 ? atoi(argv[1]) : 0));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct event_base *base = event_base_new();
    struct evconnlistener *listener =
        evconnlistener_new_bind(base, on_accept, base, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                1024, (struct sockaddr *)&address, sizeof address);
    if (!listener) {
        perror("mini_upstream: listen");
        return 1;
    }
    socklen_t len = sizeof address;
    getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&address, &len);
    snprintf(self, sizeof self, "127.0.0.1:%u", ntohs(address.sin_port));
    bson_oid_init(&election_id, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct event *term = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *interrupt = evsignal_new(base, SIGINT, on_signal, base);
    evsignal_add(term, NULL);
    evsignal_add(interrupt, NULL);
    printf("mini_upstream ready port=%u\n", ntohs(address.sin_port));
    fflush(stdout);
    event_base_dispatch(base);
    event_free(term);
    event_free(interrupt);
    evconnlistener_free(listener);
    event_base_free(base);
    return 0;
}
