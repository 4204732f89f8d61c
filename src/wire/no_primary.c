/* SPDX-License-Identifier: Apache-2.0 */
/* A session without an upstream connection (no primary known, or
 * connecting to it failed) behaves as a mongos does while its shards are
 * unreachable: it answers handshakes at once, from the last reply a primary
 * gave, so drivers' monitors keep seeing an available router; and it holds
 * any other message up to primary_wait_ms, then answers it with a
 * retryable error, instead of closing the connection. Messages are served
 * strictly in order: a handshake behind a held message waits with it.
 * Sits above session.c; asks upstream.c to connect through wire->up. */
#include "changecast/log.h"
#include "frame.h"
#include "frame_buffer.h"
#include "handshake.h"
#include "wire_internal.h"

#include <event2/buffer.h>
#include <string.h>

/* The command of a whole OP_MSG frame, or of a legacy OP_QUERY on a
 * "<db>.$cmd" namespace, at the head of `input`; false for anything else.
 * It stays valid until input is drained. */
static bool head_command(struct evbuffer *input, const cc_frame_header_t *header, bson_t *command,
                         cc_op_msg_t *msg)
{
    const uint8_t *frame = evbuffer_pullup(input, header->length);
    bson_error_t error;
    if (header->opcode == CC_OPCODE_MSG) {
        return cc_msg_parse(frame, (size_t)header->length, msg, &error) &&
               bson_init_static(command, msg->body, msg->body_len);
    }
    cc_query_command_t parts;
    msg->flags = 0;
    return header->opcode == CC_OPCODE_QUERY &&
           cc_relay_query_command(frame, header, command, &parts, &error) == CC_COMMAND_FOUND;
}

static const char *command_name(const bson_t *command)
{
    bson_iter_t iter;
    return bson_iter_init(&iter, command) && bson_iter_next(&iter) ? bson_iter_key(&iter) : "";
}

/* A reply frame to `request` carrying `body`, in the request's own opcode. */
static void answer(cc_session_t *session, const cc_frame_header_t *request, const bson_t *body)
{
    cc_frame_header_t header = {.request_id = ++session->wire->next_reply_id,
                                .response_to = request->request_id};
    size_t len;
    uint8_t *frame;
    if (request->opcode == CC_OPCODE_MSG) {
        header.opcode = CC_OPCODE_MSG;
        frame = cc_msg_build(&header, 0, body, &len);
    } else {
        header.opcode = CC_OPCODE_REPLY;
        frame = cc_reply_build(&header, 0, body, &len);
    }
    evbuffer_drain(session->client_reader.input, (size_t)request->length);
    cc_session_answer(session, frame, len);
}

/* Answers the handshake at the head, if it is one changecast may answer. */
static bool answer_handshake(cc_session_t *session, const cc_frame_header_t *header)
{
    struct cc_wire *wire = session->wire;
    bson_t command;
    cc_op_msg_t msg;
    if (!wire->known_hello || !head_command(session->client_reader.input, header, &command, &msg) ||
        !cc_handshake_is_hello(command_name(&command)) || !cc_handshake_answerable(&command)) {
        return false;
    }
    bson_iter_t iter;
    bool load_balanced =
        bson_iter_init_find(&iter, &command, "loadBalanced") && bson_iter_as_bool(&iter);
    bson_t reply;
    cc_handshake_local_reply(&command, wire->known_hello, load_balanced, &wire->service_id,
                             (int64_t)session->id, &reply);
    answer(session, header, &reply);
    bson_destroy(&reply);
    cc_debug("conn=%llu event=handshake_answered reason=no_primary",
             (unsigned long long)session->id);
    return true;
}

/* The labels a mongos puts on an error it met reaching a shard, which
 * drivers act on (retryable-writes and transactions specs): a retryable
 * write, or a transaction's commit or abort, may be retried; any other
 * statement of a transaction means the whole transaction may be. */
