/* SPDX-License-Identifier: Apache-2.0 */
/* wire/relay: what happens to one whole frame on its way through a
 * session. Everything but a handshake is moved untouched to the session's
 * staging buffer (a command is only peeked at: its name, for handshakes,
 * authentication and the write clock); a client's hello is rewritten for
 * the upstream and its reply rewritten back, so that the client sees one
 * router (handshake.c). Below session.c: a frame it cannot take is
 * reported, and the session closes. */
#include "frame.h"
#include "frame_buffer.h"
#include "handshake.h"
#include "wire_internal.h"

#include <event2/buffer.h>
#include <string.h>

static bool remember_hello(cc_session_t *session, int32_t reply_to, bool load_balanced)
{
    if (session->pending_hellos == CC_PENDING_HELLOS) {
        return false;
    }
    session->pending_hello_ids[session->pending_hellos] = reply_to;
    session->pending_hello_load_balanced[session->pending_hellos] = load_balanced;
    session->pending_hellos++;
    return true;
}

/* Finds and removes the pending hello a reply answers; -1 when none. */
static int take_hello(cc_session_t *session, int32_t response_to, bool *load_balanced)
{
    for (size_t i = 0; i < session->pending_hellos; i++) {
        if (session->pending_hello_ids[i] == response_to) {
            *load_balanced = session->pending_hello_load_balanced[i];
            session->pending_hellos--;
            session->pending_hello_ids[i] = session->pending_hello_ids[session->pending_hellos];
            session->pending_hello_load_balanced[i] =
                session->pending_hello_load_balanced[session->pending_hellos];
            return (int)i;
        }
    }
    return -1;
}

static bool send_rewritten_request(cc_session_t *session, const cc_frame_header_t *header,
                                   uint8_t *frame, size_t len, bool load_balanced,
                                   bson_error_t *error)
{
    if (!remember_hello(session, header->request_id, load_balanced)) {
        bson_free(frame);
        bson_set_error(error, 0, 0, "too many handshakes in flight");
        return false;
    }
    session->handshake_seen = true;
    evbuffer_add(session->staged, frame, len);
    bson_free(frame);
    return true;
}

/* The client's hello as OP_MSG: forwarded with the proxy-only fields taken
 * out, its reply to be rewritten on the way back. */
static bool forward_hello_msg(cc_session_t *session, const cc_frame_header_t *header,
                              const uint8_t *frame, bson_error_t *error)
{
    cc_op_msg_t msg;
    bson_t command, rewritten;
    bool load_balanced;
    size_t len;

    if (!cc_msg_parse(frame, (size_t)header->length, &msg, error)) {
        return false;
    }
    if (!bson_init_static(&command, msg.body, msg.body_len)) {
        bson_set_error(error, 0, 0, "hello body is not a BSON document");
        return false;
    }
    session->authenticates |= !cc_handshake_answerable(&command);
    cc_handshake_rewrite_request(&command, !session->handshake_seen, &rewritten, &load_balanced);
    uint8_t *out = cc_msg_replace_body(frame, (size_t)header->length, &msg, &rewritten, &len);
    bson_destroy(&rewritten);
    return send_rewritten_request(session, header, out, len, load_balanced, error);
}

/* Legacy OP_QUERY: only the handshake is rewritten; every other OP_QUERY is
 * forwarded, and MongoDB 6.0+ answers it with its own error. */
cc_command_status_t cc_relay_query_command(const uint8_t *frame, const cc_frame_header_t *header,
                                           bson_t *command, cc_query_command_t *parts,
                                           bson_error_t *error)
{
    if (!cc_query_parse(frame, (size_t)header->length, &parts->query, error)) {
        return CC_COMMAND_MALFORMED;
    }
    size_t name_len = strlen(parts->query.collection);
    if (name_len < 5 || strcmp(parts->query.collection + name_len - 5, ".$cmd") != 0 ||
        !bson_init_static(&parts->query_doc, parts->query.query, parts->query.query_len) ||
        !cc_handshake_unwrap_query(&parts->query_doc, command, &parts->wrapper_key)) {
        return CC_COMMAND_NONE;
    }
    return CC_COMMAND_FOUND;
}

