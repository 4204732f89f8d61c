/* SPDX-License-Identifier: Apache-2.0 */
/* Compact relaxed Extended JSON over bson_iter_t. Each BSON type is written
 * as the Extended JSON v2 specification's relaxed mode writes it; strings
 * are validated as UTF-8 and escaped in runs, so bytes that need no escape
 * are copied with one memcpy. */
#include "changecast/json.h"

#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool reserve(cc_json_buffer_t *out, size_t extra)
{
    if (out->capacity - out->len > extra) {
        return true;
    }
    size_t capacity = out->capacity ? out->capacity : 64;
    while (capacity - out->len <= extra) {
        if (capacity > SIZE_MAX / 2) {
            return false;
        }
        capacity *= 2;
    }
    out->text = bson_realloc(out->text, capacity);
    out->capacity = capacity;
    return true;
}

static void append(cc_json_buffer_t *out, const char *bytes, size_t len)
{
    if (reserve(out, len)) {
        memcpy(out->text + out->len, bytes, len);
        out->len += len;
        out->text[out->len] = '\0';
    }
}

#define APPEND_LITERAL(out, literal) append((out), (literal), sizeof(literal) - 1)

static void append_char(cc_json_buffer_t *out, char c)
{
    append(out, &c, 1);
}

static void append_printf(cc_json_buffer_t *out, const char *format, ...) BSON_GNUC_PRINTF(2, 3);

static void append_printf(cc_json_buffer_t *out, const char *format, ...)
{
    char text[64];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(text, sizeof text, format, args);
    va_end(args);
    if (n > 0) {
        append(out, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
    }
}

/* A JSON string; false when `bytes` is not UTF-8 (a NUL is allowed: BSON
 * strings carry their length). */
static bool append_string(cc_json_buffer_t *out, const char *bytes, size_t len)
{
    if (!bson_utf8_validate(bytes, len, true)) {
        return false;
    }
    append_char(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        append(out, bytes + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            APPEND_LITERAL(out, "\\\"");
            break;
        case '\\':
            APPEND_LITERAL(out, "\\\\");
            break;
        case '\b':
            APPEND_LITERAL(out, "\\b");
            break;
        case '\f':
            APPEND_LITERAL(out, "\\f");
            break;
        case '\n':
            APPEND_LITERAL(out, "\\n");
            break;
        case '\r':
            APPEND_LITERAL(out, "\\r");
            break;
        case '\t':
            APPEND_LITERAL(out, "\\t");
            break;
        default:
            append_printf(out, "\\u%04x", c);
            break;
        }
    }
    append(out, bytes + run, len - run);
    append_char(out, '"');
    return true;
}

/* The shortest text that reads back as the same double, written as
 * JavaScript writes numbers: plain decimals from 1e-7 to 1e21 (a
 * microsecond timestamp stays 1765151234567890.0, not 1.76515123456789e+15),
 * exponents outside; ".0" kept on integral values so readers still see a
 * double. */
static void append_double(cc_json_buffer_t *out, double value)
{
    if (isnan(value)) {
        APPEND_LITERAL(out, "{\"$numberDouble\":\"NaN\"}");
        return;
    }
    if (isinf(value)) {
        if (value > 0) {
            APPEND_LITERAL(out, "{\"$numberDouble\":\"Infinity\"}");
        } else {
            APPEND_LITERAL(out, "{\"$numberDouble\":\"-Infinity\"}");
        }
        return;
    }
    char text[400];
    int precision = 15;
    for (; precision < 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, value);
        if (strtod(text, NULL) == value) {
            break;
        }
    }
    snprintf(text, sizeof text, "%.*g", precision, value);
    double magnitude = fabs(value);
    if (strchr(text, 'e') && magnitude >= 1e-7 && magnitude < 1e21) {
        int exponent = (int)floor(log10(magnitude));
        int decimals = precision - 1 - exponent;
        snprintf(text, sizeof text, "%.*f", decimals > 0 ? decimals : 0, value);
        if (strchr(text, '.')) { /* %f pads with zeros %g would not write */
            size_t len = strlen(text);
            while (text[len - 1] == '0') {
                text[--len] = '\0';
            }
            if (text[len - 1] == '.') {
                text[--len] = '\0';
            }
        }
    }
    append(out, text, strlen(text));
    if (!strpbrk(text, ".e")) {
        APPEND_LITERAL(out, ".0");
    }
}

/* Relaxed mode writes dates from 1970 to 9999 as ISO-8601 text, others
 * as their milliseconds. */
