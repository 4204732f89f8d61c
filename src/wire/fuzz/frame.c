/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the wire frame codec and frame buffer, driven the way a
 * session drives them (src/wire/session.c: read_frames and the two frame
 * handlers). The input is one byte of settings, then the bytes a peer sends.
 *
 *   settings bit 0: 0 = a client's stream, 1 = an upstream's stream
 *   settings bit 1: maxMessageSizeBytes 1024 (learnt from a hello reply)
 *                   instead of the 48 MB default
 *   settings bits 2-7: bytes per read (0 = all at once), so frames arrive
 *                   cut anywhere, as TCP delivers them
 *
 * Every frame is copied to a buffer of exactly its length before it is
 * parsed, so a read past its end is an AddressSanitizer report (evbuffer's
 * own chunks usually have room to spare). Whatever the codec builds is
 * parsed again and must be a valid frame of the length it claims. */
#include "wire/frame.h"
#include "wire/frame_buffer.h"
#include "wire/handshake.h"
#include "core/fuzz/fuzz_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *copy_exact(const uint8_t *bytes, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    CHECK(copy);
    memcpy(copy, bytes, len);
    return copy;
}

/* A frame the proxy built must pass the same checks as one it read. */
static void check_built(const uint8_t *frame, size_t len, cc_frame_origin_t origin, int32_t opcode)
{
    cc_frame_header_t header;
    bson_error_t error;
    CHECK(cc_frame_header_check(frame, len, UINT32_MAX, origin, &header, &error) ==
          CC_FRAME_HEADER_OK);
    CHECK((size_t)header.length == len);
    CHECK(header.opcode == opcode);
    if (opcode == CC_OPCODE_MSG) {
        cc_op_msg_t msg;
        CHECK(cc_msg_parse(frame, len, &msg, &error));
        CHECK(!(msg.flags & CC_MSG_CHECKSUM_PRESENT));
    } else if (opcode == CC_OPCODE_QUERY) {
        cc_query_t query;
        CHECK(cc_query_parse(frame, len, &query, &error));
    } else if (opcode == CC_OPCODE_REPLY) {
        cc_reply_t reply;
        CHECK(cc_reply_parse(frame, len, &reply, &error));
        CHECK(reply.first_doc != NULL);
    }
}

/* forward_hello_msg: the body rewritten, the frame rebuilt around it. */
static void client_msg(const cc_frame_header_t *header, const uint8_t *frame, size_t len)
{
    /* The session peeks at a prefix of at most CC_PEEK_BYTES. */
    size_t prefix_len = len < CC_PEEK_BYTES ? len : CC_PEEK_BYTES;
    uint8_t *prefix = copy_exact(frame, prefix_len);
    char name[32];
    (void)cc_msg_flags(prefix);
    cc_peek_result_t peek = cc_msg_peek_command(prefix, prefix_len, name, sizeof name);
    if (peek == CC_PEEK_NAME) {
        CHECK(memchr(name, '\0', sizeof name) != NULL);
        (void)cc_handshake_is_hello(name);
    }
    free(prefix);

    cc_op_msg_t msg;
    bson_error_t error;
    bson_t body, rewritten;
    bool load_balanced;
    if (!cc_msg_parse(frame, len, &msg, &error)) {
        return;
    }
    CHECK(msg.body >= frame && msg.body + msg.body_len <= frame + len);
    if (!bson_init_static(&body, msg.body, msg.body_len)) {
        return;
    }
    /* The peek must name what a full parse finds, or a hello could slip
     * past the rewrite: same command whenever the body comes first. */
    bson_iter_t first;
    /* An empty body at the very end has no name to peek at: not a hello. */
    CHECK(peek != CC_PEEK_INVALID || msg.body_len == 5);
    CHECK((peek == CC_PEEK_NEED_FRAME) == (msg.body != frame + CC_FRAME_HEADER_BYTES + 5));
    if (peek == CC_PEEK_NAME && bson_iter_init(&first, &body) && bson_iter_next(&first) &&
        strlen(bson_iter_key(&first)) < sizeof name) {
        CHECK(strcmp(name, bson_iter_key(&first)) == 0);
    }
    /* The session rewrites hellos only; any body exercises the same code. */
    cc_handshake_rewrite_request(&body, (header->request_id & 1) != 0, &rewritten, &load_balanced);
    size_t out_len;
    uint8_t *out = cc_msg_replace_body(frame, len, &msg, &rewritten, &out_len);
    check_built(out, out_len, CC_FROM_CLIENT, CC_OPCODE_MSG);
    bson_free(out);
    bson_destroy(&rewritten);
}