static void append_labels(const bson_t *command, bson_t *reply)
{
    bson_iter_t iter;
    const char *name = command_name(command);
    bool ends_transaction =
        strcmp(name, "commitTransaction") == 0 || strcmp(name, "abortTransaction") == 0;
    bool in_transaction = bson_iter_init_find(&iter, command, "autocommit");
    bool retryable_write = bson_iter_init_find(&iter, command, "txnNumber") && !in_transaction;
    const char *label = ends_transaction || retryable_write ? "RetryableWriteError"
                        : in_transaction                    ? "TransientTransactionError"
                                                            : NULL;
    if (label) {
        bson_t labels;
        BSON_APPEND_ARRAY_BEGIN(reply, "errorLabels", &labels);
        BSON_APPEND_UTF8(&labels, "0", label);
        bson_append_array_end(reply, &labels);
    }
}

/* primary_wait_ms passed with a message held: it gets HostUnreachable,
 * the error a mongos gives when it cannot reach a shard's primary, which
 * drivers retry (retryable reads and writes specs). A message that expects
 * no reply, or that cannot be read, leaves the connection to close. */
static void refuse_held(cc_session_t *session)
{
    struct evbuffer *input = session->client_reader.input;
    cc_frame_header_t header;
    bson_error_t error;
    bson_t command;
    cc_op_msg_t msg;
    if (cc_frame_buffer_next(input, session->max_message_bytes, CC_FROM_CLIENT, &header, &error) !=
            CC_FRAME_HEADER_OK ||
        !head_command(input, &header, &command, &msg) || (msg.flags & CC_MSG_MORE_TO_COME) ||
        cc_handshake_is_hello(command_name(&command))) {
        /* A handshake that could not be answered (none known yet, or one
         * that authenticates) fails as a connection does: drivers retry. */
        cc_session_close(session, "no_primary", "no primary became known within primary_wait_ms");
        return;
    }
    bson_t reply = BSON_INITIALIZER;
    char message[160];
    snprintf(message, sizeof message,
             "changecast: no primary reachable within wire.primary_wait_ms (%lld ms)",
             (long long)session->wire->options.primary_wait_ms);
    BSON_APPEND_DOUBLE(&reply, "ok", 0.0);
    BSON_APPEND_UTF8(&reply, "errmsg", message);
    BSON_APPEND_INT32(&reply, "code", 6);
    BSON_APPEND_UTF8(&reply, "codeName", "HostUnreachable");
    append_labels(&command, &reply);
    cc_info("conn=%llu event=refused reason=no_primary command=%s", (unsigned long long)session->id,
            command_name(&command));
    answer(session, &header, &reply);
    bson_destroy(&reply);
}

static void on_held_too_long(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cc_session_t *session = arg;
    refuse_held(session);
    if (session->state == CC_SESSION_WAITING_PRIMARY) {
        /* The next message may find a primary (or a reachable one). */
        session->wire->up.connect(session);
    } else if (session->state == CC_SESSION_CONNECTING) {
        cc_waiting_serve(session);
    }
}

void cc_waiting_serve(cc_session_t *session)
{
    struct evbuffer *input = session->client_reader.input;
    for (;;) {
        cc_frame_header_t header;
        bson_error_t error;
        cc_frame_status_t status = cc_frame_buffer_next(input, session->max_message_bytes,
                                                        CC_FROM_CLIENT, &header, &error);
        if (status == CC_FRAME_INVALID) {
            cc_session_close(session, "frame_rejected", error.message);
            return;
        }
        if (status == CC_FRAME_INCOMPLETE) {
            cc_session_stop_waiting(session);
            break;
        }
        if (session->state != CC_SESSION_WAITING_PRIMARY || !answer_handshake(session, &header)) {
            /* Held: only its own wait is bounded, from when it came first. */
            if (!session->wait_timer) {
                session->wait_timer = evtimer_new(session->wire->base, on_held_too_long, session);
            }
            if (!evtimer_pending(session->wait_timer, NULL)) {
                struct timeval wait = cc_timeval_from_ms(session->wire->options.primary_wait_ms);
                evtimer_add(session->wait_timer, &wait);
            }
            break;
        }
        if (session->state == CC_SESSION_CLOSED) {
            return;
        }
    }
    cc_reader_consumed(&session->client_reader);
}
