/* SPDX-License-Identifier: Apache-2.0 */
/* An HTTP request's head judged from its first bytes (head.h). Lines end
 * in CRLF or, as lws also accepts, a bare LF. */
#include "head.h"

#include <string.h>
#include <strings.h>

/* Where the line that starts at `at` ends (its LF), or len: not yet. */
static size_t line_end(const char *bytes, size_t len, size_t at)
{
    const char *lf = memchr(bytes + at, '\n', len - at);
    return lf ? (size_t)(lf - bytes) : len;
}

/* The line's length without its CR. */
static size_t line_len(const char *bytes, size_t at, size_t end)
{
    size_t n = end - at;
    return n && bytes[end - 1] == '\r' ? n - 1 : n;
}

/* The value of a "name: value" line if its name is `name`. */
static const char *field_value(const char *line, size_t n, const char *name, size_t *value_len)
{
    size_t name_len = strlen(name);
    if (n <= name_len || line[name_len] != ':' || strncasecmp(line, name, name_len) != 0) {
        return NULL;
    }
    const char *value = line + name_len + 1, *end = line + n;
    while (value < end && (*value == ' ' || *value == '\t')) {
        value++;
    }
    while (end > value && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    *value_len = (size_t)(end - value);
    return value;
}

/* Query arguments of the request line "METHOD target version": lws keeps
 * each as a fragment. */
static size_t query_arguments(const char *line, size_t n)
{
    const char *query = memchr(line, '?', n);
    if (!query) {
        return 0;
    }
    const char *end = memchr(query, ' ', n - (size_t)(query - line));
    end = end ? end : line + n;
    size_t arguments = 1;
    for (const char *p = query + 1; p < end; p++) {
        arguments += *p == '&';
    }
    return arguments;
}

static bool nonzero_length(const char *value, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (value[i] != '0') {
            return true;
        }
    }
    return false;
}

cc_head_verdict_t cc_head_check(const char *bytes, size_t len)
{
    size_t end = line_end(bytes, len, 0);
    if (end == len) {
        return len > CC_HEAD_MAX_REQUEST_LINE ? CC_HEAD_URI_TOO_LONG : CC_HEAD_INCOMPLETE;
    }
    size_t request_line = line_len(bytes, 0, end);
    if (request_line > CC_HEAD_MAX_REQUEST_LINE) {
        return CC_HEAD_URI_TOO_LONG;
    }
    size_t arguments = query_arguments(bytes, request_line), fields = 0;
    bool body = false;
    for (size_t at = end + 1; at < len; at = end + 1) {
        end = line_end(bytes, len, at);
        if (end == len) {
            break;
        }
        size_t n = line_len(bytes, at, end), value_len;
        if (n == 0) {
            if (end + 1 > CC_HEAD_MAX_BYTES || fields > CC_HEAD_MAX_FIELDS) {
                return CC_HEAD_FIELDS_TOO_LARGE;
            }
            if (fields + arguments > CC_HEAD_MAX_FRAGMENTS) {
                return arguments > fields ? CC_HEAD_URI_TOO_LONG : CC_HEAD_FIELDS_TOO_LARGE;
            }
            return body ? CC_HEAD_BODY : CC_HEAD_OK;
        }
        fields++;
        const char *value = field_value(bytes + at, n, "content-length", &value_len);
        body |= value && nonzero_length(value, value_len);
        body |= field_value(bytes + at, n, "transfer-encoding", &value_len) != NULL;
    }
    return len > CC_HEAD_MAX_BYTES || fields > CC_HEAD_MAX_FIELDS ? CC_HEAD_FIELDS_TOO_LARGE
                                                                  : CC_HEAD_INCOMPLETE;
}

bool cc_head_field(const char *bytes, size_t len, const char *name, char *out, size_t size)
{
    size_t at = line_end(bytes, len, 0);
    while (at < len) {
        size_t start = at + 1, end = line_end(bytes, len, start), value_len;
        if (end == len) {
            return false;
        }
        size_t n = line_len(bytes, start, end);
        if (n == 0) {
            return false;
        }
        const char *value = field_value(bytes + start, n, name, &value_len);
        if (value) {
            if (value_len >= size) {
                return false;
            }
            memcpy(out, value, value_len);
            out[value_len] = '\0';
            return true;
        }
        at = end;
    }
    return false;
}