/* forward_hello_query: legacy OP_QUERY handshakes, unwrapped and rewrapped. */
static void client_query(const cc_frame_header_t *header, const uint8_t *frame, size_t len)
{
    cc_query_t query;
    bson_error_t error;
    bson_t query_doc, command, rewritten, wrapped;
    const char *wrapper_key;
    bool load_balanced;
    if (!cc_query_parse(frame, len, &query, &error)) {
        return;
    }
    CHECK(
        memchr(query.collection, '\0', len - (size_t)((const uint8_t *)query.collection - frame)));
    if (!bson_init_static(&query_doc, query.query, query.query_len) ||
        !cc_handshake_unwrap_query(&query_doc, &command, &wrapper_key)) {
        return;
    }
    cc_handshake_rewrite_request(&command, true, &rewritten, &load_balanced);
    cc_handshake_rewrap_query(&query_doc, wrapper_key, &rewritten, &wrapped);
    size_t out_len;
    uint8_t *out = cc_query_build(header, &query, &wrapped, &out_len);
    check_built(out, out_len, CC_FROM_CLIENT, CC_OPCODE_QUERY);
    bson_free(out);
    bson_destroy(&rewritten);
    bson_destroy(&wrapped);
}

/* rewrite_hello_reply: OP_MSG and legacy OP_REPLY answers. */
static void server_frame(const cc_frame_header_t *header, const uint8_t *frame, size_t len)
{
    bson_t reply, rewritten;
    bson_error_t error;
    bson_oid_t service_id;
    bool load_balanced = (header->request_id & 1) != 0;
    size_t out_len;
    uint8_t *out;
    bson_oid_init_from_data(&service_id, (const uint8_t *)"changecast12");

    if (header->opcode == CC_OPCODE_MSG) {
        uint8_t *prefix = copy_exact(frame, CC_FRAME_HEADER_BYTES + 4);
        (void)cc_msg_flags(prefix);
        free(prefix);
        cc_op_msg_t msg;
        if (!cc_msg_parse(frame, len, &msg, &error) ||
            !bson_init_static(&reply, msg.body, msg.body_len)) {
            return;
        }
        cc_handshake_rewrite_reply(&reply, load_balanced, &service_id, &rewritten);
        out = cc_msg_build(header, msg.flags, &rewritten, &out_len);
        check_built(out, out_len, CC_FROM_SERVER, CC_OPCODE_MSG);
    } else if (header->opcode == CC_OPCODE_REPLY) {
        cc_reply_t legacy;
        if (!cc_reply_parse(frame, len, &legacy, &error) || !legacy.first_doc ||
            !bson_init_static(&reply, legacy.first_doc, legacy.first_doc_len)) {
            return;
        }
        CHECK(legacy.first_doc + legacy.first_doc_len <= frame + len);
        cc_handshake_rewrite_reply(&reply, load_balanced, &service_id, &rewritten);
        out = cc_reply_build(header, legacy.flags, &rewritten, &out_len);
        check_built(out, out_len, CC_FROM_SERVER, CC_OPCODE_REPLY);
    } else {
        return;
    }
    bson_free(out);
    bson_destroy(&rewritten);
}

static void handle_frame(cc_frame_origin_t origin, const cc_frame_header_t *header,
                         const uint8_t *frame, size_t len)
{
    if (origin == CC_FROM_SERVER) {
        server_frame(header, frame, len);
    } else if (header->opcode == CC_OPCODE_MSG) {
        client_msg(header, frame, len);
    } else if (header->opcode == CC_OPCODE_QUERY) {
        client_query(header, frame, len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    cc_frame_origin_t origin = (data[0] & 1) ? CC_FROM_SERVER : CC_FROM_CLIENT;
    uint32_t max_bytes = (data[0] & 2) ? 1024 : CC_DEFAULT_MAX_MESSAGE_BYTES;
    size_t chunk = data[0] >> 2;
    data++;
    size--;
    if (chunk == 0) {
        chunk = size ? size : 1;
    }

    struct evbuffer *input = evbuffer_new();
    size_t fed = 0;
    bool closed = false;
    while (!closed && fed < size) {
        size_t n = size - fed < chunk ? size - fed : chunk;
        evbuffer_add(input, data + fed, n);
        fed += n;
        for (;;) {
            cc_frame_header_t header;
            bson_error_t error;
            cc_frame_status_t status =
                cc_frame_buffer_next(input, max_bytes, origin, &header, &error);
            if (status == CC_FRAME_INCOMPLETE) {
                break;
            }
            if (status == CC_FRAME_INVALID) {
                CHECK(error.message[0] != '\0');
                closed = true; /* the session closes the connection */
                break;
            }
            size_t len = (size_t)header.length;
            CHECK(len >= CC_FRAME_HEADER_BYTES && len <= max_bytes);
            CHECK(evbuffer_get_length(input) >= len);
            uint8_t *frame = copy_exact(evbuffer_pullup(input, (ev_ssize_t)len), len);
            handle_frame(origin, &header, frame, len);
            free(frame);
            evbuffer_drain(input, len);
        }
    }
    evbuffer_free(input);
    return 0;
}
