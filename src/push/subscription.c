/* SPDX-License-Identifier: Apache-2.0 */
/* What a subscriber asked for, checked against what is exposed, and the
 * index that keeps an event from visiting subscriptions that cannot match
 * it: one list per exact namespace ("db.coll") and one per database
 * wildcard ("db.*"), in a small chained hash table. */
#include "sub.h"
#include "encode.h"

#include <string.h>

cc_sub_t *cc_sub_new(struct cc_conn *conn, const char *id)
{
    size_t id_len = id ? strlen(id) : 0;
    cc_sub_t *sub = bson_malloc0(sizeof *sub + id_len + 1);
    sub->conn = conn;
    memcpy(sub->id, id ? id : "", id_len);
    sub->head = id ? cc_encode_ws_head(id) : NULL;
    sub->ops = CC_OP_ALL;
    return sub;
}

void cc_sub_free(cc_sub_t *sub)
{
    for (size_t i = 0; i < sub->namespace_count; i++) {
        cc_ns_pattern_destroy(&sub->namespaces[i]);
    }
    if (sub->namespaces != &sub->one_namespace) {
        bson_free(sub->namespaces);
    }
    if (sub->filter) {
        cc_filter_destroy(sub->filter);
    }
    bson_destroy(sub->query);
    cc_live_t *live = sub->live;
    if (live) {
        bson_destroy(live->sort);
        bson_destroy(live->view_query);
        for (size_t i = 0; i < live->filter_field_count; i++) {
            bson_free(live->filter_fields[i]);
        }
        bson_free(live->filter_fields);
        cc_pending_free(live->pending);
        bson_free(live->snapshot_position);
        bson_free(live);
    }
    for (size_t i = 0; i < sub->txn_count; i++) {
        cc_buf_unref(sub->txn_parts[i]);
    }
    bson_free(sub->txn_parts);
    cc_buf_unref(sub->head);
    cc_mark_clear(&sub->position);
    bson_free(sub);
}

bool cc_sub_add_namespace(const cc_expose_t *expose, cc_sub_t *sub, const char *text,
                          const char **code, bson_error_t *error)
{
    if (sub->namespace_count >= CC_MAX_NAMESPACES_PER_SUB) {
        bson_set_error(error, 0, 0, "at most %d namespaces per subscription",
                       CC_MAX_NAMESPACES_PER_SUB);
        *code = "bad_request";
        return false;
    }
    cc_ns_pattern_t pattern;
    if (!cc_ns_pattern_parse(text, &pattern, error)) {
        *code = "bad_request";
        return false;
    }
    if (!cc_expose_covers(expose, &pattern)) {
        bson_set_error(error, 0, 0, "namespace \"%s\" is not exposed", text);
        cc_ns_pattern_destroy(&pattern);
        *code = "not_exposed";
        return false;
    }
    if (sub->namespace_count == 0) {
        sub->namespaces = &sub->one_namespace;
    } else if (sub->namespaces == &sub->one_namespace) {
        sub->namespaces = bson_malloc(2 * sizeof *sub->namespaces);
        sub->namespaces[0] = sub->one_namespace;
    } else {
        sub->namespaces =
            bson_realloc(sub->namespaces, (sub->namespace_count + 1) * sizeof *sub->namespaces);
    }
    sub->namespaces[sub->namespace_count++] = pattern;
    return true;
}

const char *cc_mark_token(const cc_mark_t *mark)
{
    return mark->event ? mark->event->token : mark->token;
}

void cc_mark_clear(cc_mark_t *mark)
{
    cc_event_unref(mark->event);
    bson_free(mark->token);
    mark->event = NULL;
    mark->token = NULL;
}

void cc_mark_set_event(cc_mark_t *mark, cc_event_t *event)
{
    cc_event_t *held = cc_event_ref(event);
    cc_mark_clear(mark);
    mark->event = held;
}

void cc_mark_set_token(cc_mark_t *mark, const char *token)
{
    char *copy = token ? bson_strdup(token) : NULL;
    cc_mark_clear(mark);
    mark->token = copy;
}