static bool forward_hello_query(cc_session_t *session, const cc_frame_header_t *header,
                                const uint8_t *frame, bool *failed, bson_error_t *error)
{
    cc_query_command_t parts;
    bson_t command, rewritten, wrapped;
    bson_iter_t iter;
    bool load_balanced;
    size_t len;

    cc_command_status_t status = cc_relay_query_command(frame, header, &command, &parts, error);
    if (status == CC_COMMAND_MALFORMED) {
        *failed = true;
        return true;
    }
    if (status == CC_COMMAND_NONE || !bson_iter_init(&iter, &command) || !bson_iter_next(&iter) ||
        !cc_handshake_is_hello(bson_iter_key(&iter))) {
        return false;
    }
    session->authenticates |= !cc_handshake_answerable(&command);
    cc_handshake_rewrite_request(&command, !session->handshake_seen, &rewritten, &load_balanced);
    cc_handshake_rewrap_query(&parts.query_doc, parts.wrapper_key, &rewritten, &wrapped);
    uint8_t *out = cc_query_build(header, &parts.query, &wrapped, &len);
    bson_destroy(&rewritten);
    bson_destroy(&wrapped);
    *failed = !send_rewritten_request(session, header, out, len, load_balanced, error);
    return true;
}

/* Decides, from as few bytes as possible, whether a client frame is a
 * handshake; everything else moves to the upstream buffer untouched. */
bool cc_relay_client_frame(cc_session_t *session, const cc_frame_header_t *header,
                           bson_error_t *error)
{
    struct evbuffer *input = session->client_reader.input;
    size_t len = (size_t)header->length;
    bool expects_reply = true;
    bool is_hello = false;
    bool failed = false;

    if (header->opcode == CC_OPCODE_MSG) {
        uint8_t prefix[CC_PEEK_BYTES];
        char name[32];
        size_t prefix_len = len < sizeof prefix ? len : sizeof prefix;
        evbuffer_copyout(input, prefix, prefix_len);
        /* moreToCome from a client: fire-and-forget, no reply will come. */
        expects_reply = !(cc_msg_flags(prefix) & CC_MSG_MORE_TO_COME);
        cc_peek_result_t peek = cc_msg_peek_command(prefix, prefix_len, name, sizeof name);
        bool named = peek == CC_PEEK_NAME;
        if (peek == CC_PEEK_NEED_FRAME) {
            cc_op_msg_t msg;
            const uint8_t *frame = evbuffer_pullup(input, (ev_ssize_t)len);
            if (!cc_msg_parse(frame, len, &msg, error)) {
                return false;
            }
            bson_t body;
            bson_iter_t iter;
            if (bson_init_static(&body, msg.body, msg.body_len) && bson_iter_init(&iter, &body) &&
                bson_iter_next(&iter)) {
                bson_strncpy(name, bson_iter_key(&iter), sizeof name);
                named = true;
            }
        }
        is_hello = named && cc_handshake_is_hello(name);
        session->authenticates |= named && cc_handshake_is_auth(name);
        if (is_hello) {
            failed =
                !forward_hello_msg(session, header, evbuffer_pullup(input, (ev_ssize_t)len), error);
        } else if (peek == CC_PEEK_NAME && expects_reply) {
            cc_writes_note_request(session, header, name, input);
        }
    } else if (header->opcode == CC_OPCODE_QUERY) {
        is_hello = forward_hello_query(session, header, evbuffer_pullup(input, (ev_ssize_t)len),
                                       &failed, error);
    }
    if (failed) {
        return false;
    }
    if (is_hello) {
        evbuffer_drain(input, len);
    } else {
        evbuffer_remove_buffer(input, session->staged, len);
    }
    if (expects_reply) {
        session->replies_owed++;
    }
    return true;
}

/* The handshake reply a primary gave, kept for answering handshakes while
 * no primary is known (no_primary.c). */
