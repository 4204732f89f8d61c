/* SPDX-License-Identifier: Apache-2.0 */
/* core/json: BSON as compact relaxed Extended JSON (the Extended JSON v2
 * specification's relaxed mode, with no insignificant whitespace), what the
 * push port sends. libbson 1.23 writes relaxed JSON only with a space
 * around every colon and brace, about 15% more bytes, and spends most of
 * its time in strlen and byte-by-byte escaping; this writes straight into
 * one growing buffer. Calls libbson and OpenSSL (base64) only. */
#ifndef CHANGECAST_JSON_H
#define CHANGECAST_JSON_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>

/* Deeper documents are refused: MongoDB stores at most 180 levels. */
#define CC_JSON_MAX_DEPTH 200

/* A growing text buffer. */
typedef struct cc_json_buffer {
    char *text;
    size_t len;
    size_t capacity;
} cc_json_buffer_t;

/* The document as compact relaxed Extended JSON, NUL-terminated and owned
 * by the caller (bson_free); its length in *len when len is not NULL. NULL
 * when the document cannot be written: a string or key that is not UTF-8
 * (libbson refuses those too), corrupt BSON, or nesting deeper than
 * CC_JSON_MAX_DEPTH. */
char *cc_json_document(const bson_t *doc, size_t *len);

/* One value (the iterator's current element) the same way. */
char *cc_json_value(const bson_iter_t *iter, size_t *len);

/* Appends the document or value to `out`; false (and `out` unchanged in
 * length) when it cannot be written, as above. */
bool cc_json_append_document(cc_json_buffer_t *out, const bson_t *doc);
bool cc_json_append_value(cc_json_buffer_t *out, const bson_iter_t *iter);

/* The text so far, handed to the caller (bson_free); the buffer is empty
 * after. */
char *cc_json_buffer_steal(cc_json_buffer_t *out, size_t *len);
void cc_json_buffer_destroy(cc_json_buffer_t *out);

#endif
