/* SPDX-License-Identifier: Apache-2.0 */
/* Subscriber filters arrive as Extended JSON text and are parsed by
 * libbson, whose reader takes {"$type": ...} and {"$regex": ..., "$options":
 * ...} for legacy Extended JSON (binary subtype, regular expression) and
 * would mangle those query operators. So the three keys are renamed to
 * $__type, $__regex and $__options in the text, parsed, and renamed back in
 * the parsed document. Only keys are touched (a quoted name followed by a
 * colon), never string values. */
#include "changecast/filter.h"

#include <ctype.h>
#include <string.h>

static const char *const escaped_keys[] = {"\"$type\"", "\"$regex\"", "\"$options\""};

static bool is_key_at(const char *text, size_t len, size_t at, size_t key_len)
{
    size_t i = at + key_len;
    while (i < len && isspace((unsigned char)text[i])) {
        i++;
    }
    return i < len && text[i] == ':';
}

static char *escape_operator_keys(const char *json, size_t len, size_t *out_len)
{
    char *out = bson_malloc(len * 2 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (json[i] != '"') {
            out[o++] = json[i];
            continue;
        }
        size_t k = 0;
        while (k < 3 && !(i + strlen(escaped_keys[k]) <= len &&
                          memcmp(json + i, escaped_keys[k], strlen(escaped_keys[k])) == 0 &&
                          is_key_at(json, len, i, strlen(escaped_keys[k])))) {
            k++;
        }
        if (k < 3) {
            o += (size_t)sprintf(out + o, "\"$__%s", escaped_keys[k] + 2);
            i += strlen(escaped_keys[k]) - 1;
            continue;
        }
        /* Any other string is copied whole, escapes included. */
        out[o++] = json[i++];
        while (i < len && json[i] != '"') {
            if (json[i] == '\\' && i + 1 < len) {
                out[o++] = json[i++];
            }
            out[o++] = json[i++];
        }
        if (i < len) {
            out[o++] = json[i];
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

void cc_filter_unescape_keys(bson_iter_t *iter, bson_t *out)
{
    while (bson_iter_next(iter)) {
        const char *key = bson_iter_key(iter);
        char name[64];
        if (strncmp(key, "$__", 3) == 0 && strlen(key) < sizeof name) {
            snprintf(name, sizeof name, "$%s", key + 3);
            key = name;
        }
        bson_iter_t child;
        bson_t sub;
        if (BSON_ITER_HOLDS_DOCUMENT(iter) && bson_iter_recurse(iter, &child)) {
            bson_append_document_begin(out, key, -1, &sub);
            cc_filter_unescape_keys(&child, &sub);
            bson_append_document_end(out, &sub);
        } else if (BSON_ITER_HOLDS_ARRAY(iter) && bson_iter_recurse(iter, &child)) {
            bson_append_array_begin(out, key, -1, &sub);
            cc_filter_unescape_keys(&child, &sub);
            bson_append_array_end(out, &sub);
        } else {
            bson_append_iter(out, key, -1, iter);
        }
    }
}

bool cc_filter_parse_json(const char *json, size_t len, bson_t *out, bson_error_t *error)
{
    size_t escaped_len;
    char *escaped = escape_operator_keys(json, len, &escaped_len);
    bson_t parsed;
    bool ok = bson_init_from_json(&parsed, escaped, (ssize_t)escaped_len, error);
    bson_free(escaped);
    bson_init(out);
    if (!ok) {
        return false;
    }
    bson_iter_t iter;
    bson_iter_init(&iter, &parsed);
    cc_filter_unescape_keys(&iter, out);
    bson_destroy(&parsed);
    return true;
}
