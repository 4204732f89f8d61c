/* SPDX-License-Identifier: Apache-2.0 */
/* wire/frame: the MongoDB wire protocol codec. Fed bytes, yields headers and
 * parsed messages; builds the few messages the proxy writes itself. No I/O.
 * Layouts follow the "MongoDB Wire Protocol" reference (OP_MSG, OP_QUERY,
 * OP_REPLY, OP_COMPRESSED) and the OP_MSG spec. Calls libbson only. */
#ifndef CC_WIRE_FRAME_H
#define CC_WIRE_FRAME_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    CC_OPCODE_REPLY = 1,
    CC_OPCODE_QUERY = 2004,
    CC_OPCODE_COMPRESSED = 2012,
    CC_OPCODE_MSG = 2013,
};

enum {
    CC_FRAME_HEADER_BYTES = 16,
    CC_MSG_CHECKSUM_PRESENT = 1u << 0,
    CC_MSG_MORE_TO_COME = 1u << 1,
    CC_MSG_EXHAUST_ALLOWED = 1u << 16,
};

/* MongoDB's default; the upstream's hello reply may say otherwise. */
#define CC_DEFAULT_MAX_MESSAGE_BYTES 48000000u

typedef enum cc_frame_origin { CC_FROM_CLIENT, CC_FROM_SERVER } cc_frame_origin_t;

typedef struct cc_frame_header {
    int32_t length;
    int32_t request_id;
    int32_t response_to;
    int32_t opcode;
} cc_frame_header_t;

typedef enum cc_frame_status {
    CC_FRAME_INCOMPLETE, /* fewer than 16 bytes: read more */
    CC_FRAME_HEADER_OK,  /* header valid; the frame is header.length bytes */
    CC_FRAME_INVALID,    /* close the connection; error says why */
} cc_frame_status_t;

cc_frame_status_t cc_frame_header_check(const uint8_t *data, size_t available, uint32_t max_bytes,
                                        cc_frame_origin_t origin, cc_frame_header_t *header,
                                        bson_error_t *error);

/* flagBits of an OP_MSG, from a prefix of at least 20 bytes. */
uint32_t cc_msg_flags(const uint8_t *prefix);

typedef struct cc_op_msg {
    uint32_t flags;
    const uint8_t *body; /* the kind-0 section's document */
    uint32_t body_len;
} cc_op_msg_t;

/* Parses a whole OP_MSG frame, checking every section's bounds. */
bool cc_msg_parse(const uint8_t *frame, size_t len, cc_op_msg_t *msg, bson_error_t *error);

typedef enum cc_peek_result {
    CC_PEEK_NAME,       /* name holds the command (first key of the body) */
    CC_PEEK_NEED_FRAME, /* the body is not the first section: parse the whole frame */
    CC_PEEK_INVALID,
} cc_peek_result_t;

/* Reads the command name from the first bytes of an OP_MSG frame without
 * needing the rest, so ordinary traffic is never copied to be inspected. */
cc_peek_result_t cc_msg_peek_command(const uint8_t *prefix, size_t prefix_len, char *name,
                                     size_t name_size);

/* Bytes of an OP_MSG frame that cc_msg_peek_command needs at most. */
#define CC_PEEK_BYTES 64u

typedef struct cc_query {
    int32_t flags;
    const char *collection;
    int32_t skip;
    int32_t limit;
    const uint8_t *query;
    uint32_t query_len;
    const uint8_t *selector; /* optional returnFieldsSelector, NULL when absent */
    uint32_t selector_len;
} cc_query_t;

bool cc_query_parse(const uint8_t *frame, size_t len, cc_query_t *query, bson_error_t *error);

typedef struct cc_reply {
    int32_t flags;
    int64_t cursor_id;
    int32_t starting_from;
    int32_t number_returned;
    const uint8_t *first_doc;
    uint32_t first_doc_len;
} cc_reply_t;

bool cc_reply_parse(const uint8_t *frame, size_t len, cc_reply_t *reply, bson_error_t *error);

/* Builders return a bson_malloc'd frame. A rebuilt OP_MSG never carries a
 * checksum: the flag is cleared and no CRC-32C is appended (OP_MSG spec). */
uint8_t *cc_msg_build(const cc_frame_header_t *header, uint32_t flags, const bson_t *body,
                      size_t *len);

/* Same frame with the body replaced; document sequences are kept as they were. */
uint8_t *cc_msg_replace_body(const uint8_t *frame, size_t len, const cc_op_msg_t *msg,
                             const bson_t *body, size_t *out_len);

uint8_t *cc_reply_build(const cc_frame_header_t *header, int32_t flags, const bson_t *doc,
                        size_t *len);

uint8_t *cc_query_build(const cc_frame_header_t *header, const cc_query_t *query, const bson_t *doc,
                        size_t *len);

#endif
