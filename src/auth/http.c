/* SPDX-License-Identifier: Apache-2.0 */
/* auth/http: finding a token in header values, with no I/O: the Bearer scheme of an
 * Authorization header (RFC 6750 section 2.1) and one cookie of a Cookie header (RFC 6265
 * section 5.4, read leniently about spaces as browsers write them). Which source wins is the
 * caller's decision. Calls nothing. */
#include "changecast/auth.h"

#include <string.h>
#include <strings.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

bool cc_auth_bearer_token(const char *header, const char **token, size_t *token_len)
{
    if (!header) {
        return false;
    }
    while (is_space(*header)) {
        header++;
    }
    if (strncasecmp(header, "Bearer", 6) != 0 || !is_space(header[6])) {
        return false;
    }
    const char *start = header + 6;
    while (is_space(*start)) {
        start++;
    }
    size_t len = strlen(start);
    while (len > 0 && is_space(start[len - 1])) {
        len--;
    }
    /* b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
    if (len == 0 || memchr(start, ' ', len) || memchr(start, '\t', len)) {
        return false;
    }
    *token = start;
    *token_len = len;
    return true;
}

bool cc_auth_cookie_find(const char *header, const char *name, const char **value,
                         size_t *value_len)
{
    if (!header || !name || !*name) {
        return false;
    }
    size_t name_len = strlen(name);
    const char *p = header;
    while (*p) {
        while (is_space(*p) || *p == ';') {
            p++;
        }
        const char *end = strchr(p, ';');
        if (!end) {
            end = p + strlen(p);
        }
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq) {
            const char *name_end = eq;
            while (name_end > p && is_space(name_end[-1])) {
                name_end--;
            }
            if ((size_t)(name_end - p) == name_len && memcmp(p, name, name_len) == 0) {
                const char *v = eq + 1, *v_end = end;
                while (v < v_end && is_space(*v)) {
                    v++;
                }
                while (v_end > v && is_space(v_end[-1])) {
                    v_end--;
                }
                /* cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE ) */
                if (v_end - v >= 2 && *v == '"' && v_end[-1] == '"') {
                    v++;
                    v_end--;
                }
                *value = v;
                *value_len = (size_t)(v_end - v);
                return true;
            }
        }
        p = end;
    }
    return false;
}