bool cc_sub_namespace_matches(const cc_sub_t *sub, const cc_event_t *event)
{
    for (size_t i = 0; i < sub->namespace_count; i++) {
        if (cc_ns_pattern_matches(&sub->namespaces[i], event->db, event->coll)) {
            return true;
        }
    }
    return false;
}

static const char *const op_names[] = {"insert", "update", "replace",      "delete",
                                       "drop",   "rename", "dropDatabase", "invalidate"};

uint32_t cc_op_bit(const char *operation)
{
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++) {
        if (strcmp(operation, op_names[i]) == 0) {
            return 1u << i;
        }
    }
    return CC_OP_OTHER;
}

bool cc_sub_set_ops(cc_sub_t *sub, const char *comma_separated, bson_error_t *error)
{
    char *copy = bson_strdup(comma_separated), *save = NULL;
    uint32_t ops = 0;
    bool ok = true;
    for (char *op = strtok_r(copy, ", ", &save); op; op = strtok_r(NULL, ", ", &save)) {
        uint32_t bit = cc_op_bit(op);
        if (bit == CC_OP_OTHER) {
            bson_set_error(error, 0, 0,
                           "ops: \"%s\" is not one of insert, update, replace, delete, drop, "
                           "rename, dropDatabase, invalidate",
                           op);
            ok = false;
            break;
        }
        ops |= bit;
    }
    bson_free(copy);
    if (ok && ops == 0) {
        bson_set_error(error, 0, 0, "ops: empty list");
        ok = false;
    }
    if (ok) {
        sub->ops = (uint16_t)ops; /* CC_OP_ALL fits */
        sub->ops_given = true;
    }
    return ok;
}

/* One capture stream serves everyone, so a subscriber can have what capture
 * asks MongoDB for, or less ("default": no post-image on updates). */
bool cc_sub_set_full_document(const cc_push_options_t *options, cc_sub_t *sub, const char *mode,
                              bson_error_t *error)
{
    if (strcmp(mode, "default") == 0) {
        sub->full_document_default = true;
        return true;
    }
    if (strcmp(mode, options->full_document) == 0) {
        sub->full_document_default = false;
        return true;
    }
    bson_set_error(error, 0, 0,
                   "fullDocument: \"%s\" is not available: this changecast captures with "
                   "fullDocument \"%s\" (changes.full_document); ask for that or \"default\"",
                   mode, options->full_document);
    return false;
}

bool cc_sub_set_filter_json(cc_sub_t *sub, const char *json, size_t len, bson_error_t *error)
{
    bson_t query;
    bson_error_t detail;
    size_t start = strspn(json, " \t\r\n");
    if (start >= len || json[start] != '{') {
        bson_set_error(error, 0, 0, "filter must be a query document: {...}");
        return false;
    }
    if (!cc_filter_parse_json(json, len, &query, &detail)) {
        bson_destroy(&query);
        bson_set_error(error, 0, 0, "filter is not valid Extended JSON: %s", detail.message);
        return false;
    }
    sub->filter = cc_filter_compile(&query, &detail);
    sub->query = bson_copy(&query);
    bson_destroy(&query);
    if (!sub->filter) {
        bson_set_error(error, 0, 0, "filter: %s", detail.message);
        return false;
    }
    return true;
}

bool cc_sub_set_format(cc_sub_t *sub, const char *format, bson_error_t *error)
{
    if (strcmp(format, "docs") == 0) {
        sub->format = CC_FORMAT_DOCS;
    } else if (strcmp(format, "changes") == 0) {
        sub->format = CC_FORMAT_CHANGES;
    } else {
        bson_set_error(error, 0, 0, "format: \"%s\" is not one of changes, docs", format);
        return false;
    }
    return true;
}

cc_live_t *cc_sub_live(cc_sub_t *sub)
{
    if (!sub->live) {
        sub->live = bson_malloc0(sizeof *sub->live);
    }
    return sub->live;
}

void cc_sub_set_sort(cc_sub_t *sub, const bson_t *sort)
{
    cc_live_t *live = cc_sub_live(sub);
    bson_destroy(live->sort);
    live->sort = bson_copy(sort);
}

