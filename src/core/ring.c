/* SPDX-License-Identifier: Apache-2.0 */
/* A circular array of event references. Lookups by token are binary
 * searches: events arrive in stream order, so tokens are sorted. */
#include "changecast/ring.h"

#include <string.h>

struct cc_ring {
    cc_event_t **slots;
    size_t capacity;
    size_t head; /* index of the oldest event */
    size_t count;
    size_t bytes;
    size_t max_bytes;
    char *floor;
};

cc_ring_t *cc_ring_new(size_t max_events, size_t max_bytes)
{
    cc_ring_t *ring = bson_malloc0(sizeof *ring);
    ring->capacity = max_events ? max_events : 1;
    ring->slots = bson_malloc0(ring->capacity * sizeof *ring->slots);
    ring->max_bytes = max_bytes;
    return ring;
}

static void evict_oldest(cc_ring_t *ring)
{
    cc_event_t *oldest = ring->slots[ring->head];
    ring->slots[ring->head] = NULL;
    ring->head = (ring->head + 1) % ring->capacity;
    ring->count--;
    ring->bytes -= cc_event_size(oldest);
    bson_free(ring->floor);
    ring->floor = bson_strdup(oldest->token);
    cc_event_unref(oldest);
}

void cc_ring_reset(cc_ring_t *ring, const char *floor)
{
    while (ring->count) {
        evict_oldest(ring);
    }
    bson_free(ring->floor);
    ring->floor = floor ? bson_strdup(floor) : NULL;
}

void cc_ring_free(cc_ring_t *ring)
{
    if (!ring) {
        return;
    }
    cc_ring_reset(ring, NULL);
    bson_free(ring->slots);
    bson_free(ring);
}

void cc_ring_append(cc_ring_t *ring, cc_event_t *event)
{
    size_t size = cc_event_size(event);
    while (ring->count && (ring->count == ring->capacity || ring->bytes + size > ring->max_bytes)) {
        evict_oldest(ring);
    }
    ring->slots[(ring->head + ring->count) % ring->capacity] = cc_event_ref(event);
    ring->count++;
    ring->bytes += size;
}

void cc_ring_advance_floor(cc_ring_t *ring, const char *token)
{
    if (ring->count == 0 && (!ring->floor || cc_token_compare(token, ring->floor) > 0)) {
        bson_free(ring->floor);
        ring->floor = bson_strdup(token);
    }
}

cc_event_t *cc_ring_at(const cc_ring_t *ring, size_t index)
{
    return index < ring->count ? ring->slots[(ring->head + index) % ring->capacity] : NULL;
}

bool cc_ring_position_after(const cc_ring_t *ring, const char *token, size_t *index)
{
    if (!ring->floor || cc_token_compare(token, ring->floor) < 0) {
        return false;
    }
    size_t low = 0, high = ring->count;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (cc_token_compare(cc_ring_at(ring, mid)->token, token) <= 0) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    *index = low;
    return true;
}

size_t cc_ring_count(const cc_ring_t *ring)
{
    return ring->count;
}

size_t cc_ring_bytes(const cc_ring_t *ring)
{
    return ring->bytes;
}

const char *cc_ring_floor(const cc_ring_t *ring)
{
    return ring->floor;
}
