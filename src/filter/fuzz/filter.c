/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the subscriber filter, end to end as the push port uses
 * it: Extended JSON text parsed (cc_filter_parse_json), compiled, then
 * matched against a change event.
 *
 * The input is the filter's text, a NUL byte, then the event: Extended JSON
 * when it starts with '{', otherwise the elements of a BSON document (the
 * target adds the length prefix and terminating NUL) that must be well
 * formed at every depth, since events come from MongoDB. The event document is compiled as a
 * filter too, so operands of every BSON type reach the compiler, and every
 * pair of its top-level values goes through cc_bson_compare_values, which
 * must be an order: cmp(a, a) == 0 and sign(cmp(a, b)) == -sign(cmp(b, a)).
 *
 * The text is handed over in a buffer of exactly its length, not
 * NUL-terminated, as a WebSocket message is, so reading past it is an
 * AddressSanitizer report. */
#include "changecast/filter.h"
#include "core/fuzz/fuzz_bson.h"
#include "core/fuzz/fuzz_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

/* The event; false when the bytes are not a document MongoDB could send. */
static bool decode_event(const uint8_t *data, size_t size, bson_t *event)
{
    bson_error_t error;
    if (size > 0 && data[0] == '{') {
        return bson_init_from_json(event, (const char *)data, (ssize_t)size, &error);
    }
    size_t len;
    uint8_t *bytes = fuzz_bson_frame(data, size, &len);
    bson_t framed;
    bool ok = bytes && bson_init_static(&framed, bytes, len) && fuzz_bson_well_formed(&framed, 0);
    if (ok) {
        bson_copy_to(&framed, event);
    }
    free(bytes);
    return ok;
}

static void check_order(const bson_t *doc)
{
    bson_iter_t a, b;
    int outer = 0;
    if (!bson_iter_init(&a, doc)) {
        return;
    }
    /* Quadratic: a bounded number of pairs keeps each run fast. */
    while (bson_iter_next(&a) && outer++ < 16) {
        CHECK(cc_bson_compare_values(&a, &a) == 0);
        if (!bson_iter_init(&b, doc)) {
            return;
        }
        int inner = 0;
        while (bson_iter_next(&b) && inner++ < 16) {
            CHECK(sign(cc_bson_compare_values(&a, &b)) == -sign(cc_bson_compare_values(&b, &a)));
        }
    }
}

static void run_filter(const bson_t *query, const bson_t *event, bool have_event)
{
    bson_error_t error;
    cc_filter_t *filter = cc_filter_compile(query, &error);
    if (!filter) {
        CHECK(error.message[0] != '\0');
        return;
    }
    bson_t pinned = BSON_INITIALIZER;
    (void)cc_filter_pinned_ids(filter, &pinned);
    bson_destroy(&pinned);
    if (have_event) {
        bool first = cc_filter_matches(filter, event);
        /* Matching is pure: the same answer every time. */
        CHECK(cc_filter_matches(filter, event) == first);
    }
    cc_filter_destroy(filter);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    char *text = malloc(text_len ? text_len : 1);
    CHECK(text);
    memcpy(text, data, text_len);

    bson_t event;
    bool have_event = nul && decode_event(nul + 1, size - text_len - 1, &event);
    bson_t query;
    bson_error_t error;
    if (cc_filter_parse_json(text, text_len, &query, &error)) {
        run_filter(&query, &event, have_event);
    }
    bson_destroy(&query);
    free(text);

    if (have_event) {
        check_order(&event);
        run_filter(&event, &event, true);
        bson_destroy(&event);
    }
    return 0;
}