static void append_date(cc_json_buffer_t *out, int64_t millis)
{
    static const int64_t year_10000 = INT64_C(253402300800000);
    if (millis < 0 || millis >= year_10000) {
        append_printf(out, "{\"$date\":{\"$numberLong\":\"%" PRId64 "\"}}", millis);
        return;
    }
    time_t seconds = (time_t)(millis / 1000);
    struct tm tm;
    gmtime_r(&seconds, &tm);
    char text[40];
    size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    APPEND_LITERAL(out, "{\"$date\":\"");
    append(out, text, n);
    if (millis % 1000) {
        append_printf(out, ".%03d", (int)(millis % 1000));
    }
    APPEND_LITERAL(out, "Z\"}");
}

static void append_binary(cc_json_buffer_t *out, const bson_iter_t *iter)
{
    bson_subtype_t subtype;
    uint32_t len;
    const uint8_t *data;
    bson_iter_binary(iter, &subtype, &len, &data);
    APPEND_LITERAL(out, "{\"$binary\":{\"base64\":\"");
    size_t encoded = 4 * (((size_t)len + 2) / 3);
    if (len <= INT32_MAX && reserve(out, encoded + 1)) {
        out->len += (size_t)EVP_EncodeBlock((unsigned char *)out->text + out->len, data, (int)len);
    }
    append_printf(out, "\",\"subType\":\"%02x\"}}", (unsigned)subtype);
}

static void append_oid(cc_json_buffer_t *out, const bson_oid_t *oid)
{
    char hex[25];
    bson_oid_to_string(oid, hex);
    APPEND_LITERAL(out, "{\"$oid\":\"");
    append(out, hex, 24);
    APPEND_LITERAL(out, "\"}");
}

static bool append_container(cc_json_buffer_t *out, const bson_iter_t *iter, bool array, int depth);

static bool append_scoped_code(cc_json_buffer_t *out, const bson_iter_t *iter, int depth)
{
    uint32_t code_len, scope_len;
    const uint8_t *scope_data;
    const char *code = bson_iter_codewscope(iter, &code_len, &scope_len, &scope_data);
    bson_t scope;
    bson_iter_t scope_iter;
    APPEND_LITERAL(out, "{\"$code\":");
    if (!append_string(out, code, code_len) || !bson_init_static(&scope, scope_data, scope_len) ||
        !bson_iter_init(&scope_iter, &scope)) {
        return false;
    }
    APPEND_LITERAL(out, ",\"$scope\":");
    if (!append_container(out, &scope_iter, false, depth + 1)) {
        return false;
    }
    append_char(out, '}');
    return true;
}

static bool append_one(cc_json_buffer_t *out, const bson_iter_t *iter, int depth)
{
    uint32_t len;
    switch (bson_iter_type(iter)) {
    case BSON_TYPE_DOUBLE:
        append_double(out, bson_iter_double(iter));
        return true;
    case BSON_TYPE_UTF8: {
        const char *s = bson_iter_utf8(iter, &len);
        return append_string(out, s, len);
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
        bson_iter_t child;
        return bson_iter_recurse(iter, &child) &&
               append_container(out, &child, bson_iter_type(iter) == BSON_TYPE_ARRAY, depth + 1);
    }
    case BSON_TYPE_BINARY:
        append_binary(out, iter);
        return true;
    case BSON_TYPE_UNDEFINED:
        APPEND_LITERAL(out, "{\"$undefined\":true}");
        return true;
    case BSON_TYPE_OID:
        append_oid(out, bson_iter_oid(iter));
        return true;
    case BSON_TYPE_BOOL:
        if (bson_iter_bool(iter)) {
            APPEND_LITERAL(out, "true");
        } else {
            APPEND_LITERAL(out, "false");
        }
        return true;
    case BSON_TYPE_DATE_TIME:
        append_date(out, bson_iter_date_time(iter));
        return true;
    case BSON_TYPE_NULL:
        APPEND_LITERAL(out, "null");
        return true;
    case BSON_TYPE_REGEX: {
        const char *options;
        const char *pattern = bson_iter_regex(iter, &options);
        APPEND_LITERAL(out, "{\"$regularExpression\":{\"pattern\":");
        if (!append_string(out, pattern, strlen(pattern))) {
            return false;
        }
        /* The flags MongoDB knows, in the alphabetical order the Extended
         * JSON specification asks for (as libbson writes them). */
        char flags[8];
        size_t n = 0;
        for (const char *flag = "ilmsux"; *flag; flag++) {
            if (strchr(options, *flag)) {
                flags[n++] = *flag;
            }
        }
        APPEND_LITERAL(out, ",\"options\":\"");
        append(out, flags, n);
        append_char(out, '"');
        APPEND_LITERAL(out, "}}");
        return true;
    }
    case BSON_TYPE_DBPOINTER: {
        const char *collection;
        const bson_oid_t *oid;
        bson_iter_dbpointer(iter, &len, &collection, &oid);
        APPEND_LITERAL(out, "{\"$dbPointer\":{\"$ref\":");
        if (!append_string(out, collection, len)) {
            return false;
        }
        APPEND_LITERAL(out, ",\"$id\":");
        append_oid(out, oid);
        APPEND_LITERAL(out, "}}");
        return true;
    }
    case BSON_TYPE_CODE:
    case BSON_TYPE_SYMBOL: {
        bool code = bson_iter_type(iter) == BSON_TYPE_CODE;
        const char *s = code ? bson_iter_code(iter, &len) : bson_iter_symbol(iter, &len);
        if (code) {
            APPEND_LITERAL(out, "{\"$code\":");
        } else {
            APPEND_LITERAL(out, "{\"$symbol\":");
        }
        if (!append_string(out, s, len)) {
            return false;
        }
        append_char(out, '}');
        return true;
    }
    case BSON_TYPE_CODEWSCOPE:
        return append_scoped_code(out, iter, depth);
    case BSON_TYPE_INT32:
        append_printf(out, "%" PRId32, bson_iter_int32(iter));
        return true;
    case BSON_TYPE_TIMESTAMP: {
        uint32_t seconds, increment;
        bson_iter_timestamp(iter, &seconds, &increment);
        append_printf(out, "{\"$timestamp\":{\"t\":%" PRIu32 ",\"i\":%" PRIu32 "}}", seconds,
                      increment);
        return true;
    }
    case BSON_TYPE_INT64:
        append_printf(out, "%" PRId64, bson_iter_int64(iter));
        return true;
    case BSON_TYPE_DECIMAL128: {
        bson_decimal128_t value;
        char text[BSON_DECIMAL128_STRING];
        bson_iter_decimal128(iter, &value);
        bson_decimal128_to_string(&value, text);
        APPEND_LITERAL(out, "{\"$numberDecimal\":\"");
        append(out, text, strlen(text));
        APPEND_LITERAL(out, "\"}");
        return true;
    }
    case BSON_TYPE_MAXKEY:
        APPEND_LITERAL(out, "{\"$maxKey\":1}");
        return true;
    case BSON_TYPE_MINKEY:
        APPEND_LITERAL(out, "{\"$minKey\":1}");
        return true;
    case BSON_TYPE_EOD:
    default:
        return false;
    }
}

