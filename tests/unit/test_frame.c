/* SPDX-License-Identifier: Apache-2.0 */
/* The frame codec against truncated, oversize, unknown-opcode and lying
 * frames, and its builders against its own parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "wire/frame.h"

static void put_i32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

/* An OP_MSG frame {ping: 1, $db: "admin"} with the given flags. */
static size_t make_ping(uint8_t *out, uint32_t flags)
{
    bson_t *body = BCON_NEW("ping", BCON_INT32(1), "$db", "admin");
    cc_frame_header_t header = {.request_id = 7, .response_to = 0};
    size_t len;
    uint8_t *frame = cc_msg_build(&header, flags, body, &len);
    memcpy(out, frame, len);
    bson_free(frame);
    bson_destroy(body);
    return len;
}

static void test_frame_waits_for_a_whole_header(void **state)
{
    (void)state;
    uint8_t bytes[64];
    cc_frame_header_t header;
    bson_error_t error;
    make_ping(bytes, 0);
    assert_int_equal(cc_frame_header_check(bytes, 15, 1000, CC_FROM_CLIENT, &header, &error),
                     CC_FRAME_INCOMPLETE);
    assert_int_equal(cc_frame_header_check(bytes, 16, 1000, CC_FROM_CLIENT, &header, &error),
                     CC_FRAME_HEADER_OK);
    assert_int_equal(header.request_id, 7);
    assert_int_equal(header.opcode, CC_OPCODE_MSG);
}

static void test_frame_rejects_length_below_header(void **state)
{
    (void)state;
    uint8_t bytes[64];
    cc_frame_header_t header;
    bson_error_t error;
    make_ping(bytes, 0);
    put_i32(bytes, 3);
    assert_int_equal(cc_frame_header_check(bytes, 64, 1000, CC_FROM_CLIENT, &header, &error),
                     CC_FRAME_INVALID);
    assert_non_null(strstr(error.message, "below the minimum"));
    put_i32(bytes, -40);
    assert_int_equal(cc_frame_header_check(bytes, 64, 1000, CC_FROM_CLIENT, &header, &error),
                     CC_FRAME_INVALID);
}

static void test_frame_rejects_length_above_max_message_size(void **state)
{
    (void)state;
    uint8_t bytes[64];
    cc_frame_header_t header;
    bson_error_t error;
    make_ping(bytes, 0);
    put_i32(bytes, 48000001);
    assert_int_equal(cc_frame_header_check(bytes, 64, CC_DEFAULT_MAX_MESSAGE_BYTES, CC_FROM_CLIENT,
                                           &header, &error),
                     CC_FRAME_INVALID);
    assert_non_null(strstr(error.message, "maxMessageSizeBytes"));
}

static void test_frame_rejects_unknown_and_misdirected_opcodes(void **state)
{
    (void)state;
    uint8_t bytes[64];
    cc_frame_header_t header;
    bson_error_t error;
    make_ping(bytes, 0);
    put_i32(bytes + 12, 2002); /* OP_INSERT, removed in MongoDB 6.0 */
    assert_int_equal(cc_frame_header_check(bytes, 64, 1000, CC_FROM_CLIENT, &header, &error),
                     CC_FRAME_INVALID);
    put_i32(bytes + 12, CC_OPCODE_REPLY); /* only servers reply */
    assert_int_equal(cc_frame_header_check(bytes, 64, 1000, CC_FROM_CLIENT, &header, &error),
                     CC_FRAME_INVALID);
    put_i32(bytes + 12, CC_OPCODE_QUERY); /* only clients query */
    assert_int_equal(cc_frame_header_check(bytes, 64, 1000, CC_FROM_SERVER, &header, &error),
                     CC_FRAME_INVALID);
}

static void test_msg_parse_reads_body_and_flags(void **state)
{
    (void)state;
    uint8_t bytes[64];
    cc_op_msg_t msg;
    bson_error_t error;
    size_t len = make_ping(bytes, CC_MSG_MORE_TO_COME);
    assert_true(cc_msg_parse(bytes, len, &msg, &error));
    assert_int_equal(msg.flags, CC_MSG_MORE_TO_COME);
    assert_int_equal(cc_msg_flags(bytes), CC_MSG_MORE_TO_COME);
    bson_t body;
    assert_true(bson_init_static(&body, msg.body, msg.body_len));
    assert_true(bson_has_field(&body, "ping"));
}

static void test_msg_parse_rejects_body_length_lie(void **state)
{
    (void)state;
    uint8_t bytes[64];
    cc_op_msg_t msg;
    bson_error_t error;
    size_t len = make_ping(bytes, 0);
    put_i32(bytes + 21, 500); /* the body claims more bytes than the frame has */
    assert_false(cc_msg_parse(bytes, len, &msg, &error));
    assert_non_null(strstr(error.message, "overruns"));
    assert_false(cc_msg_parse(bytes, 20, &msg, &error));
}

static void test_msg_parse_rejects_unknown_section_kind_and_missing_body(void **state)
{
    (void)state;
    uint8_t bytes[64];
    cc_op_msg_t msg;
    bson_error_t error;
    size_t len = make_ping(bytes, 0);
    bytes[20] = 7;
    assert_false(cc_msg_parse(bytes, len, &msg, &error));
    assert_non_null(strstr(error.message, "kind 7"));
    /* only a document sequence, no body */
    uint8_t seq[64] = {0};
    size_t pos = 20;
    seq[pos++] = 1;
    put_i32(seq + pos, 4 + 10 + 5);
    memcpy(seq + pos + 4, "documents", 10);
    put_i32(seq + pos + 14, 5);
    pos += 4 + 10 + 5;
    put_i32(seq, (int32_t)pos);
    assert_false(cc_msg_parse(seq, pos, &msg, &error));
    assert_non_null(strstr(error.message, "no body"));
}

