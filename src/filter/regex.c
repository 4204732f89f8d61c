/* SPDX-License-Identifier: Apache-2.0 */
/* filter/regex: the PCRE2 wrapper behind $regex, {field: /re/} and regexes inside $in, $nin, $all
 * and $not. A pattern is compiled (and JIT-compiled when available) once per filter; matching
 * allocates only a one-pair match block, so one compiled filter may be used from several threads.
 * Calls only PCRE2 and libbson. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "filter_internal.h"

#include <pcre2.h>
#include <string.h>

struct cc_regex {
    pcre2_code *code;
    char *pattern;
    char *options; /* as written, for equality against BSON regex values */
};

static bool options_to_flags(const char *options, uint32_t *flags, bson_error_t *error)
{
    /* The $regex options MongoDB documents: i, m, x, s; u is accepted and means nothing more
     * since patterns are always UTF-8 ("$regex" in the MongoDB manual). */
    *flags = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    for (const char *o = options; *o; o++) {
        switch (*o) {
        case 'i':
            *flags |= PCRE2_CASELESS;
            break;
        case 'm':
            *flags |= PCRE2_MULTILINE;
            break;
        case 's':
            *flags |= PCRE2_DOTALL;
            break;
        case 'x':
            *flags |= PCRE2_EXTENDED;
            break;
        case 'u':
            break;
        default:
            bson_set_error(error, 0, 0,
                           "$regex: invalid flag '%c' in options \"%s\" (use i, m, s, x)", *o,
                           options);
            return false;
        }
    }
    return true;
}

cc_regex_t *cc_regex_compile(const char *pattern, const char *options, bson_error_t *error)
{
    uint32_t flags;
    if (!options_to_flags(options, &flags, error))
        return NULL;
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, flags, &code, &offset, NULL);
    if (!re) {
        PCRE2_UCHAR message[160];
        pcre2_get_error_message(code, message, sizeof message);
        bson_set_error(error, 0, 0, "$regex: invalid pattern \"%s\" at offset %zu: %s", pattern,
                       (size_t)offset, (const char *)message);
        return NULL;
    }
    /* JIT is an optimisation only: a platform without it still matches through the interpreter. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    cc_regex_t *r = bson_malloc0(sizeof *r);
    r->code = re;
    r->pattern = bson_strdup(pattern);
    r->options = bson_strdup(options);
    return r;
}

bool cc_regex_matches(const cc_regex_t *re, const char *subject, size_t len)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return false;
    /* Errors (a subject that is not UTF-8, a match limit) count as no match, as in the server. */
    int rc = pcre2_match(re->code, (PCRE2_SPTR)subject, len, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

bool cc_regex_equals_value(const cc_regex_t *re, const char *pattern, const char *options)
{
    return strcmp(re->pattern, pattern) == 0 && strcmp(re->options, options) == 0;
}

void cc_regex_destroy(cc_regex_t *re)
{
    if (!re)
        return;
    pcre2_code_free(re->code);
    bson_free(re->pattern);
    bson_free(re->options);
    bson_free(re);
}