bool cc_sub_set_sort_json(cc_sub_t *sub, const char *json, bson_error_t *error)
{
    bson_t sort;
    bson_error_t detail;
    if (sub->live && sub->live->sort) {
        bson_set_error(error, 0, 0, "sort given twice");
        return false;
    }
    if (!bson_init_from_json(&sort, json, -1, &detail)) {
        bson_set_error(error, 0, 0, "sort is not a JSON object: %s", detail.message);
        return false;
    }
    cc_sub_set_sort(sub, &sort);
    bson_destroy(&sort);
    return true;
}

bool cc_sub_set_limit(cc_sub_t *sub, int64_t limit, bson_error_t *error)
{
    if (limit <= 0) {
        bson_set_error(error, 0, 0, "limit must be a positive integer");
        return false;
    }
    cc_sub_live(sub)->limit = limit;
    return true;
}

/* The index. */

#define INDEX_BUCKETS 1024

typedef struct index_entry {
    char *key;
    cc_sub_t **subs;
    size_t count, cap;
    struct index_entry *next;
} index_entry_t;

struct cc_index {
    index_entry_t *buckets[INDEX_BUCKETS];
};

cc_index_t *cc_index_new(void)
{
    return bson_malloc0(sizeof(cc_index_t));
}

void cc_index_free(cc_index_t *index)
{
    for (size_t b = 0; b < INDEX_BUCKETS; b++) {
        for (index_entry_t *entry = index->buckets[b], *next; entry; entry = next) {
            next = entry->next;
            bson_free(entry->key);
            bson_free(entry->subs);
            bson_free(entry);
        }
    }
    bson_free(index);
}

static uint32_t hash(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *key; key++) {
        h = (h ^ (uint8_t)*key) * 16777619u;
    }
    return h;
}

static index_entry_t *find(cc_index_t *index, const char *key, bool create)
{
    index_entry_t **slot = &index->buckets[hash(key) % INDEX_BUCKETS];
    for (index_entry_t *entry = *slot; entry; entry = entry->next) {
        if (strcmp(entry->key, key) == 0) {
            return entry;
        }
    }
    if (!create) {
        return NULL;
    }
    index_entry_t *entry = bson_malloc0(sizeof *entry);
    entry->key = bson_strdup(key);
    entry->next = *slot;
    *slot = entry;
    return entry;
}

/* Equal _ids must meet under one key whatever their BSON type, as MongoDB
 * compares them: 1, 1.0 and NumberLong(1) are the same _id. Values without
 * a simple canonical form are not indexed by _id (the subscription is then
 * listed under its namespace only, which is correct, just less selective). */
static bool id_key(const bson_iter_t *iter, char *out, size_t size)
{
    switch (bson_iter_type(iter)) {
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
        snprintf(out, size, "n:%lld", (long long)bson_iter_as_int64(iter));
        return true;
    case BSON_TYPE_DOUBLE: {
        double value = bson_iter_double(iter);
        if (value == (double)(long long)value && value > -9.2e18 && value < 9.2e18) {
            snprintf(out, size, "n:%lld", (long long)value);
        } else {
            snprintf(out, size, "d:%.17g", value);
        }
        return true;
    }
    case BSON_TYPE_UTF8: {
        uint32_t len;
        const char *text = bson_iter_utf8(iter, &len);
        if (len + 3 > size || memchr(text, 0, len)) {
            return false;
        }
        snprintf(out, size, "s:%s", text);
        return true;
    }
    case BSON_TYPE_OID:
        out[0] = 'o';
        out[1] = ':';
        bson_oid_to_string(bson_iter_oid(iter), out + 2);
        return true;
    default:
        return false;
    }
}

/* Past this many pinned values a subscription is indexed by namespace
 * only: correct either way, and the index stays small. */
#define CC_MAX_PINNED_IDS 256

/* The keys a subscription is listed under: "db.coll" (or "db.*") and, when
 * its filter pins documentKey._id, "db.coll|<id>" for each pinned value. */
