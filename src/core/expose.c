/* SPDX-License-Identifier: Apache-2.0 */
/* Namespace rules follow MongoDB's: a database name has no '.', '/', '\\',
 * space, '"' or '$' and at most 63 bytes; a collection name is non-empty
 * and has no '$' and no NUL (docs: "Naming Restrictions"). */
#include "changecast/expose.h"

#include <ctype.h>
#include <string.h>

static bool valid_db(const char *db, size_t len)
{
    if (len == 0 || len > 63) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (strchr("/\\. \"$*<>:|?", db[i])) {
            return false;
        }
    }
    return true;
}

bool cc_ns_pattern_parse(const char *text, cc_ns_pattern_t *out, bson_error_t *error)
{
    while (isspace((unsigned char)*text)) {
        text++;
    }
    size_t len = strlen(text);
    while (len && isspace((unsigned char)text[len - 1])) {
        len--;
    }
    const char *dot = memchr(text, '.', len);
    if (!dot || !valid_db(text, (size_t)(dot - text))) {
        bson_set_error(error, 0, 0, "\"%.*s\" is not a namespace: use db.collection or db.*",
                       (int)len, text);
        return false;
    }
    const char *coll = dot + 1;
    size_t coll_len = len - (size_t)(coll - text);
    if (coll_len == 0 || memchr(coll, '$', coll_len) ||
        (memchr(coll, '*', coll_len) && !(coll_len == 1 && *coll == '*'))) {
        bson_set_error(error, 0, 0, "\"%.*s\": the collection must be a name or *", (int)len, text);
        return false;
    }
    /* One block, db then coll: every subscription holds one of these. */
    size_t db_len = (size_t)(dot - text);
    bool every_coll = coll_len == 1 && *coll == '*';
    out->db = bson_malloc(db_len + 1 + (every_coll ? 0 : coll_len + 1));
    memcpy(out->db, text, db_len);
    out->db[db_len] = '\0';
    out->coll = NULL;
    if (!every_coll) {
        out->coll = out->db + db_len + 1;
        memcpy(out->coll, coll, coll_len);
        out->coll[coll_len] = '\0';
    }
    return true;
}

void cc_ns_pattern_destroy(cc_ns_pattern_t *pattern)
{
    bson_free(pattern->db); /* coll is in the same block */
    pattern->db = pattern->coll = NULL;
}

bool cc_expose_parse(const char *text, cc_expose_t *out, bson_error_t *error)
{
    memset(out, 0, sizeof *out);
    char *copy = bson_strdup(text), *save = NULL;
    bool ok = true;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        cc_ns_pattern_t pattern;
        if (!cc_ns_pattern_parse(item, &pattern, error)) {
            ok = false;
            break;
        }
        out->patterns = bson_realloc(out->patterns, (out->count + 1) * sizeof *out->patterns);
        out->patterns[out->count++] = pattern;
    }
    bson_free(copy);
    if (!ok) {
        cc_expose_destroy(out);
    }
    return ok;
}

void cc_expose_destroy(cc_expose_t *expose)
{
    for (size_t i = 0; i < expose->count; i++) {
        cc_ns_pattern_destroy(&expose->patterns[i]);
    }
    bson_free(expose->patterns);
    memset(expose, 0, sizeof *expose);
}

bool cc_ns_pattern_matches(const cc_ns_pattern_t *pattern, const char *db, const char *coll)
{
    return strcmp(pattern->db, db) == 0 &&
           (!pattern->coll || (coll && strcmp(pattern->coll, coll) == 0));
}

bool cc_expose_covers(const cc_expose_t *expose, const cc_ns_pattern_t *requested)
{
    for (size_t i = 0; i < expose->count; i++) {
        const cc_ns_pattern_t *allowed = &expose->patterns[i];
        if (strcmp(allowed->db, requested->db) == 0 &&
            (!allowed->coll || (requested->coll && strcmp(allowed->coll, requested->coll) == 0))) {
            return true;
        }
    }
    return false;
}

void cc_expose_append_match_stage(const cc_expose_t *expose, bson_t *pipeline_array,
                                  const char *key)
{
    bson_t stage, match, any;
    BSON_APPEND_DOCUMENT_BEGIN(pipeline_array, key, &stage);
    BSON_APPEND_DOCUMENT_BEGIN(&stage, "$match", &match);
    BSON_APPEND_ARRAY_BEGIN(&match, "$or", &any);
    for (size_t i = 0; i < expose->count; i++) {
        char index[16];
        const char *index_key;
        bson_t clause;
        bson_uint32_to_string((uint32_t)i, &index_key, index, sizeof index);
        BSON_APPEND_DOCUMENT_BEGIN(&any, index_key, &clause);
        BSON_APPEND_UTF8(&clause, "ns.db", expose->patterns[i].db);
        if (expose->patterns[i].coll) {
            BSON_APPEND_UTF8(&clause, "ns.coll", expose->patterns[i].coll);
        }
        bson_append_document_end(&any, &clause);
    }
    bson_append_array_end(&match, &any);
    bson_append_document_end(&stage, &match);
    bson_append_document_end(pipeline_array, &stage);
}