static void test_msg_parse_accepts_sequence_before_body(void **state)
{
    (void)state;
    uint8_t frame[128] = {0};
    size_t pos = 20;
    frame[pos++] = 1;
    put_i32(frame + pos, 4 + 10 + 5);
    memcpy(frame + pos + 4, "documents", 10);
    put_i32(frame + pos + 14, 5);
    pos += 4 + 10 + 5;
    frame[pos++] = 0;
    bson_t *body = BCON_NEW("insert", "c", "$db", "test");
    memcpy(frame + pos, bson_get_data(body), body->len);
    pos += body->len;
    put_i32(frame, (int32_t)pos);
    put_i32(frame + 12, CC_OPCODE_MSG);
    cc_op_msg_t msg;
    bson_error_t error;
    assert_true(cc_msg_parse(frame, pos, &msg, &error));
    assert_int_equal(msg.body_len, body->len);
    char name[32];
    assert_int_equal(cc_msg_peek_command(frame, CC_PEEK_BYTES, name, sizeof name),
                     CC_PEEK_NEED_FRAME);
    bson_destroy(body);
}

static void test_peek_reads_command_name_from_prefix(void **state)
{
    (void)state;
    uint8_t bytes[64];
    char name[32];
    make_ping(bytes, 0);
    assert_int_equal(cc_msg_peek_command(bytes, 31, name, sizeof name), CC_PEEK_NAME);
    assert_string_equal(name, "ping");
    assert_int_equal(cc_msg_peek_command(bytes, 20, name, sizeof name), CC_PEEK_INVALID);
}

static void test_msg_replace_body_keeps_sequences_and_drops_checksum(void **state)
{
    (void)state;
    uint8_t frame[128] = {0};
    size_t pos = 16;
    put_i32(frame + pos, CC_MSG_CHECKSUM_PRESENT);
    pos += 4;
    frame[pos++] = 0;
    bson_t *body = BCON_NEW("hello", BCON_INT32(1), "loadBalanced", BCON_BOOL(true));
    memcpy(frame + pos, bson_get_data(body), body->len);
    pos += body->len;
    frame[pos++] = 1;
    put_i32(frame + pos, 4 + 2 + 5);
    memcpy(frame + pos + 4, "x", 2);
    put_i32(frame + pos + 6, 5);
    pos += 11;
    pos += 4; /* checksum bytes, value irrelevant to the codec */
    put_i32(frame, (int32_t)pos);
    put_i32(frame + 12, CC_OPCODE_MSG);

    cc_op_msg_t msg;
    bson_error_t error;
    assert_true(cc_msg_parse(frame, pos, &msg, &error));
    bson_t *smaller = BCON_NEW("hello", BCON_INT32(1));
    size_t out_len;
    uint8_t *out = cc_msg_replace_body(frame, pos, &msg, smaller, &out_len);
    assert_int_equal(out_len, pos - 4 - (body->len - smaller->len));
    cc_op_msg_t rebuilt;
    assert_true(cc_msg_parse(out, out_len, &rebuilt, &error));
    assert_int_equal(rebuilt.flags & CC_MSG_CHECKSUM_PRESENT, 0);
    assert_int_equal(rebuilt.body_len, smaller->len);
    assert_int_equal(out[out_len - 12], 1); /* the sequence survived, last */
    bson_free(out);
    bson_destroy(body);
    bson_destroy(smaller);
}

static void test_query_and_reply_round_trip(void **state)
{
    (void)state;
    bson_t *doc = BCON_NEW("isMaster", BCON_INT32(1));
    cc_query_t query = {.flags = 0, .collection = "admin.$cmd", .skip = 0, .limit = -1};
    cc_frame_header_t header = {.request_id = 9};
    size_t len;
    uint8_t *frame = cc_query_build(&header, &query, doc, &len);
    cc_query_t parsed;
    bson_error_t error;
    assert_true(cc_query_parse(frame, len, &parsed, &error));
    assert_string_equal(parsed.collection, "admin.$cmd");
    assert_int_equal(parsed.limit, -1);
    assert_int_equal(parsed.query_len, doc->len);
    assert_null(parsed.selector);
    assert_false(cc_query_parse(frame, len - 1, &parsed, &error));
    bson_free(frame);

    header.response_to = 9;
    frame = cc_reply_build(&header, 8, doc, &len);
    cc_reply_t reply;
    assert_true(cc_reply_parse(frame, len, &reply, &error));
    assert_int_equal(reply.flags, 8);
    assert_int_equal(reply.number_returned, 1);
    assert_int_equal(reply.first_doc_len, doc->len);
    bson_free(frame);
    bson_destroy(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_waits_for_a_whole_header),
        cmocka_unit_test(test_frame_rejects_length_below_header),
        cmocka_unit_test(test_frame_rejects_length_above_max_message_size),
        cmocka_unit_test(test_frame_rejects_unknown_and_misdirected_opcodes),
        cmocka_unit_test(test_msg_parse_reads_body_and_flags),
        cmocka_unit_test(test_msg_parse_rejects_body_length_lie),
        cmocka_unit_test(test_msg_parse_rejects_unknown_section_kind_and_missing_body),
        cmocka_unit_test(test_msg_parse_accepts_sequence_before_body),
        cmocka_unit_test(test_peek_reads_command_name_from_prefix),
        cmocka_unit_test(test_msg_replace_body_keeps_sequences_and_drops_checksum),
        cmocka_unit_test(test_query_and_reply_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
