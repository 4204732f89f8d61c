/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: what src/push/deflate.c reads from clients. The input's
 * first byte picks the reader: a Sec-WebSocket-Extensions offer, an
 * Accept-Encoding header (both as NUL-terminated text, as lws copies
 * them), or a compressed WebSocket message to inflate within a limit. An
 * inflated message must respect the limit; compressing what came out and
 * inflating it again must give it back. */
#include "push/deflate.h"
#include "core/fuzz/fuzz_check.h"

#include <bson/bson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cc_deflate_t pmd;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) {
        return 0;
    }
    if (!pmd.ready) {
        CHECK(cc_deflate_init(&pmd));
    }
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 3) {
    case 0:
        (void)cc_pmd_acceptable(text);
        break;
    case 1:
        (void)cc_gzip_accepted(text);
        break;
    default: {
        const size_t max = 4096;
        uint8_t *out;
        size_t out_len;
        if (cc_deflate_inflate(&pmd, data + 1, size - 1, max, &out, &out_len) == CC_INFLATE_OK) {
            CHECK(out_len <= max && out[out_len] == '\0');
            cc_buf_t *again = cc_deflate_compress(&pmd, out, out_len);
            CHECK(again && again->len >= 4);
            uint8_t *back;
            size_t back_len;
            CHECK(cc_deflate_inflate(&pmd, (const uint8_t *)again->data, again->len - 4, max, &back,
                                     &back_len) == CC_INFLATE_OK);
            CHECK(back_len == out_len && memcmp(back, out, out_len) == 0);
            bson_free(back);
            cc_buf_unref(again);
            bson_free(out);
        }
        break;
    }
    }
    free(text);
    return 0;
}
