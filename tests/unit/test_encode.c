/* SPDX-License-Identifier: Apache-2.0 */
/* push/encode: the frames changecast writes, against RFC 6455 section 5.2
 * (WebSocket base framing, server frames unmasked) and the WHATWG HTML
 * event stream format (fields, line breaks, the blank line that ends an
 * event). */
#include "push/encode.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_ws_header_uses_7_bit_length_below_126(void **state)
{
    (void)state;
    uint8_t header[CC_WS_HEADER_MAX];
    assert_int_equal(cc_encode_ws_header(header, CC_WS_OP_TEXT, 125), 2);
    assert_int_equal(header[0], 0x81); /* FIN, opcode 1 */
    assert_int_equal(header[1], 125);  /* MASK bit clear: a server never masks */
}

static void test_ws_header_uses_16_bit_length_from_126_to_65535(void **state)
{
    (void)state;
    uint8_t header[CC_WS_HEADER_MAX];
    assert_int_equal(cc_encode_ws_header(header, CC_WS_OP_TEXT, 126), 4);
    assert_int_equal(header[1], 126);
    assert_int_equal(header[2], 0);
    assert_int_equal(header[3], 126);
    assert_int_equal(cc_encode_ws_header(header, CC_WS_OP_TEXT, 65535), 4);
    assert_int_equal(header[2], 0xff);
    assert_int_equal(header[3], 0xff);
}

static void test_ws_header_uses_64_bit_length_with_top_bit_clear(void **state)
{
    (void)state;
    uint8_t header[CC_WS_HEADER_MAX];
    assert_int_equal(cc_encode_ws_header(header, CC_WS_OP_TEXT, 65536), 10);
    assert_int_equal(header[1], 127);
    static const uint8_t want[8] = {0, 0, 0, 0, 0, 1, 0, 0};
    assert_memory_equal(header + 2, want, 8);
    cc_encode_ws_header(header, CC_WS_OP_TEXT, UINT64_C(0x7fffffffffffffff));
    assert_int_equal(header[2] & 0x80, 0);
}

static void test_ws_ping_header_carries_its_opcode(void **state)
{
    (void)state;
    uint8_t header[CC_WS_HEADER_MAX];
    cc_encode_ws_header(header, CC_WS_OP_PING, 1);
    assert_int_equal(header[0], 0x89);
}

static void test_ws_text_frame_is_header_then_concatenated_payload(void **state)
{
    (void)state;
    cc_span_t parts[] = {CC_SPAN_LIT("{\"a\":"), CC_SPAN_LIT("1}")};
    cc_buf_t *buf = cc_encode_ws_text(parts, 2);
    assert_int_equal(buf->len, 2 + 7);
    assert_memory_equal(buf->data, "\x81\x07{\"a\":1}", 9);
    cc_buf_unref(buf);
}

static void test_ws_head_and_notice_body_make_one_json_object(void **state)
{
    (void)state;
    cc_buf_t *head = cc_encode_ws_head("orders");
    bson_t fields = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&fields, "reason", "history_lost");
    cc_buf_t *body = cc_encode_ws_notice_body("reset", &fields);
    char text[256];
    snprintf(text, sizeof text, "%s%s", head->data, body->data);
    bson_t parsed;
    bson_error_t error;
    assert_true(bson_init_from_json(&parsed, text, -1, &error));
    bson_iter_t iter;
    assert_true(bson_iter_init_find(&iter, &parsed, "id"));
    assert_string_equal(bson_iter_utf8(&iter, NULL), "orders");
    assert_true(bson_iter_init_find(&iter, &parsed, "type"));
    assert_string_equal(bson_iter_utf8(&iter, NULL), "reset");
    assert_true(bson_iter_init_find(&iter, &parsed, "reason"));
    bson_destroy(&parsed);
    bson_destroy(&fields);
    cc_buf_unref(head);
    cc_buf_unref(body);
}

