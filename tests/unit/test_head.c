/* SPDX-License-Identifier: Apache-2.0 */
/* An HTTP request's head judged from its first bytes (push/head): where it
 * ends, what exceeds lws's space for it, and the body framings refused. */
#include "push/head.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define GET "GET /v1/events?ns=shop.orders HTTP/1.1\r\n"

static cc_head_verdict_t check(const char *text)
{
    return cc_head_check(text, strlen(text));
}

/* A request line with a target of `target_len` bytes, then `fields`
 * header lines of `field_len` bytes each, ended or not. */
static char *request(size_t target_len, size_t fields, size_t field_len, bool ended)
{
    size_t cap = target_len + 64 + fields * (field_len + 2) + 4;
    char *text = malloc(cap), *p = text;
    p += sprintf(p, "GET /");
    memset(p, 'a', target_len);
    p += target_len;
    p += sprintf(p, " HTTP/1.1\r\n");
    for (size_t i = 0; i < fields; i++) {
        size_t n = (size_t)sprintf(p, "X-%zu: ", i);
        memset(p + n, 'v', field_len > n ? field_len - n : 0);
        p += field_len > n ? field_len : n;
        p += sprintf(p, "\r\n");
    }
    if (ended) {
        p += sprintf(p, "\r\n");
    }
    *p = '\0';
    return text;
}

static void test_whole_heads(void **state)
{
    (void)state;
    assert_int_equal(check(GET "Host: x\r\n\r\n"), CC_HEAD_OK);
    assert_int_equal(check(GET "\r\n"), CC_HEAD_OK);
    assert_int_equal(check("GET / HTTP/1.1\nHost: x\n\n"), CC_HEAD_OK); /* bare LF, as lws takes */
    /* bytes after the head (a pipelined request) are not the head's */
    assert_int_equal(check(GET "Host: x\r\n\r\nGET / HTTP/1.1\r\n"), CC_HEAD_OK);
}

static void test_partial_heads_wait(void **state)
{
    (void)state;
    assert_int_equal(check(""), CC_HEAD_INCOMPLETE);
    assert_int_equal(check("GET /v1/ev"), CC_HEAD_INCOMPLETE);
    assert_int_equal(check(GET "Host: x\r\n"), CC_HEAD_INCOMPLETE);
    assert_int_equal(check(GET "Host: x\r\n\r"), CC_HEAD_INCOMPLETE);
}

static void test_long_request_line_is_414(void **state)
{
    (void)state;
    char *ok = request(CC_HEAD_MAX_REQUEST_LINE - 20, 1, 20, true);
    assert_int_equal(check(ok), CC_HEAD_OK);
    free(ok);
    char *whole = request(CC_HEAD_MAX_REQUEST_LINE, 1, 20, true);
    assert_int_equal(check(whole), CC_HEAD_URI_TOO_LONG);
    free(whole);
    /* known before the line ends: a 100 KB access_token in the URL */
    char *cut = request(100000, 0, 0, false);
    assert_int_equal(cc_head_check(cut, CC_HEAD_MAX_BYTES + 1), CC_HEAD_URI_TOO_LONG);
    free(cut);
}

static void test_large_fields_are_431(void **state)
{
    (void)state;
    /* exactly the head space: still lws's to read */
    char *bare = request(10, 0, 0, true);
    size_t field = CC_HEAD_MAX_BYTES - strlen(bare) - 2; /* one field line and its CRLF */
    free(bare);
    char *exact = request(10, 1, field, true);
    assert_int_equal(strlen(exact), CC_HEAD_MAX_BYTES);
    assert_int_equal(check(exact), CC_HEAD_OK);
    free(exact);
    char *over = request(10, 1, field + 1, true);
    assert_int_equal(check(over), CC_HEAD_FIELDS_TOO_LARGE);
    free(over);
    /* a 20 KB Authorization header, one 64 KiB field: known from the
     * first bytes past the head space, whole or not */
    char *big = request(10, 1, 65536, false);
    assert_int_equal(cc_head_check(big, CC_HEAD_MAX_BYTES + 1), CC_HEAD_FIELDS_TOO_LARGE);
    free(big);
    /* 2,000 small fields: too many long before the bytes run out */
    char *many = request(10, 2000, 8, true);
    assert_int_equal(cc_head_check(many, CC_HEAD_MAX_BYTES + 1), CC_HEAD_FIELDS_TOO_LARGE);
    free(many);
    char *most = request(10, CC_HEAD_MAX_FIELDS, 8, true);
    assert_int_equal(check(most), CC_HEAD_OK);
    free(most);
    char *one_more = request(10, CC_HEAD_MAX_FIELDS + 1, 8, true);
    assert_int_equal(check(one_more), CC_HEAD_FIELDS_TOO_LARGE);
    free(one_more);
}

static void test_fragments_count_query_arguments(void **state)
{
    (void)state;
    char text[4096], *p = text;
    p += sprintf(p, "GET /v1/events?ns=a.b");
    for (int i = 1; i < CC_HEAD_MAX_FRAGMENTS; i++) {
        p += sprintf(p, "&ns=a.b");
    }
    p += sprintf(p, " HTTP/1.1\r\n\r\n");
    assert_int_equal(check(text), CC_HEAD_OK); /* 90 arguments, no field */
    p -= strlen(" HTTP/1.1\r\n\r\n");
    sprintf(p, " HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(check(text), CC_HEAD_URI_TOO_LONG); /* 91 fragments, most of them arguments */
}

static void test_bodies_are_400(void **state)
{
    (void)state;
    assert_int_equal(check(GET "Content-Length: 0\r\n\r\n"), CC_HEAD_OK);
    assert_int_equal(check(GET "content-length: 000\r\n\r\n"), CC_HEAD_OK);
    assert_int_equal(check(GET "Content-Length: 5\r\n\r\nhello"), CC_HEAD_BODY);
    assert_int_equal(check(GET "Transfer-Encoding: chunked\r\n\r\n"), CC_HEAD_BODY);
    assert_int_equal(check(GET "Content-Length: 0\r\nTRANSFER-ENCODING: chunked\r\n\r\n"),
                     CC_HEAD_BODY);
    /* names that only begin like them are other fields */
    assert_int_equal(check(GET "Content-Length-X: 5\r\nTransfer-Encodings: x\r\n\r\n"), CC_HEAD_OK);
}

static void test_field_values(void **state)
{
    (void)state;
    const char *text = GET "Host: x\r\norigin:  https://app.example  \r\nOrigin: second\r\n\r\n";
    char out[64];
    assert_true(cc_head_field(text, strlen(text), "Origin", out, sizeof out));
    assert_string_equal(out, "https://app.example");
    assert_false(cc_head_field(text, strlen(text), "Cookie", out, sizeof out));
    assert_false(cc_head_field(text, strlen(text), "Origin", out, 8)); /* does not fit */
    /* only whole lines of the head count */
    const char *partial = GET "Origin: https://app.exa";
    assert_false(cc_head_field(partial, strlen(partial), "Origin", out, sizeof out));
    const char *after = GET "\r\nOrigin: body\r\n";
    assert_false(cc_head_field(after, strlen(after), "Origin", out, sizeof out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_heads),
        cmocka_unit_test(test_partial_heads_wait),
        cmocka_unit_test(test_long_request_line_is_414),
        cmocka_unit_test(test_large_fields_are_431),
        cmocka_unit_test(test_fragments_count_query_arguments),
        cmocka_unit_test(test_bodies_are_400),
        cmocka_unit_test(test_field_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
