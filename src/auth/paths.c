/* SPDX-License-Identifier: Apache-2.0 */
/* auth/paths: which paths a holder may read in its own filters and sorts. Hiding a field's
 * value is not enough if a subscriber can still filter on it: {"fullDocument.salary": {"$gt":
 * 5000}} would tell, event by event, what the projection hides. So when a scope lists fields,
 * a subscriber's filter (or a live query's sort) may name only paths at or under a listed field,
 * and, on change events, event metadata (operationType, ns, clusterTime, ...). Paths start only
 * at the top of a query and inside $and/$or/$nor; operator operands ($elemMatch, $not) are
 * relative to a path already checked. Calls project.c. */
#include "auth_internal.h"

#include <string.h>

enum { MAX_DEPTH = 64 };

bool cc_scope_shows_path(const cc_scope_t *scope, const char *path)
{
    const cc_proj_node_t *at;
    return !scope->fields || cc_proj_path_fit(scope->fields, path, &at) == CC_PROJ_WHOLE;
}

static bool starts_with(const char *s, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) == 0) {
        *rest = s + n;
        return true;
    }
    return false;
}

/* A path of a change event: images and documentKey through the field list, the update
 * description only by updatedFields.<listed field>, everything else is metadata. */
static bool event_path_shown(const cc_scope_t *scope, const char *path)
{
    const char *rest;
    if (starts_with(path, "fullDocument.", &rest) ||
        starts_with(path, "fullDocumentBeforeChange.", &rest) ||
        starts_with(path, "documentKey.", &rest) ||
        starts_with(path, "updateDescription.updatedFields.", &rest)) {
        return cc_scope_shows_path(scope, rest);
    }
    if (strcmp(path, "fullDocument") == 0 || strcmp(path, "fullDocumentBeforeChange") == 0 ||
        strcmp(path, "documentKey") == 0 || strcmp(path, "updateDescription") == 0 ||
        starts_with(path, "updateDescription.", &rest)) {
        return false; /* whole images, removedFields and truncatedArrays name hidden fields */
    }
    return true;
}

static bool check_query(const cc_scope_t *scope, bson_iter_t *it, bool on_events, int depth,
                        bson_error_t *error)
{
    if (depth > MAX_DEPTH) {
        cc_auth_set_error(error, CC_AUTH_FIELD_NOT_GRANTED, "filter nests too deeply");
        return false;
    }
    while (bson_iter_next(it)) {
        const char *key = bson_iter_key(it);
        if (strcmp(key, "$and") == 0 || strcmp(key, "$or") == 0 || strcmp(key, "$nor") == 0) {
            bson_iter_t items, clause;
            if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &items)) {
                continue; /* malformed: the matcher refuses it with a better message */
            }
            while (bson_iter_next(&items)) {
                if (BSON_ITER_HOLDS_DOCUMENT(&items) && bson_iter_recurse(&items, &clause) &&
                    !check_query(scope, &clause, on_events, depth + 1, error)) {
                    return false;
                }
            }
        } else if (key[0] == '$') {
            if (strcmp(key, "$comment") != 0) {
                cc_auth_set_error(error, CC_AUTH_FIELD_NOT_GRANTED,
                                  "%s is not allowed with a token that lists fields", key);
                return false;
            }
        } else if (!(on_events ? event_path_shown(scope, key) : cc_scope_shows_path(scope, key))) {
            cc_auth_set_error(error, CC_AUTH_FIELD_NOT_GRANTED,
                              "the filter reads \"%s\", which the token does not grant", key);
            return false;
        }
    }
    return true;
}

bool cc_scope_check_filter(const cc_scope_t *scope, const bson_t *filter, bool on_events,
                           bson_error_t *error)
{
    bson_iter_t it;
    if (!scope->fields || !filter || !bson_iter_init(&it, filter)) {
        return true;
    }
    return check_query(scope, &it, on_events, 0, error);
}
