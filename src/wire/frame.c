/* SPDX-License-Identifier: Apache-2.0 */
/* The wire protocol codec: bounds-checked reads of little-endian fields, no
 * allocation except in the builders. hiredis's read.c is the model: bytes in,
 * verdicts out, nothing here touches a socket. */
#include "frame.h"

#include <string.h>

static int32_t read_i32(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t out;
    memcpy(&out, &v, sizeof out);
    return out;
}

static int64_t read_i64(const uint8_t *p)
{
    uint64_t lo = (uint32_t)read_i32(p), hi = (uint32_t)read_i32(p + 4);
    uint64_t v = lo | hi << 32;
    int64_t out;
    memcpy(&out, &v, sizeof out);
    return out;
}

static void write_i32(uint8_t *p, int32_t value)
{
    uint32_t v;
    memcpy(&v, &value, sizeof v);
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void write_header(uint8_t *p, size_t len, const cc_frame_header_t *header, int32_t opcode)
{
    write_i32(p, (int32_t)len);
    write_i32(p + 4, header->request_id);
    write_i32(p + 8, header->response_to);
    write_i32(p + 12, opcode);
}

/* Smallest legal frame per opcode: header plus the fixed fields plus one
 * empty document (5 bytes) where the layout demands a document. */
static int32_t min_length(int32_t opcode)
{
    switch (opcode) {
    case CC_OPCODE_MSG:
        return CC_FRAME_HEADER_BYTES + 4 + 1 + 5;
    case CC_OPCODE_QUERY:
        return CC_FRAME_HEADER_BYTES + 4 + 1 + 8 + 5;
    case CC_OPCODE_REPLY:
        return CC_FRAME_HEADER_BYTES + 20;
    case CC_OPCODE_COMPRESSED:
        return CC_FRAME_HEADER_BYTES + 9;
    default:
        return -1;
    }
}

cc_frame_status_t cc_frame_header_check(const uint8_t *data, size_t available, uint32_t max_bytes,
                                        cc_frame_origin_t origin, cc_frame_header_t *header,
                                        bson_error_t *error)
{
    if (available < CC_FRAME_HEADER_BYTES) {
        return CC_FRAME_INCOMPLETE;
    }
    header->length = read_i32(data);
    header->request_id = read_i32(data + 4);
    header->response_to = read_i32(data + 8);
    header->opcode = read_i32(data + 12);

    /* OP_QUERY survives only for the legacy handshake; MongoDB 6.0 removed
     * the other legacy opcodes, and only servers send OP_REPLY. */
    bool allowed = header->opcode == CC_OPCODE_MSG || header->opcode == CC_OPCODE_COMPRESSED ||
                   header->opcode == (origin == CC_FROM_CLIENT ? CC_OPCODE_QUERY : CC_OPCODE_REPLY);
    if (!allowed) {
        bson_set_error(error, 0, 0, "opcode %d not accepted from a %s", header->opcode,
                       origin == CC_FROM_CLIENT ? "client" : "server");
        return CC_FRAME_INVALID;
    }
    if (header->length < min_length(header->opcode)) {
        bson_set_error(error, 0, 0, "length %d below the minimum %d for opcode %d", header->length,
                       min_length(header->opcode), header->opcode);
        return CC_FRAME_INVALID;
    }
    if ((uint32_t)header->length > max_bytes) {
        bson_set_error(error, 0, 0, "length %d above maxMessageSizeBytes %u", header->length,
                       max_bytes);
        return CC_FRAME_INVALID;
    }
    return CC_FRAME_HEADER_OK;
}

/* A BSON document at p with at most room bytes: its length must fit and it
 * must end in NUL. Deeper validation is the server's job for forwarded
 * frames; documents we rewrite go through bson_init_static as well. */
static bool document_fits(const uint8_t *p, size_t room, uint32_t *doc_len)
{
    if (room < 5) {
        return false;
    }
    int32_t len = read_i32(p);
    if (len < 5 || (size_t)len > room || p[len - 1] != 0) {
        return false;
    }
    *doc_len = (uint32_t)len;
    return true;
}

static bool cstring_fits(const uint8_t *p, size_t room, size_t *len_with_nul)
{
    const uint8_t *nul = memchr(p, 0, room);
    if (!nul) {
        return false;
    }
    *len_with_nul = (size_t)(nul - p) + 1;
    return true;
}

uint32_t cc_msg_flags(const uint8_t *prefix)
{
    return (uint32_t)read_i32(prefix + CC_FRAME_HEADER_BYTES);
}

bool cc_msg_parse(const uint8_t *frame, size_t len, cc_op_msg_t *msg, bson_error_t *error)
{
    memset(msg, 0, sizeof *msg);
    if (len < CC_FRAME_HEADER_BYTES + 5) {
        bson_set_error(error, 0, 0, "OP_MSG of %zu bytes is too short", len);
        return false;
    }
    msg->flags = (uint32_t)read_i32(frame + CC_FRAME_HEADER_BYTES);
    size_t end = len;
    if (msg->flags & CC_MSG_CHECKSUM_PRESENT) {
        if (end < CC_FRAME_HEADER_BYTES + 4 + 4) {
            bson_set_error(error, 0, 0, "OP_MSG too short for its checksum");
            return false;
        }
        end -= 4;
    }
    size_t pos = CC_FRAME_HEADER_BYTES + 4;
    while (pos < end) {
        uint8_t kind = frame[pos++];
        if (kind == 0) {
            uint32_t doc_len;
            if (msg->body) {
                bson_set_error(error, 0, 0, "OP_MSG has more than one body section");
                return false;
            }
            if (!document_fits(frame + pos, end - pos, &doc_len)) {
                bson_set_error(error, 0, 0, "OP_MSG body at offset %zu overruns the frame", pos);
                return false;
            }
            msg->body = frame + pos;
            msg->body_len = doc_len;
            pos += doc_len;
        } else if (kind == 1) {
            if (end - pos < 4) {
                bson_set_error(error, 0, 0, "OP_MSG document sequence size is cut off");
                return false;
            }
            int32_t size = read_i32(frame + pos);
            size_t ident_len;
            if (size < 5 || (size_t)size > end - pos ||
                !cstring_fits(frame + pos + 4, (size_t)size - 4, &ident_len)) {
                bson_set_error(error, 0, 0, "OP_MSG document sequence at offset %zu is malformed",
                               pos);
                return false;
            }
            size_t doc_pos = pos + 4 + ident_len, seq_end = pos + (size_t)size;
            while (doc_pos < seq_end) {
                uint32_t doc_len;
                if (!document_fits(frame + doc_pos, seq_end - doc_pos, &doc_len)) {
                    bson_set_error(error, 0, 0, "OP_MSG sequence document overruns its section");
                    return false;
                }
                doc_pos += doc_len;
            }
            pos = seq_end;
        } else {
            bson_set_error(error, 0, 0, "OP_MSG section kind %u is unknown", kind);
            return false;
        }
    }
    if (!msg->body) {
        bson_set_error(error, 0, 0, "OP_MSG has no body section");
        return false;
    }
    return true;
}

cc_peek_result_t cc_msg_peek_command(const uint8_t *prefix, size_t prefix_len, char *name,
                                     size_t name_size)
{
    const size_t kind_at = CC_FRAME_HEADER_BYTES + 4, key_at = kind_at + 1 + 4 + 1;
    if (prefix_len <= kind_at) {
        return CC_PEEK_INVALID;
    }
    if (prefix[kind_at] != 0) {
        return CC_PEEK_NEED_FRAME;
    }
    if (prefix_len <= key_at) {
        return CC_PEEK_INVALID;
    }
    size_t room = prefix_len - key_at, key_len;
    if (room > name_size) {
        room = name_size;
    }
    if (!cstring_fits(prefix + key_at, room, &key_len)) {
        /* Longer than any handshake name: some other command, or garbage the
         * server will reject; either way not ours to rewrite. */
        name[0] = '\0';
        return CC_PEEK_NAME;
    }
    memcpy(name, prefix + key_at, key_len);
    return CC_PEEK_NAME;
}

bool cc_query_parse(const uint8_t *frame, size_t len, cc_query_t *query, bson_error_t *error)
{
    memset(query, 0, sizeof *query);
    size_t pos = CC_FRAME_HEADER_BYTES, name_len;
    if (len < pos + 4 + 1 + 8 + 5) {
        bson_set_error(error, 0, 0, "OP_QUERY of %zu bytes is too short", len);
        return false;
    }
    query->flags = read_i32(frame + pos);
    pos += 4;
    if (!cstring_fits(frame + pos, len - pos, &name_len)) {
        bson_set_error(error, 0, 0, "OP_QUERY collection name is not terminated");
        return false;
    }
    query->collection = (const char *)frame + pos;
    pos += name_len;
    if (len - pos < 8 + 5) {
        bson_set_error(error, 0, 0, "OP_QUERY is cut off after its collection name");
        return false;
    }
    query->skip = read_i32(frame + pos);
    query->limit = read_i32(frame + pos + 4);
    pos += 8;
    if (!document_fits(frame + pos, len - pos, &query->query_len)) {
        bson_set_error(error, 0, 0, "OP_QUERY query document overruns the frame");
        return false;
    }
    query->query = frame + pos;
    pos += query->query_len;
    if (pos < len) {
        if (!document_fits(frame + pos, len - pos, &query->selector_len) ||
            pos + query->selector_len != len) {
            bson_set_error(error, 0, 0, "OP_QUERY field selector is malformed");
            return false;
        }
        query->selector = frame + pos;
    }
    return true;
}

bool cc_reply_parse(const uint8_t *frame, size_t len, cc_reply_t *reply, bson_error_t *error)
{
    memset(reply, 0, sizeof *reply);
    size_t pos = CC_FRAME_HEADER_BYTES;
    if (len < pos + 20) {
        bson_set_error(error, 0, 0, "OP_REPLY of %zu bytes is too short", len);
        return false;
    }
    reply->flags = read_i32(frame + pos);
    reply->cursor_id = read_i64(frame + pos + 4);
    reply->starting_from = read_i32(frame + pos + 12);
    reply->number_returned = read_i32(frame + pos + 16);
    pos += 20;
    if (reply->number_returned > 0) {
        if (!document_fits(frame + pos, len - pos, &reply->first_doc_len)) {
            bson_set_error(error, 0, 0, "OP_REPLY document overruns the frame");
            return false;
        }
        reply->first_doc = frame + pos;
    }
    return true;
}

uint8_t *cc_msg_build(const cc_frame_header_t *header, uint32_t flags, const bson_t *body,
                      size_t *len)
{
    size_t total = CC_FRAME_HEADER_BYTES + 4 + 1 + body->len;
    uint8_t *frame = bson_malloc(total);
    write_header(frame, total, header, CC_OPCODE_MSG);
    write_i32(frame + CC_FRAME_HEADER_BYTES, (int32_t)(flags & ~(uint32_t)CC_MSG_CHECKSUM_PRESENT));
    frame[CC_FRAME_HEADER_BYTES + 4] = 0;
    memcpy(frame + CC_FRAME_HEADER_BYTES + 5, bson_get_data(body), body->len);
    *len = total;
    return frame;
}

uint8_t *cc_msg_replace_body(const uint8_t *frame, size_t len, const cc_op_msg_t *msg,
                             const bson_t *body, size_t *out_len)
{
    size_t sections_end = (msg->flags & CC_MSG_CHECKSUM_PRESENT) ? len - 4 : len;
    size_t before = (size_t)(msg->body - frame), after_at = before + msg->body_len;
    size_t total = before + body->len + (sections_end - after_at);
    uint8_t *out = bson_malloc(total);
    memcpy(out, frame, before);
    memcpy(out + before, bson_get_data(body), body->len);
    memcpy(out + before + body->len, frame + after_at, sections_end - after_at);
    write_i32(out, (int32_t)total);
    write_i32(out + CC_FRAME_HEADER_BYTES,
              (int32_t)(msg->flags & ~(uint32_t)CC_MSG_CHECKSUM_PRESENT));
    *out_len = total;
    return out;
}

uint8_t *cc_reply_build(const cc_frame_header_t *header, int32_t flags, const bson_t *doc,
                        size_t *len)
{
    size_t total = CC_FRAME_HEADER_BYTES + 20 + doc->len;
    uint8_t *frame = bson_malloc0(total);
    write_header(frame, total, header, CC_OPCODE_REPLY);
    write_i32(frame + CC_FRAME_HEADER_BYTES, flags);
    /* cursorID 0, startingFrom 0, numberReturned 1 */
    write_i32(frame + CC_FRAME_HEADER_BYTES + 16, 1);
    memcpy(frame + CC_FRAME_HEADER_BYTES + 20, bson_get_data(doc), doc->len);
    *len = total;
    return frame;
}

uint8_t *cc_query_build(const cc_frame_header_t *header, const cc_query_t *query, const bson_t *doc,
                        size_t *len)
{
    size_t name_len = strlen(query->collection) + 1;
    size_t total = CC_FRAME_HEADER_BYTES + 4 + name_len + 8 + doc->len + query->selector_len;
    uint8_t *frame = bson_malloc(total);
    uint8_t *p = frame + CC_FRAME_HEADER_BYTES;
    write_header(frame, total, header, CC_OPCODE_QUERY);
    write_i32(p, query->flags);
    memcpy(p + 4, query->collection, name_len);
    p += 4 + name_len;
    write_i32(p, query->skip);
    write_i32(p + 4, query->limit);
    memcpy(p + 8, bson_get_data(doc), doc->len);
    if (query->selector) {
        memcpy(p + 8 + doc->len, query->selector, query->selector_len);
    }
    *len = total;
    return frame;
}
