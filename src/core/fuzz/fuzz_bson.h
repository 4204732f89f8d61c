/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers the fuzz targets share (header only, no target of its own): turn
 * fuzzer bytes into a BSON document. The fuzzer mutates a document's
 * elements; the length prefix and the final NUL are added here, since
 * libbson refuses a document whose prefix is off by one and the fuzzer
 * cannot see inside libbson (not instrumented) to learn why. */
#ifndef CC_FUZZ_BSON_H
#define CC_FUZZ_BSON_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A malloc'd document of exactly 4 + size + 1 bytes (so ASan sees any read
 * past it); NULL when too large. Free with free(). */
static inline uint8_t *fuzz_bson_frame(const uint8_t *elements, size_t size, size_t *len)
{
    if (size > (1u << 20)) {
        return NULL;
    }
    *len = 4 + size + 1;
    uint8_t *bytes = malloc(*len);
    if (!bytes) {
        return NULL;
    }
    uint32_t len_le = BSON_UINT32_TO_LE((uint32_t)*len);
    memcpy(bytes, &len_le, 4);
    memcpy(bytes + 4, elements, size);
    bytes[*len - 1] = 0;
    return bytes;
}

/* Whether every document and array inside is well formed, at any depth, as
 * MongoDB's own output always is. bson_validate() is not enough: libbson
 * 1.23 skips an embedded document that lacks its final NUL instead of
 * rejecting it. Strings are not checked for UTF-8: MongoDB stores what
 * drivers send, and invalid UTF-8 does reach change events. */
static inline bool fuzz_bson_well_formed_as(const bson_t *doc, bool array, int depth)
{
    bson_iter_t iter;
    uint32_t index = 0;
    if (depth > 100 || !bson_iter_init(&iter, doc)) {
        return false;
    }
    while (bson_iter_next(&iter)) {
        /* Arrays are keyed "0", "1", ... by MongoDB and every driver (and
         * libbson warns on stderr about any other, which slows fuzzing). */
        char expected[16];
        if (array && (snprintf(expected, sizeof expected, "%u", index++) < 0 ||
                      strcmp(bson_iter_key(&iter), expected) != 0)) {
            return false;
        }
        const uint8_t *data = NULL;
        uint32_t len = 0;
        bool child_is_array = false;
        bson_t child;
        if (BSON_ITER_HOLDS_DOCUMENT(&iter)) {
            bson_iter_document(&iter, &len, &data);
        } else if (BSON_ITER_HOLDS_ARRAY(&iter)) {
            bson_iter_array(&iter, &len, &data);
            child_is_array = true;
        } else if (BSON_ITER_HOLDS_CODEWSCOPE(&iter)) {
            uint32_t code_len;
            bson_iter_codewscope(&iter, &code_len, &len, &data);
        } else {
            continue;
        }
        if (!data || !bson_init_static(&child, data, len) ||
            !fuzz_bson_well_formed_as(&child, child_is_array, depth + 1)) {
            return false;
        }
    }
    /* bson_iter_next() stops on a malformed element as it does at the end;
     * err_off tells them apart (bson_validate() reads it the same way). */
    return iter.err_off == 0;
}

static inline bool fuzz_bson_well_formed(const bson_t *doc, int depth)
{
    return fuzz_bson_well_formed_as(doc, false, depth);
}

#endif
