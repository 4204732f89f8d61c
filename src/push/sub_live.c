/* SPDX-License-Identifier: Apache-2.0 */
/* What a live query asks for, checked before it starts (docs/live-
 * queries.md): one collection, no ops, sort and limit within the snapshot
 * cap, post-images available; and the top-level fields its filter reads,
 * which decide whether an update can have moved a document in or out of
 * its view. Pure: no lws, no I/O. */
#include "sub.h"

#include <string.h>

static void add_field(cc_sub_t *sub, const char *path)
{
    size_t len = strcspn(path, ".");
    for (size_t i = 0; i < sub->filter_field_count; i++) {
        if (strlen(sub->filter_fields[i]) == len &&
            strncmp(sub->filter_fields[i], path, len) == 0) {
            return;
        }
    }
    sub->filter_fields = bson_realloc(sub->filter_fields,
                                      (sub->filter_field_count + 1) * sizeof *sub->filter_fields);
    sub->filter_fields[sub->filter_field_count++] = bson_strndup(path, len);
}

/* The top-level fields a query reads: its keys, and those of the clauses
 * of $and, $or and $nor. */
static void collect_fields(cc_sub_t *sub, const bson_t *query)
{
    bson_iter_t iter;
    if (!bson_iter_init(&iter, query)) {
        return;
    }
    while (bson_iter_next(&iter)) {
        const char *key = bson_iter_key(&iter);
        if (key[0] != '$') {
            add_field(sub, key);
            continue;
        }
        bson_iter_t clauses;
        if (!BSON_ITER_HOLDS_ARRAY(&iter) || !bson_iter_recurse(&iter, &clauses)) {
            continue;
        }
        while (bson_iter_next(&clauses)) {
            uint32_t len;
            const uint8_t *data;
            bson_t clause;
            if (!BSON_ITER_HOLDS_DOCUMENT(&clauses)) {
                continue;
            }
            bson_iter_document(&clauses, &len, &data);
            if (bson_init_static(&clause, data, len)) {
                collect_fields(sub, &clause);
            }
        }
    }
}

bool cc_sub_prepare_live_query(const cc_push_options_t *options, cc_sub_t *sub, const char **code,
                               bson_error_t *error)
{
    *code = "bad_request";
    if (!sub->want_snapshot && sub->format == CC_FORMAT_CHANGES) {
        if (sub->sort || sub->limit) {
            bson_set_error(error, 0, 0, "sort and limit apply to a snapshot only (snapshot=1)");
            return false;
        }
        return true;
    }
    if (sub->namespace_count != 1 || !sub->namespaces[0].coll) {
        bson_set_error(error, 0, 0,
                       "a live query (snapshot or format=docs) reads one collection: give exactly "
                       "one ns of the form db.collection");
        return false;
    }
    if (sub->ops_given) {
        bson_set_error(error, 0, 0,
                       "ops does not apply to a live query: it gets whatever changes its view");
        return false;
    }
    if ((sub->sort || sub->limit) && !sub->want_snapshot) {
        bson_set_error(error, 0, 0, "sort and limit apply to a snapshot only (snapshot=1)");
        return false;
    }
    if (sub->limit < 0 || sub->limit > options->snapshot_max_docs) {
        bson_set_error(error, 0, 0, "limit must be 1 to %lld (push.snapshot_max_docs)",
                       (long long)options->snapshot_max_docs);
        return false;
    }
    if (strcmp(options->full_document, "default") == 0) {
        *code = "full_document_required";
        bson_set_error(error, 0, 0,
                       "live queries need post-images, and this changecast captures without "
                       "them: set changes.full_document = updateLookup (or whenAvailable, "
                       "required)");
        return false;
    }
    sub->live_query = true;
    if (sub->query) {
        collect_fields(sub, sub->query);
    }
    if (sub->format == CC_FORMAT_DOCS) {
        sub->pending = cc_pending_new();
    }
    return true;
}

bool cc_sub_reads_field(const cc_sub_t *sub, const char *path)
{
    size_t len = strcspn(path, ".");
    for (size_t i = 0; i < sub->filter_field_count; i++) {
        if (strlen(sub->filter_fields[i]) == len &&
            strncmp(sub->filter_fields[i], path, len) == 0) {
            return true;
        }
    }
    return false;
}
