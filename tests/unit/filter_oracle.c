/* SPDX-License-Identifier: Apache-2.0 */
/* filter_oracle: the C side of tests/integration/filter-differential.test.js. Reads one
 * {"filter": ..., "doc": ...} canonical Extended JSON object per line on stdin and prints, per
 * line, "1" (matches), "0" (does not match) or "E <message>" (filter rejected, or the line is not
 * valid Extended JSON). Calls the filter module and libbson only. */
#include "changecast/filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libbson's JSON reader takes {$type: ...} and {$regex: ..., $options: ...} for legacy Extended
 * JSON, so the test spells those operators $__type, $__regex and $__options in filters. */
static void answer(const char *line, size_t len)
{
    bson_error_t error;
    bson_t *pair = bson_new_from_json((const uint8_t *)line, (ssize_t)len, &error);
    if (!pair) {
        printf("E bad input: %s\n", error.message);
        return;
    }
    bson_iter_t it;
    bson_t raw_filter, filter = BSON_INITIALIZER, doc;
    const uint8_t *data;
    uint32_t dlen;
    if (!bson_iter_init_find(&it, pair, "filter") || !BSON_ITER_HOLDS_DOCUMENT(&it)) {
        printf("E bad input: no filter document\n");
        goto done;
    }
    bson_iter_document(&it, &dlen, &data);
    bson_init_static(&raw_filter, data, dlen);
    bson_iter_t fields;
    bson_iter_init(&fields, &raw_filter);
    cc_filter_unescape_keys(&fields, &filter);
    if (!bson_iter_init_find(&it, pair, "doc") || !BSON_ITER_HOLDS_DOCUMENT(&it)) {
        printf("E bad input: no doc document\n");
        goto done;
    }
    bson_iter_document(&it, &dlen, &data);
    bson_init_static(&doc, data, dlen);

    cc_filter_t *f = cc_filter_compile(&filter, &error);
    if (!f) {
        printf("E %s\n", error.message);
        goto done;
    }
    printf("%d\n", cc_filter_matches(f, &doc) ? 1 : 0);
    cc_filter_destroy(f);
done:
    bson_destroy(&filter);
    bson_destroy(pair);
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0) {
            printf("E bad input: empty line\n");
            continue;
        }
        answer(line, (size_t)n);
    }
    free(line);
    return 0;
}
