/* SPDX-License-Identifier: Apache-2.0 */
/* auth/grant: the `changecast` claim as a grant. A grant is a list of scopes, one per namespace
 * pattern, each with an optional row filter (a query on the document, compiled once with the
 * subscriber filter matcher so both speak the same language) and an optional field list.
 * Parsing is strict: whatever the claim says that we do not understand is refused rather than
 * guessed, since a guess could only widen what a token shows. Also builds the filter a
 * subscription runs, claim AND subscriber. Calls core/expose, filter and project.c. */
#include "auth_internal.h"

#include <string.h>

/* Every anonymous connection shares this one: it is never changed, and
 * 100,000 idle subscribers should not hold 100,000 copies of nothing. */
static cc_scope_t anonymous_scope; /* every row, every field: for every namespace */
static cc_grant_t anonymous_grant = {.scopes = &anonymous_scope, .anonymous = true};

static void scope_destroy(cc_scope_t *scope)
{
    cc_ns_pattern_destroy(&scope->pattern);
    if (scope->filter) {
        bson_destroy(scope->filter);
    }
    cc_filter_destroy(scope->matcher);
    cc_proj_destroy(scope->fields);
    bson_free(scope->fingerprint);
}

void cc_grant_destroy(cc_grant_t *grant)
{
    if (!grant || grant == &anonymous_grant) {
        return;
    }
    for (size_t i = 0; i < grant->count; i++) {
        scope_destroy(&grant->scopes[i]);
    }
    bson_free(grant->scopes);
    bson_free(grant->subject);
    bson_free(grant);
}

static bool parse_filter(bson_iter_t *it, const char *ns, cc_scope_t *scope, bson_error_t *error)
{
    uint32_t len;
    const uint8_t *data;
    if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
        cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID, "ns \"%s\": filter must be an object", ns);
        return false;
    }
    bson_iter_document(it, &len, &data);
    bson_t *filter = bson_new_from_data(data, len);
    if (!filter) {
        cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID, "ns \"%s\": filter is not a document", ns);
        return false;
    }
    if (bson_empty(filter)) {
        bson_destroy(filter); /* {} matches every row: the same as no filter */
        return true;
    }
    bson_error_t compile_error;
    scope->matcher = cc_filter_compile(filter, &compile_error);
    if (!scope->matcher) {
        bson_destroy(filter);
        cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID, "ns \"%s\": filter: %s", ns,
                          compile_error.message);
        return false;
    }
    scope->filter = filter;
    return true;
}

static bool parse_scope(const char *ns, bson_iter_t *value, cc_scope_t *scope, bson_error_t *error)
{
    bson_iter_t it;
    if (!BSON_ITER_HOLDS_DOCUMENT(value) || !bson_iter_recurse(value, &it)) {
        cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID,
                          "ns \"%s\": must be an object ({} grants every row and field)", ns);
        return false;
    }
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        if (strcmp(key, "filter") == 0 && !scope->filter && !scope->matcher) {
            if (!parse_filter(&it, ns, scope, error)) {
                return false;
            }
        } else if (strcmp(key, "fields") == 0 && !scope->fields) {
            scope->fields = cc_proj_build(&it, ns, error);
            if (!scope->fields) {
                return false;
            }
        } else {
            cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID,
                              "ns \"%s\": unknown or repeated key \"%s\" (filter, fields)", ns,
                              key);
            return false;
        }
    }
    uint32_t len;
    const uint8_t *data;
    bson_t given;
    bson_iter_document(value, &len, &data);
    if (bson_init_static(&given, data, len)) {
        scope->fingerprint = bson_as_canonical_extended_json(&given, NULL);
    }
    return true;
}

static bool same_pattern(const cc_ns_pattern_t *a, const cc_ns_pattern_t *b)
{
    return strcmp(a->db, b->db) == 0 &&
           ((!a->coll && !b->coll) || (a->coll && b->coll && strcmp(a->coll, b->coll) == 0));
}

static bool parse_namespaces(bson_iter_t *ns_iter, cc_grant_t *grant, bson_error_t *error)
{
    bson_iter_t it;
    if (!BSON_ITER_HOLDS_DOCUMENT(ns_iter) || !bson_iter_recurse(ns_iter, &it)) {
        cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID,
                          "changecast.ns must be an object of namespaces");
        return false;
    }
    while (bson_iter_next(&it)) {
        const char *ns = bson_iter_key(&it);
        cc_scope_t scope = {0};
        bson_error_t ns_error;
        if (!cc_ns_pattern_parse(ns, &scope.pattern, &ns_error)) {
            cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID, "changecast.ns: %s", ns_error.message);
            return false;
        }
        for (size_t i = 0; i < grant->count; i++) {
            if (same_pattern(&grant->scopes[i].pattern, &scope.pattern)) {
                cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID,
                                  "changecast.ns: \"%s\" appears twice", ns);
                scope_destroy(&scope);
                return false;
            }
        }
        if (!parse_scope(ns, &it, &scope, error)) {
            scope_destroy(&scope);
            return false;
        }
        grant->scopes = bson_realloc(grant->scopes, (grant->count + 1) * sizeof *grant->scopes);
        grant->scopes[grant->count++] = scope;
    }
    return true;
}