static void for_each_key(cc_sub_t *sub, void (*fn)(cc_index_t *, const char *, cc_sub_t *),
                         cc_index_t *index)
{
    bson_t ids = BSON_INITIALIZER;
    bool pinned = sub->filter && cc_filter_pinned_ids(sub->filter, &ids);
    bson_iter_t iter;
    char id[600];
    if (pinned && bson_iter_init(&iter, &ids)) {
        size_t count = 0;
        while (bson_iter_next(&iter)) {
            pinned = pinned && id_key(&iter, id, sizeof id) && ++count <= CC_MAX_PINNED_IDS;
        }
        /* Keys are namespaces times ids: past a bound, the namespace lists
         * serve (the filter still runs on each event), so one subscription
         * cannot make the index huge. */
        pinned = pinned && count * sub->namespace_count <= CC_MAX_PINNED_IDS;
    }
    for (size_t i = 0; i < sub->namespace_count; i++) {
        const cc_ns_pattern_t *ns = &sub->namespaces[i];
        char key[1200];
        if (!pinned) {
            snprintf(key, sizeof key, "%s.%s", ns->db, ns->coll ? ns->coll : "*");
            fn(index, key, sub);
            continue;
        }
        bson_iter_init(&iter, &ids);
        while (bson_iter_next(&iter)) {
            id_key(&iter, id, sizeof id);
            snprintf(key, sizeof key, "%s.%s|%s", ns->db, ns->coll ? ns->coll : "*", id);
            fn(index, key, sub);
        }
    }
    bson_destroy(&ids);
}

static void add_under(cc_index_t *index, const char *key, cc_sub_t *sub)
{
    index_entry_t *entry = find(index, key, true);
    for (size_t j = 0; j < entry->count; j++) {
        if (entry->subs[j] == sub) {
            return; /* a pinned value written twice */
        }
    }
    if (entry->count == entry->cap) {
        entry->cap = entry->cap ? entry->cap * 2 : 8;
        entry->subs = bson_realloc(entry->subs, entry->cap * sizeof *entry->subs);
    }
    entry->subs[entry->count++] = sub;
}

static void remove_under(cc_index_t *index, const char *key, cc_sub_t *sub)
{
    index_entry_t **slot = &index->buckets[hash(key) % INDEX_BUCKETS];
    while (*slot && strcmp((*slot)->key, key) != 0) {
        slot = &(*slot)->next;
    }
    index_entry_t *entry = *slot;
    for (size_t j = 0; entry && j < entry->count; j++) {
        if (entry->subs[j] == sub) {
            entry->subs[j] = entry->subs[--entry->count];
            break;
        }
    }
    if (entry && entry->count == 0) {
        /* Keys come and go with subscribers (pinned _ids): never keep empty ones. */
        *slot = entry->next;
        bson_free(entry->key);
        bson_free(entry->subs);
        bson_free(entry);
    }
}

void cc_index_add(cc_index_t *index, cc_sub_t *sub)
{
    for_each_key(sub, add_under, index);
}

void cc_index_remove(cc_index_t *index, cc_sub_t *sub)
{
    for_each_key(sub, remove_under, index);
}

void cc_index_visit(cc_index_t *index, const cc_event_t *event,
                    void (*fn)(cc_sub_t *sub, void *arg), void *arg)
{
    char key[1200], id[600];
    index_entry_t *entries[4] = {0};
    bson_iter_t iter, found;
    bool has_id = bson_iter_init(&iter, &event->document) &&
                  bson_iter_find_descendant(&iter, "documentKey._id", &found) &&
                  id_key(&found, id, sizeof id);
    snprintf(key, sizeof key, "%s.*", event->db);
    entries[0] = find(index, key, false);
    if (has_id) {
        snprintf(key, sizeof key, "%s.*|%s", event->db, id);
        entries[1] = find(index, key, false);
    }
    if (event->coll) {
        snprintf(key, sizeof key, "%s.%s", event->db, event->coll);
        entries[2] = find(index, key, false);
        if (has_id) {
            snprintf(key, sizeof key, "%s.%s|%s", event->db, event->coll, id);
            entries[3] = find(index, key, false);
        }
    }
    for (size_t e = 0; e < 4; e++) {
        /* fn may not add or remove subscriptions: delivery only queues bytes */
        for (size_t i = 0; entries[e] && i < entries[e]->count; i++) {
            fn(entries[e]->subs[i], arg);
        }
    }
}
