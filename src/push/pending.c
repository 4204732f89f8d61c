/* SPDX-License-Identifier: Apache-2.0 */
/* The newest state per document waiting for one format=docs subscription
 * (conflation): a later change of the same _id replaces the earlier one in
 * place, so a slow client skips intermediate states and the memory held is
 * bounded by the number of distinct documents, not of changes. Entries keep
 * their first arrival order; an open-addressing table over the _id's JSON
 * finds them. */
#include "pending.h"

#include <bson/bson.h>

#include <string.h>

typedef struct pending_entry {
    cc_event_t *event; /* the newest change of this _id */
    bool upsert;       /* else a delete */
    char *doc;         /* the state as this subscriber may see it; NULL: the post-image */
} pending_entry_t;

struct cc_pending {
    pending_entry_t *entries; /* arrival order */
    size_t count;
    size_t capacity;
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t slot_count;
};

cc_pending_t *cc_pending_new(void)
{
    return bson_malloc0(sizeof(cc_pending_t));
}

static void clear(cc_pending_t *pending)
{
    for (size_t i = 0; i < pending->count; i++) {
        cc_event_unref(pending->entries[i].event);
        bson_free(pending->entries[i].doc);
    }
    pending->count = 0;
    if (pending->slots) {
        memset(pending->slots, 0, pending->slot_count * sizeof *pending->slots);
    }
}

void cc_pending_free(cc_pending_t *pending)
{
    if (pending) {
        clear(pending);
        bson_free(pending->entries);
        bson_free(pending->slots);
        bson_free(pending);
    }
}

size_t cc_pending_count(const cc_pending_t *pending)
{
    return pending->count;
}

static uint64_t hash_key(const char *key, size_t len)
{
    uint64_t hash = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        hash = (hash ^ (uint8_t)key[i]) * 1099511628211ULL;
    }
    return hash;
}

static size_t *find_slot(cc_pending_t *pending, const char *key, size_t len, size_t *slot)
{
    size_t mask = pending->slot_count - 1;
    for (*slot = hash_key(key, len) & mask;; *slot = (*slot + 1) & mask) {
        uint32_t at = pending->slots[*slot];
        if (at == 0) {
            return NULL;
        }
        size_t other_len;
        const char *other = cc_event_json_id(pending->entries[at - 1].event, &other_len);
        if (other_len == len && memcmp(other, key, len) == 0) {
            return slot;
        }
    }
}

static void grow(cc_pending_t *pending)
{
    pending->slot_count = pending->slot_count ? pending->slot_count * 2 : 64;
    bson_free(pending->slots);
    pending->slots = bson_malloc0(pending->slot_count * sizeof *pending->slots);
    for (size_t i = 0; i < pending->count; i++) {
        size_t len, slot;
        const char *key = cc_event_json_id(pending->entries[i].event, &len);
        find_slot(pending, key, len, &slot);
        pending->slots[slot] = (uint32_t)(i + 1);
    }
}

void cc_pending_put(cc_pending_t *pending, cc_event_t *event, bool upsert, char *doc_json)
{
    if (2 * (pending->count + 1) > pending->slot_count) {
        grow(pending);
    }
    size_t len, slot;
    const char *key = cc_event_json_id(event, &len);
    if (find_slot(pending, key, len, &slot)) {
        pending_entry_t *entry = &pending->entries[pending->slots[slot] - 1];
        cc_event_unref(entry->event);
        bson_free(entry->doc);
        entry->event = cc_event_ref(event);
        entry->upsert = upsert;
        entry->doc = doc_json;
        return;
    }
    if (pending->count == pending->capacity) {
        pending->capacity = pending->capacity ? pending->capacity * 2 : 16;
        pending->entries =
            bson_realloc(pending->entries, pending->capacity * sizeof *pending->entries);
    }
    pending->entries[pending->count] = (pending_entry_t){cc_event_ref(event), upsert, doc_json};
    pending->slots[slot] = (uint32_t)++pending->count;
}

void cc_pending_drain(cc_pending_t *pending,
                      void (*emit)(cc_event_t *event, bool upsert, const char *doc_json, bool last,
                                   void *arg),
                      void *arg)
{
    for (size_t i = 0; i < pending->count; i++) {
        const pending_entry_t *entry = &pending->entries[i];
        emit(entry->event, entry->upsert, entry->doc, i + 1 == pending->count, arg);
    }
    clear(pending);
}
