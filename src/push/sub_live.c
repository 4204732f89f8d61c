/* SPDX-License-Identifier: Apache-2.0 */
/* What a live query asks for, checked before it starts (docs/live-
 * queries.md): one collection, no ops, sort and limit within the snapshot
 * cap, post-images available; and the top-level fields its filter reads,
 * which decide whether an update can have moved a document in or out of
 * its view. Pure: no lws, no I/O. */
#include "sub.h"

#include <string.h>

static bool reads_field(const cc_live_t *live, const char *path)
{
    size_t len = strcspn(path, ".");
    for (size_t i = 0; i < live->filter_field_count; i++) {
        if (strlen(live->filter_fields[i]) == len &&
            strncmp(live->filter_fields[i], path, len) == 0) {
            return true;
        }
    }
    return false;
}

static void add_field(cc_live_t *live, const char *path)
{
    if (reads_field(live, path)) {
        return;
    }
    live->filter_fields = bson_realloc(live->filter_fields, (live->filter_field_count + 1) *
                                                                sizeof *live->filter_fields);
    live->filter_fields[live->filter_field_count++] = bson_strndup(path, strcspn(path, "."));
}

/* The top-level fields a query reads: its keys, and those of the clauses
 * of $and, $or and $nor. */
static void collect_fields(cc_live_t *live, const bson_t *query)
{
    bson_iter_t iter;
    if (!bson_iter_init(&iter, query)) {
        return;
    }
    while (bson_iter_next(&iter)) {
        const char *key = bson_iter_key(&iter);
        if (key[0] != '$') {
            add_field(live, key);
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
                collect_fields(live, &clause);
            }
        }
    }
}

bool cc_sub_prepare_live_query(const cc_push_options_t *options, cc_sub_t *sub, const char **code,
                               bson_error_t *error)
{
    *code = "bad_request";
    bool sort_or_limit = sub->live && (sub->live->sort || sub->live->limit);
    if (!sub->want_snapshot && sub->format == CC_FORMAT_CHANGES) {
        if (sort_or_limit) {
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
    if (sort_or_limit && !sub->want_snapshot) {
        bson_set_error(error, 0, 0, "sort and limit apply to a snapshot only (snapshot=1)");
        return false;
    }
    if (sub->live && sub->live->limit > options->snapshot_max_docs) {
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
    cc_live_t *live = cc_sub_live(sub);
    if (sub->query) {
        collect_fields(live, sub->query);
    }
    if (sub->format == CC_FORMAT_DOCS) {
        live->pending = cc_pending_new();
    }
    return true;
}

size_t cc_sub_states_waiting(const cc_sub_t *sub)
{
    return sub->live && sub->live->pending ? cc_pending_count(sub->live->pending) : 0;
}

char *cc_sub_rows_json(const cc_sub_t *sub)
{
    return sub->live && sub->live->view_query
               ? bson_as_canonical_extended_json(sub->live->view_query, NULL)
               : NULL;
}

bool cc_sub_reads_field(const cc_sub_t *sub, const char *path)
{
    return sub->live && reads_field(sub->live, path);
}
