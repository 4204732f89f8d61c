/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the expose list (src/core/expose.c), which an operator
 * writes in the config and every subscription request is checked against.
 * The input is the list's text (up to its first NUL byte, as a config value
 * is a C string). Beyond not crashing, a parsed list must hold only valid
 * namespaces, each covered by the list itself, each printing back to a
 * pattern that parses to the same, and its $match stage must be valid BSON. */
#include "changecast/expose.h"
#include "core/fuzz/fuzz_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_pattern(const cc_expose_t *expose, const cc_ns_pattern_t *pattern)
{
    CHECK(pattern->db && pattern->db[0] != '\0' && strlen(pattern->db) <= 63);
    CHECK(strpbrk(pattern->db, "/\\. \"$*") == NULL);
    CHECK(!pattern->coll || (pattern->coll[0] != '\0' && strpbrk(pattern->coll, "$*") == NULL));
    CHECK(cc_expose_covers(expose, pattern));
    CHECK(cc_ns_pattern_matches(pattern, pattern->db, pattern->coll ? pattern->coll : "any"));

    char *text = bson_strdup_printf("%s.%s", pattern->db, pattern->coll ? pattern->coll : "*");
    cc_ns_pattern_t again;
    bson_error_t error;
    /* Surrounding white space is trimmed, so a name that ends in some
     * does not come back; everything else must. */
    if (cc_ns_pattern_parse(text, &again, &error)) {
        CHECK(strcmp(again.db, pattern->db) == 0);
        CHECK(!again.coll == !pattern->coll);
        cc_ns_pattern_destroy(&again);
    }
    bson_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';

    cc_expose_t expose;
    bson_error_t error;
    if (cc_expose_parse(text, &expose, &error)) {
        for (size_t i = 0; i < expose.count; i++) {
            check_pattern(&expose, &expose.patterns[i]);
        }
        bson_t pipeline = BSON_INITIALIZER;
        size_t offset;
        cc_expose_append_match_stage(&expose, &pipeline, "0");
        CHECK(bson_validate(&pipeline, BSON_VALIDATE_NONE, &offset));
        bson_destroy(&pipeline);
        cc_expose_destroy(&expose);
    } else {
        CHECK(error.message[0] != '\0');
        CHECK(expose.count == 0 && expose.patterns == NULL);
    }

    cc_ns_pattern_t pattern;
    if (cc_ns_pattern_parse(text, &pattern, &error)) {
        cc_ns_pattern_destroy(&pattern);
    }
    free(text);
    return 0;
}