static void remember_known_hello(struct cc_wire *wire, const bson_t *reply)
{
    if (cc_handshake_from_primary(reply)) {
        if (wire->known_hello) {
            bson_destroy(wire->known_hello);
        }
        wire->known_hello = bson_copy(reply);
    }
}

static void learn_limits(cc_session_t *session, const bson_t *reply)
{
    bson_iter_t iter;
    if (bson_iter_init_find(&iter, reply, "maxMessageSizeBytes") && BSON_ITER_HOLDS_NUMBER(&iter) &&
        bson_iter_as_int64(&iter) >= 1024) {
        session->max_message_bytes = (uint32_t)bson_iter_as_int64(&iter);
    }
}

/* The upstream's handshake reply, rewritten so the client sees one router. */
static bool rewrite_hello_reply(cc_session_t *session, const cc_frame_header_t *header,
                                bool load_balanced, bson_error_t *error)
{
    struct evbuffer *input = session->upstream_reader.input;
    size_t len = (size_t)header->length, out_len;
    const uint8_t *frame = evbuffer_pullup(input, (ev_ssize_t)len);
    bson_t reply, rewritten;
    uint8_t *out = NULL;

    if (header->opcode == CC_OPCODE_MSG) {
        cc_op_msg_t msg;
        if (!cc_msg_parse(frame, len, &msg, error) ||
            !bson_init_static(&reply, msg.body, msg.body_len)) {
            bson_set_error(error, 0, 0, "malformed hello reply");
            return false;
        }
        if (msg.flags & CC_MSG_MORE_TO_COME) {
            /* An exhaust hello: the next reply answers this one. */
            remember_hello(session, header->request_id, load_balanced);
        }
        learn_limits(session, &reply);
        remember_known_hello(session->wire, &reply);
        cc_handshake_rewrite_reply(&reply, load_balanced, &session->wire->service_id, &rewritten);
        out = cc_msg_build(header, msg.flags, &rewritten, &out_len);
    } else if (header->opcode == CC_OPCODE_REPLY) {
        cc_reply_t legacy;
        if (!cc_reply_parse(frame, len, &legacy, error) || !legacy.first_doc ||
            !bson_init_static(&reply, legacy.first_doc, legacy.first_doc_len)) {
            bson_set_error(error, 0, 0, "malformed legacy hello reply");
            return false;
        }
        learn_limits(session, &reply);
        remember_known_hello(session->wire, &reply);
        cc_handshake_rewrite_reply(&reply, load_balanced, &session->wire->service_id, &rewritten);
        out = cc_reply_build(header, legacy.flags, &rewritten, &out_len);
    } else {
        bson_set_error(error, 0, 0, "compressed hello reply");
        return false;
    }
    bson_destroy(&rewritten);
    evbuffer_drain(input, len);
    evbuffer_add(session->staged, out, out_len);
    bson_free(out);
    return true;
}

bool cc_relay_upstream_frame(cc_session_t *session, const cc_frame_header_t *header,
                             bson_error_t *error)
{
    struct evbuffer *input = session->upstream_reader.input;
    bool completes_request = true;
    bool load_balanced;

    if (header->opcode == CC_OPCODE_MSG) {
        uint8_t prefix[CC_FRAME_HEADER_BYTES + 4];
        evbuffer_copyout(input, prefix, sizeof prefix);
        /* An exhaust stream owes one reply per request: only its last
         * frame, without moreToCome, settles it. */
        completes_request = !(cc_msg_flags(prefix) & CC_MSG_MORE_TO_COME);
    }
    if (take_hello(session, header->response_to, &load_balanced) >= 0) {
        if (!rewrite_hello_reply(session, header, load_balanced, error)) {
            return false;
        }
    } else {
        if (session->pending_writes) {
            cc_writes_note_reply(session, header, input);
        }
        evbuffer_remove_buffer(input, session->staged, (size_t)header->length);
    }
    if (completes_request) {
        session->replies_owed--;
    }
    return true;
}
