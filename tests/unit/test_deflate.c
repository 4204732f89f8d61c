/* SPDX-License-Identifier: Apache-2.0 */
/* permessage-deflate and gzip as push/deflate.c lays them out: a shared
 * body compressed once ends in a sync flush; a per-subscriber head as a
 * stored block ahead of it inflates to head + body, as a client's fresh
 * inflater reads a message; the same blocks after a gzip header are a gzip
 * stream read as it goes; client messages inflate within a limit; the
 * offers and Accept-Encoding values that are accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include <bson/bson.h>

#include "push/deflate.h"

static cc_deflate_t pmd;

static int setup(void **state)
{
    (void)state;
    return cc_deflate_init(&pmd) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cc_deflate_cleanup(&pmd);
    return 0;
}

/* Inflates `len` bytes with a fresh raw (or gzip, windowBits 31) inflater
 * and a sync flush, as a streaming reader does; returns the text. */
static size_t inflate_all(const uint8_t *in, size_t len, int window_bits, char *out, size_t room)
{
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, window_bits), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)room;
    int status = inflate(&z, Z_SYNC_FLUSH);
    assert_true(status == Z_OK || status == Z_BUF_ERROR);
    assert_int_equal(z.avail_in, 0);
    size_t n = room - z.avail_out;
    inflateEnd(&z);
    return n;
}

static const char body[] =
    "\"type\":\"change\",\"token\":\"82ABCDEF\",\"event\":{\"operationType\":\"insert\","
    "\"fullDocument\":{\"lines\":[{\"sku\":\"A-1\",\"qty\":1},{\"sku\":\"A-2\",\"qty\":2},"
    "{\"sku\":\"A-3\",\"qty\":3},{\"sku\":\"A-4\",\"qty\":4}]}}}";

static void test_a_body_ends_in_a_sync_flush_and_a_head_goes_stored_ahead(void **state)
{
    (void)state;
    cc_buf_t *deflated = cc_deflate_compress(&pmd, body, sizeof body - 1);
    assert_non_null(deflated);
    assert_true(deflated->len < sizeof body - 1);
    assert_memory_equal(deflated->data + deflated->len - 4, "\x00\x00\xff\xff", 4);
    /* A message: stored head, the body's blocks, the tail a client adds. */
    static const char head[] = "{\"id\":\"orders\",";
    uint8_t stored[CC_DEFLATE_STORED_HEADER];
    assert_int_equal(cc_deflate_stored_header(stored, sizeof head - 1), 5);
    assert_memory_equal(stored, "\x00\x0f\x00\xf0\xff", 5);
    uint8_t message[512];
    size_t len = 0;
    memcpy(message, stored, 5);
    len += 5;
    memcpy(message + len, head, sizeof head - 1);
    len += sizeof head - 1;
    memcpy(message + len, deflated->data, deflated->len);
    len += deflated->len;
    char text[512];
    size_t n = inflate_all(message, len, -MAX_WBITS, text, sizeof text);
    assert_int_equal(n, sizeof head - 1 + sizeof body - 1);
    assert_memory_equal(text, head, sizeof head - 1);
    assert_memory_equal(text + sizeof head - 1, body, sizeof body - 1);
    /* Compressed again from the reset state: the same bytes, for everyone. */
    cc_buf_t *again = cc_deflate_compress(&pmd, body, sizeof body - 1);
    assert_int_equal(again->len, deflated->len);
    assert_memory_equal(again->data, deflated->data, deflated->len);
    cc_buf_unref(again);
    cc_buf_unref(deflated);
}

static void test_blocks_after_a_gzip_header_stream_as_gzip(void **state)
{
    (void)state;
    uint8_t stream[1024];
    size_t len = 0;
    memcpy(stream, cc_gzip_header, CC_GZIP_HEADER_BYTES);
    len += CC_GZIP_HEADER_BYTES;
    static const char small[] = ": heartbeat\n\n";
    len += cc_deflate_stored_header(stream + len, sizeof small - 1);
    memcpy(stream + len, small, sizeof small - 1);
    len += sizeof small - 1;
    for (int i = 0; i < 2; i++) {
        cc_buf_t *deflated = cc_deflate_compress(&pmd, body, sizeof body - 1);
        memcpy(stream + len, deflated->data, deflated->len);
        len += deflated->len;
        cc_buf_unref(deflated);
    }
    char text[1024];
    size_t n = inflate_all(stream, len, 16 + MAX_WBITS, text, sizeof text);
    assert_int_equal(n, sizeof small - 1 + 2 * (sizeof body - 1));
    assert_memory_equal(text, small, sizeof small - 1);
    assert_memory_equal(text + sizeof small - 1 + sizeof body - 1, body, sizeof body - 1);
}