/* The elements `iter` is about to visit, as an object or an array. */
static bool append_container(cc_json_buffer_t *out, const bson_iter_t *iter, bool array, int depth)
{
    if (depth > CC_JSON_MAX_DEPTH) {
        return false;
    }
    bson_iter_t child = *iter;
    append_char(out, array ? '[' : '{');
    bool first = true;
    while (bson_iter_next(&child)) {
        if (!first) {
            append_char(out, ',');
        }
        first = false;
        if (!array) {
            if (!append_string(out, bson_iter_key(&child), bson_iter_key_len(&child))) {
                return false;
            }
            append_char(out, ':');
        }
        if (!append_one(out, &child, depth)) {
            return false;
        }
    }
    if (child.err_off) { /* corrupt: bson_iter_next stopped before the end */
        return false;
    }
    append_char(out, array ? ']' : '}');
    return true;
}

static void cut_to(cc_json_buffer_t *out, size_t len)
{
    out->len = len;
    if (out->text) {
        out->text[len] = '\0';
    }
}

bool cc_json_append_document(cc_json_buffer_t *out, const bson_t *doc)
{
    size_t start = out->len;
    bson_iter_t iter;
    if (!reserve(out, doc->len + doc->len / 4 + 16) || !bson_iter_init(&iter, doc) ||
        !append_container(out, &iter, false, 0)) {
        cut_to(out, start);
        return false;
    }
    return true;
}

bool cc_json_append_value(cc_json_buffer_t *out, const bson_iter_t *iter)
{
    size_t start = out->len;
    if (!append_one(out, iter, 0)) {
        cut_to(out, start);
        return false;
    }
    return true;
}

char *cc_json_buffer_steal(cc_json_buffer_t *out, size_t *len)
{
    char *text = out->text ? out->text : bson_strdup("");
    if (len) {
        *len = out->len;
    }
    *out = (cc_json_buffer_t){0};
    return text;
}

void cc_json_buffer_destroy(cc_json_buffer_t *out)
{
    bson_free(out->text);
    *out = (cc_json_buffer_t){0};
}

char *cc_json_document(const bson_t *doc, size_t *len)
{
    cc_json_buffer_t out = {0};
    if (!cc_json_append_document(&out, doc)) {
        cc_json_buffer_destroy(&out);
        return NULL;
    }
    return cc_json_buffer_steal(&out, len);
}

char *cc_json_value(const bson_iter_t *iter, size_t *len)
{
    cc_json_buffer_t out = {0};
    if (!cc_json_append_value(&out, iter)) {
        cc_json_buffer_destroy(&out);
        return NULL;
    }
    return cc_json_buffer_steal(&out, len);
}