cc_grant_t *cc_grant_from_claim(const bson_t *claim, int64_t expires_at_s, bson_error_t *error)
{
    cc_grant_t *grant = bson_malloc0(sizeof *grant);
    grant->expires_at_s = expires_at_s;
    bson_iter_t it;
    bool ok = bson_iter_init(&it, claim), has_ns = false;
    while (ok && bson_iter_next(&it)) {
        if (strcmp(bson_iter_key(&it), "ns") == 0 && !has_ns) {
            has_ns = true;
            ok = parse_namespaces(&it, grant, error);
        } else {
            cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID,
                              "changecast: unknown or repeated key \"%s\" (expected ns)",
                              bson_iter_key(&it));
            ok = false;
        }
    }
    if (ok && !has_ns) {
        cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID,
                          "changecast: no \"ns\" (e.g. {\"ns\": {\"shop.orders\": {}}})");
        ok = false;
    }
    if (!ok) {
        cc_grant_destroy(grant);
        return NULL;
    }
    return grant;
}

cc_grant_t *cc_grant_anonymous(void)
{
    return &anonymous_grant;
}

int64_t cc_grant_expires_at(const cc_grant_t *grant)
{
    return grant->expires_at_s;
}

const char *cc_grant_subject(const cc_grant_t *grant)
{
    return grant->subject;
}

const cc_scope_t *cc_grant_scope(const cc_grant_t *grant, const char *db, const char *coll)
{
    if (grant->anonymous) {
        return &grant->scopes[0];
    }
    const cc_scope_t *wildcard = NULL;
    for (size_t i = 0; i < grant->count; i++) {
        const cc_ns_pattern_t *p = &grant->scopes[i].pattern;
        if (strcmp(p->db, db) != 0) {
            continue;
        }
        if (!p->coll) {
            wildcard = &grant->scopes[i];
        } else if (coll && strcmp(p->coll, coll) == 0) {
            return &grant->scopes[i];
        }
    }
    return wildcard;
}

bool cc_grant_covers(const cc_grant_t *grant, const cc_ns_pattern_t *requested)
{
    if (grant->anonymous) {
        return true;
    }
    if (requested->coll) {
        return cc_grant_scope(grant, requested->db, requested->coll) != NULL;
    }
    for (size_t i = 0; i < grant->count; i++) {
        const cc_ns_pattern_t *p = &grant->scopes[i].pattern;
        if (!p->coll && strcmp(p->db, requested->db) == 0) {
            return true;
        }
    }
    return false;
}

const char *cc_scope_fingerprint(const cc_scope_t *scope)
{
    return scope->fingerprint ? scope->fingerprint : "";
}

const bson_t *cc_scope_row_filter(const cc_scope_t *scope)
{
    return scope->filter;
}

bool cc_scope_has_fields(const cc_scope_t *scope)
{
    return scope->fields != NULL;
}

bool cc_scope_matches_document(const cc_scope_t *scope, const bson_t *document)
{
    return !scope->matcher || cc_filter_matches(scope->matcher, document);
}

/* Copies a query with every field path under `prefix`: top-level paths and those inside
 * $and/$or/$nor, the only places a path starts in a query. Operator values ($elemMatch, $not,
 * ...) hold paths relative to their field and stay as they are. */
static void append_prefixed(bson_iter_t *it, const char *prefix, bson_t *out)
{
    while (bson_iter_next(it)) {
        const char *key = bson_iter_key(it);
        bson_iter_t items, clause;
        if ((strcmp(key, "$and") == 0 || strcmp(key, "$or") == 0 || strcmp(key, "$nor") == 0) &&
            BSON_ITER_HOLDS_ARRAY(it) && bson_iter_recurse(it, &items)) {
            bson_t array, sub;
            bson_append_array_begin(out, key, -1, &array);
            while (bson_iter_next(&items)) {
                if (BSON_ITER_HOLDS_DOCUMENT(&items) && bson_iter_recurse(&items, &clause)) {
                    bson_append_document_begin(&array, bson_iter_key(&items), -1, &sub);
                    append_prefixed(&clause, prefix, &sub);
                    bson_append_document_end(&array, &sub);
                } else {
                    bson_append_iter(&array, NULL, -1, &items);
                }
            }
            bson_append_array_end(out, &array);
        } else if (key[0] == '$') {
            bson_append_iter(out, NULL, -1, it);
        } else {
            char *path = bson_strdup_printf("%s.%s", prefix, key);
            bson_append_iter(out, path, -1, it);
            bson_free(path);
        }
    }
}

void cc_scope_combine_filter(const cc_scope_t *scope, const bson_t *subscriber,
                             const char *path_prefix, bson_t *out)
{
    bson_init(out);
    bool has_subscriber = subscriber && !bson_empty(subscriber);
    if (!scope->filter) {
        if (has_subscriber) {
            bson_concat(out, subscriber);
        }
        return;
    }
    bson_t all, claim;
    BSON_APPEND_ARRAY_BEGIN(out, "$and", &all);
    BSON_APPEND_DOCUMENT_BEGIN(&all, "0", &claim);
    bson_iter_t it;
    bson_iter_init(&it, scope->filter);
    if (path_prefix && *path_prefix) {
        append_prefixed(&it, path_prefix, &claim);
    } else {
        bson_concat(&claim, scope->filter);
    }
    bson_append_document_end(&all, &claim);
    if (has_subscriber) {
        BSON_APPEND_DOCUMENT(&all, "1", subscriber);
    }
    bson_append_array_end(out, &all);
}