static void test_ws_notice_body_without_fields_closes_the_object(void **state)
{
    (void)state;
    bson_t empty = BSON_INITIALIZER;
    cc_buf_t *body = cc_encode_ws_notice_body("subscribed", &empty);
    assert_string_equal(body->data, "\"type\":\"subscribed\"}");
    cc_buf_unref(body);
}

static void test_sse_event_has_id_event_data_and_blank_line(void **state)
{
    (void)state;
    cc_span_t data = CC_SPAN_LIT("{\"x\":1}");
    cc_buf_t *buf = cc_encode_sse("8265AB", "change", &data, 1);
    assert_string_equal(buf->data, "id: 8265AB\nevent: change\ndata: {\"x\":1}\n\n");
    assert_int_equal(buf->len, strlen(buf->data));
    cc_buf_unref(buf);
}

static void test_sse_event_without_id_has_no_id_field(void **state)
{
    (void)state;
    cc_span_t data = CC_SPAN_LIT("{}");
    cc_buf_t *buf = cc_encode_sse(NULL, "doc", &data, 1);
    assert_string_equal(buf->data, "event: doc\ndata: {}\n\n");
    cc_buf_unref(buf);
}

static void test_sse_data_line_breaks_become_data_lines(void **state)
{
    (void)state;
    /* LF, CR and CRLF all end a line in the event stream: each must start
     * a new data field, never end the event early. */
    cc_span_t parts[] = {CC_SPAN_LIT("a\nb"), CC_SPAN_LIT("\rc\r\nd")};
    cc_buf_t *buf = cc_encode_sse(NULL, "x", parts, 2);
    assert_string_equal(buf->data, "event: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
    assert_int_equal(buf->len, strlen(buf->data));
    cc_buf_unref(buf);
}

static void test_sse_comment_is_ignored_by_clients(void **state)
{
    (void)state;
    cc_buf_t *buf = cc_encode_sse_comment("heartbeat");
    assert_string_equal(buf->data, ": heartbeat\n\n");
    cc_buf_unref(buf);
}

static void test_json_placeholder_when_text_is_not_utf8(void **state)
{
    (void)state;
    bson_t doc = BSON_INITIALIZER;
    bson_append_utf8(&doc, "m", 1, "\xff", 1);
    size_t len;
    char *json = cc_json_or_placeholder(&doc, &len);
    assert_non_null(strstr(json, "not UTF-8"));
    assert_int_equal(len, strlen(json));
    bson_free(json);
    bson_destroy(&doc);
}

static void test_buf_is_freed_by_its_last_reference(void **state)
{
    (void)state;
    cc_buf_t *buf = cc_buf_copy("abc", 3);
    assert_ptr_equal(cc_buf_ref(buf), buf);
    cc_buf_unref(buf);
    assert_string_equal(buf->data, "abc"); /* still held once */
    cc_buf_unref(buf);                     /* ASan reports a leak or a double free */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_header_uses_7_bit_length_below_126),
        cmocka_unit_test(test_ws_header_uses_16_bit_length_from_126_to_65535),
        cmocka_unit_test(test_ws_header_uses_64_bit_length_with_top_bit_clear),
        cmocka_unit_test(test_ws_ping_header_carries_its_opcode),
        cmocka_unit_test(test_ws_text_frame_is_header_then_concatenated_payload),
        cmocka_unit_test(test_ws_head_and_notice_body_make_one_json_object),
        cmocka_unit_test(test_ws_notice_body_without_fields_closes_the_object),
        cmocka_unit_test(test_sse_event_has_id_event_data_and_blank_line),
        cmocka_unit_test(test_sse_event_without_id_has_no_id_field),
        cmocka_unit_test(test_sse_data_line_breaks_become_data_lines),
        cmocka_unit_test(test_sse_comment_is_ignored_by_clients),
        cmocka_unit_test(test_json_placeholder_when_text_is_not_utf8),
        cmocka_unit_test(test_buf_is_freed_by_its_last_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
