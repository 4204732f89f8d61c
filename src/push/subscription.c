/* SPDX-License-Identifier: Apache-2.0 */
/* What a subscriber asked for, checked against what is exposed, and the
 * index that keeps an event from visiting subscriptions that cannot match
 * it: one list per exact namespace ("db.coll") and one per database
 * wildcard ("db.*"), in a small chained hash table. */
#include "push_internal.h"

#include <string.h>

cc_sub_t *cc_sub_new(cc_conn_t *conn, const char *id)
{
    cc_sub_t *sub = bson_malloc0(sizeof *sub);
    sub->conn = conn;
    sub->id = id ? bson_strdup(id) : NULL;
    sub->ops = CC_OP_ALL;
    return sub;
}

void cc_sub_free(cc_sub_t *sub)
{
    for (size_t i = 0; i < sub->namespace_count; i++) {
        cc_ns_pattern_destroy(&sub->namespaces[i]);
    }
    bson_free(sub->namespaces);
    if (sub->filter) {
        cc_filter_destroy(sub->filter);
    }
    bson_free(sub->id);
    bson_free(sub->position);
    bson_free(sub);
}

bool cc_sub_add_namespace(struct cc_push *push, cc_sub_t *sub, const char *text, const char **code,
                          bson_error_t *error)
{
    cc_ns_pattern_t pattern;
    if (!cc_ns_pattern_parse(text, &pattern, error)) {
        *code = "bad_request";
        return false;
    }
    if (!cc_expose_covers(&push->expose, &pattern)) {
        bson_set_error(error, 0, 0, "namespace \"%s\" is not exposed", text);
        cc_ns_pattern_destroy(&pattern);
        *code = "not_exposed";
        return false;
    }
    sub->namespaces =
        bson_realloc(sub->namespaces, (sub->namespace_count + 1) * sizeof *sub->namespaces);
    sub->namespaces[sub->namespace_count++] = pattern;
    return true;
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
        sub->ops = ops;
    }
    return ok;
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
    bson_destroy(&query);
    if (!sub->filter) {
        bson_set_error(error, 0, 0, "filter: %s", detail.message);
        return false;
    }
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

static void key_of(const cc_ns_pattern_t *pattern, char *out, size_t size)
{
    snprintf(out, size, "%s.%s", pattern->db, pattern->coll ? pattern->coll : "*");
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

void cc_index_add(cc_index_t *index, cc_sub_t *sub)
{
    char key[512];
    for (size_t i = 0; i < sub->namespace_count; i++) {
        key_of(&sub->namespaces[i], key, sizeof key);
        index_entry_t *entry = find(index, key, true);
        if (entry->count == entry->cap) {
            entry->cap = entry->cap ? entry->cap * 2 : 8;
            entry->subs = bson_realloc(entry->subs, entry->cap * sizeof *entry->subs);
        }
        entry->subs[entry->count++] = sub;
    }
}

void cc_index_remove(cc_index_t *index, cc_sub_t *sub)
{
    char key[512];
    for (size_t i = 0; i < sub->namespace_count; i++) {
        key_of(&sub->namespaces[i], key, sizeof key);
        index_entry_t *entry = find(index, key, false);
        for (size_t j = 0; entry && j < entry->count; j++) {
            if (entry->subs[j] == sub) {
                entry->subs[j] = entry->subs[--entry->count];
                break;
            }
        }
    }
}

void cc_index_visit(cc_index_t *index, const char *db, const char *coll,
                    void (*fn)(cc_sub_t *sub, void *arg), void *arg)
{
    char key[512];
    index_entry_t *entries[2];
    snprintf(key, sizeof key, "%s.*", db);
    entries[0] = find(index, key, false);
    entries[1] = NULL;
    if (coll) {
        snprintf(key, sizeof key, "%s.%s", db, coll);
        entries[1] = find(index, key, false);
    }
    for (size_t e = 0; e < 2; e++) {
        /* fn may not add or remove subscriptions: delivery only queues bytes */
        for (size_t i = 0; entries[e] && i < entries[e]->count; i++) {
            fn(entries[e]->subs[i], arg);
        }
    }
}
