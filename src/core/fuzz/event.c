/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: what src/core/event.c reads from outside. A client's
 * resume token (Last-Event-ID, ?after=, a WebSocket "after") goes through
 * cc_token_normalize; a change event from upstream through cc_event_new.
 *
 * The input is the token's text, then optionally a NUL byte and the
 * elements of a change event as BSON (the target adds the length prefix and
 * the terminating NUL). The token is normalised into buffers of exactly its
 * length plus one, and one byte short, both on the heap, so writing past
 * either is an AddressSanitizer report; the answer must be exactly the
 * documented rule: 2 to CC_MAX_RESUME_TOKEN hex digits, copied upper-cased. */
#include "changecast/event.h"
#include "changecast/json.h"
#include "core/fuzz/fuzz_bson.h"
#include "core/fuzz/fuzz_check.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_token(const char *text, size_t len)
{
    bool hex = len >= 2 && len <= CC_MAX_RESUME_TOKEN;
    for (size_t i = 0; hex && i < len; i++) {
        hex = isxdigit((unsigned char)text[i]) != 0;
    }
    char *out = malloc(len + 1);
    CHECK(out);
    CHECK(cc_token_normalize(text, out, len + 1) == hex);
    if (hex) {
        CHECK(strlen(out) == len);
        for (size_t i = 0; i < len; i++) {
            CHECK(out[i] == (char)toupper((unsigned char)text[i]));
        }
        CHECK(cc_token_compare(out, out) == 0);
    }
    free(out);
    if (len > 0) {
        char *short_out = malloc(len);
        CHECK(short_out);
        CHECK(!cc_token_normalize(text, short_out, len));
        free(short_out);
    }
}

/* The compact writer says what libbson's relaxed JSON says: whatever
 * libbson writes and reads back, ours is written too and reads back to the
 * same document. */
static void check_json(const bson_t *doc)
{
    char *theirs = bson_as_relaxed_extended_json(doc, NULL);
    char *ours = cc_json_document(doc, NULL);
    bson_t *from_theirs = theirs ? bson_new_from_json((const uint8_t *)theirs, -1, NULL) : NULL;
    if (from_theirs) {
        CHECK(ours);
        bson_t *from_ours = bson_new_from_json((const uint8_t *)ours, -1, NULL);
        CHECK(from_ours && bson_equal(from_ours, from_theirs));
        bson_destroy(from_ours);
        bson_destroy(from_theirs);
    }
    bson_free(theirs);
    bson_free(ours);
}

static void check_event(const uint8_t *data, size_t size)
{
    size_t len;
    uint8_t *bytes = fuzz_bson_frame(data, size, &len);
    bson_t change;
    bson_error_t error;
    /* MongoDB sends well-formed BSON, though not always valid UTF-8. */
    if (bytes && bson_init_static(&change, bytes, len) && fuzz_bson_well_formed(&change, 0)) {
        check_json(&change);
        cc_event_t *event = cc_event_new(&change, &error);
        if (event) {
            size_t json_len = 0;
            CHECK(event->token && event->db && event->operation);
            /* Push writes event->json to every subscriber as it is. */
            CHECK(event->json && strlen(event->json) == event->json_len);
            CHECK(cc_event_size(event) >= event->document.len);
            const char *json = cc_event_json_default(event, &json_len);
            CHECK(json && strlen(json) == json_len);
            cc_event_unref(event);
        } else {
            CHECK(error.message[0] != '\0');
        }
    }
    free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    char *text = malloc(text_len + 1);
    CHECK(text);
    memcpy(text, data, text_len);
    text[text_len] = '\0';
    check_token(text, text_len);
    free(text);
    if (nul) {
        check_event(nul + 1, size - text_len - 1);
    }
    return 0;
}