static void test_client_messages_inflate_within_the_limit(void **state)
{
    (void)state;
    cc_buf_t *deflated = cc_deflate_compress(&pmd, body, sizeof body - 1);
    uint8_t *out;
    size_t len;
    /* As a client sends it: the 00 00 ff ff tail left off. */
    assert_int_equal(cc_deflate_inflate(&pmd, (const uint8_t *)deflated->data, deflated->len - 4,
                                        4096, &out, &len),
                     CC_INFLATE_OK);
    assert_int_equal(len, sizeof body - 1);
    assert_memory_equal(out, body, len);
    bson_free(out);
    assert_int_equal(cc_deflate_inflate(&pmd, (const uint8_t *)deflated->data, deflated->len - 4,
                                        64, &out, &len),
                     CC_INFLATE_TOO_BIG);
    assert_null(out);
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0x00, 0x12};
    assert_int_equal(cc_deflate_inflate(&pmd, garbage, sizeof garbage, 4096, &out, &len),
                     CC_INFLATE_CORRUPT);
    assert_int_equal(cc_deflate_inflate(&pmd, NULL, 0, 4096, &out, &len), CC_INFLATE_OK);
    assert_int_equal(len, 0);
    bson_free(out);
    cc_buf_unref(deflated);
}

static void test_offers(void **state)
{
    (void)state;
    assert_true(cc_pmd_acceptable("permessage-deflate"));
    assert_true(cc_pmd_acceptable("permessage-deflate; client_max_window_bits"));
    assert_true(cc_pmd_acceptable("Permessage-Deflate;client_max_window_bits=\"10\""));
    assert_true(cc_pmd_acceptable("permessage-deflate; server_max_window_bits=15; "
                                  "server_no_context_takeover; client_no_context_takeover"));
    assert_true(cc_pmd_acceptable("x-webkit-deflate-frame, permessage-deflate"));
    assert_true(
        cc_pmd_acceptable("permessage-deflate; server_max_window_bits=9, permessage-deflate"));
    assert_false(cc_pmd_acceptable("permessage-deflate; server_max_window_bits=9"));
    assert_false(cc_pmd_acceptable("permessage-deflate; server_max_window_bits"));
    assert_false(cc_pmd_acceptable("permessage-deflate; client_max_window_bits=7"));
    assert_false(cc_pmd_acceptable("permessage-deflate; client_no_context_takeover=1"));
    assert_false(cc_pmd_acceptable("permessage-deflate; foo"));
    assert_false(cc_pmd_acceptable("permessage-deflate; client_max_window_bits; "
                                   "client_max_window_bits"));
    assert_false(cc_pmd_acceptable("permessage-deflatex"));
    assert_false(cc_pmd_acceptable(""));
}

static void test_accept_encoding(void **state)
{
    (void)state;
    assert_true(cc_gzip_accepted("gzip"));
    assert_true(cc_gzip_accepted("gzip, deflate, br"));
    assert_true(cc_gzip_accepted("br;q=1.0, GZIP;q=0.5"));
    assert_true(cc_gzip_accepted("*"));
    assert_false(cc_gzip_accepted("gzip;q=0"));
    assert_false(cc_gzip_accepted("gzip;q=0, *"));
    assert_false(cc_gzip_accepted("identity"));
    assert_false(cc_gzip_accepted("x-gzip"));
    assert_false(cc_gzip_accepted("*;q=0"));
    assert_false(cc_gzip_accepted(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_body_ends_in_a_sync_flush_and_a_head_goes_stored_ahead),
        cmocka_unit_test(test_blocks_after_a_gzip_header_stream_as_gzip),
        cmocka_unit_test(test_client_messages_inflate_within_the_limit),
        cmocka_unit_test(test_offers),
        cmocka_unit_test(test_accept_encoding),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
