/* SPDX-License-Identifier: Apache-2.0 */
/* Client WebSocket frame headers against RFC 6455 section 5 (push/wsframe):
 * lengths in their three forms, the mask, and each rule that earns a
 * close code. */
#include "push/wsframe.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static cc_ws_frame_status_t parse_with(const uint8_t *bytes, size_t len, uint64_t max, bool deflate,
                                       cc_ws_frame_t *frame, uint16_t *code)
{
    const char *why = NULL;
    cc_ws_frame_status_t status = cc_ws_frame_parse(bytes, len, max, deflate, frame, code, &why);
    if (status == CC_WS_FRAME_REFUSED) {
        assert_non_null(why);
    }
    return status;
}

static cc_ws_frame_status_t parse(const uint8_t *bytes, size_t len, uint64_t max,
                                  cc_ws_frame_t *frame, uint16_t *code)
{
    return parse_with(bytes, len, max, false, frame, code);
}

/* RSV1 only once permessage-deflate is agreed, only on a message's first
 * frame (RFC 7692 6.1). */
static void test_rsv1_marks_a_compressed_message(void **state)
{
    (void)state;
    cc_ws_frame_t f;
    uint16_t code = 0;
    const uint8_t text[] = {0xc1, 0x80, 1, 2, 3, 4};
    assert_int_equal(parse(text, sizeof text, 100, &f, &code), CC_WS_FRAME_REFUSED);
    assert_int_equal(code, 1002);
    assert_int_equal(parse_with(text, sizeof text, 100, true, &f, &code), CC_WS_FRAME_OK);
    assert_true(f.compressed);
    const uint8_t continuation[] = {0xc0, 0x80, 1, 2, 3, 4};
    assert_int_equal(parse_with(continuation, sizeof continuation, 100, true, &f, &code),
                     CC_WS_FRAME_REFUSED);
    const uint8_t ping[] = {0xc9, 0x80, 1, 2, 3, 4};
    assert_int_equal(parse_with(ping, sizeof ping, 100, true, &f, &code), CC_WS_FRAME_REFUSED);
    const uint8_t rsv2[] = {0xa1, 0x80, 1, 2, 3, 4};
    assert_int_equal(parse_with(rsv2, sizeof rsv2, 100, true, &f, &code), CC_WS_FRAME_REFUSED);
}

static void test_lengths_and_mask(void **state)
{
    (void)state;
    cc_ws_frame_t f;
    uint16_t code;
    /* RFC 6455 5.7: a masked "Hello" */
    const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    assert_int_equal(parse(hello, sizeof hello, 1024, &f, &code), CC_WS_FRAME_OK);
    assert_true(f.fin);
    assert_int_equal(f.opcode, 0x1);
    assert_int_equal(f.header_len, 6);
    assert_int_equal(f.payload_len, 5);
    uint8_t payload[5];
    memcpy(payload, hello + 6, 5);
    cc_ws_unmask(payload, 5, f.mask, 0);
    assert_memory_equal(payload, "Hello", 5);
    /* unmasking in pieces keeps the key's phase */
    memcpy(payload, hello + 6, 5);
    cc_ws_unmask(payload, 2, f.mask, 0);
    cc_ws_unmask(payload + 2, 3, f.mask, 2);
    assert_memory_equal(payload, "Hello", 5);

    const uint8_t medium[] = {0x01, 0xfe, 0x01, 0x00, 1, 2, 3, 4}; /* 256, not final */
    assert_int_equal(parse(medium, sizeof medium, 1024, &f, &code), CC_WS_FRAME_OK);
    assert_false(f.fin);
    assert_int_equal(f.payload_len, 256);
    assert_int_equal(f.header_len, 8);
    const uint8_t large[] = {0x81, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4}; /* 65536 */
    assert_int_equal(parse(large, sizeof large, 65536, &f, &code), CC_WS_FRAME_OK);
    assert_int_equal(f.payload_len, 65536);
    assert_int_equal(f.header_len, 14);
}

static void test_incomplete_headers_wait(void **state)
{
    (void)state;
    cc_ws_frame_t f;
    uint16_t code;
    const uint8_t large[] = {0x81, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4};
    for (size_t len = 0; len < sizeof large; len++) {
        assert_int_equal(parse(large, len, 1 << 20, &f, &code), CC_WS_FRAME_INCOMPLETE);
    }
}

static void test_rules_and_their_codes(void **state)
{
    (void)state;
    cc_ws_frame_t f;
    uint16_t code;
    const struct {
        uint8_t bytes[14];
        size_t len;
        uint16_t code;
    } refused[] = {
        {{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}, 7, 1002}, /* unmasked */
        {{0xc1, 0x80, 1, 2, 3, 4}, 6, 1002},              /* RSV1 */
        {{0x83, 0x80, 1, 2, 3, 4}, 6, 1002},              /* opcode 3 */
        {{0x8b, 0x80, 1, 2, 3, 4}, 6, 1002},              /* opcode 0xb */
        {{0x89, 0xfe, 0x00, 0x7e, 1, 2, 3, 4}, 8, 1002},  /* ping of 126 */
        {{0x09, 0x81, 1, 2, 3, 4, 5}, 7, 1002},           /* fragmented ping */
        {{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 10, 1009}, /* 2^63 - 1 */
        {{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 10, 1009}, /* 2^64 - 1 */
        {{0x81, 0xfe, 0x04, 0x01, 1, 2, 3, 4}, 8, 1009},                          /* 1025 > 1024 */
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        code = 0;
        assert_int_equal(parse(refused[i].bytes, refused[i].len, 1024, &f, &code),
                         CC_WS_FRAME_REFUSED);
        assert_int_equal(code, refused[i].code);
    }
    /* A control frame may carry 125 bytes whatever room a message has left. */
    const uint8_t ping[] = {0x89, 0xfd, 1, 2, 3, 4};
    assert_int_equal(parse(ping, sizeof ping, 0, &f, &code), CC_WS_FRAME_OK);
    assert_int_equal(f.payload_len, 125);
}

static void test_close_payloads(void **state)
{
    (void)state;
    assert_int_equal(cc_ws_close_payload_check(NULL, 0), 0);
    const uint8_t normal[] = {0x03, 0xe8, 'b', 'y', 'e'};
    assert_int_equal(cc_ws_close_payload_check(normal, sizeof normal), 0);
    const uint8_t app[] = {0x0f, 0xa0}; /* 4000 */
    assert_int_equal(cc_ws_close_payload_check(app, sizeof app), 0);
    const uint8_t one[] = {0x03};
    assert_int_equal(cc_ws_close_payload_check(one, 1), 1002);
    const uint16_t unsendable[] = {0, 999, 1004, 1005, 1006, 1015, 2999, 5000};
    for (size_t i = 0; i < sizeof unsendable / sizeof unsendable[0]; i++) {
        const uint8_t bytes[] = {(uint8_t)(unsendable[i] >> 8), (uint8_t)unsendable[i]};
        assert_int_equal(cc_ws_close_payload_check(bytes, 2), 1002);
    }
    const uint8_t not_utf8[] = {0x03, 0xe8, 0xc3, 0x28};
    assert_int_equal(cc_ws_close_payload_check(not_utf8, sizeof not_utf8), 1007);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rsv1_marks_a_compressed_message),
        cmocka_unit_test(test_lengths_and_mask),
        cmocka_unit_test(test_incomplete_headers_wait),
        cmocka_unit_test(test_rules_and_their_codes),
        cmocka_unit_test(test_close_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
