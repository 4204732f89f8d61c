/* SPDX-License-Identifier: Apache-2.0 */
/* core/ring: the most recent change events, bounded by count and by bytes,
 * so reconnecting subscribers catch up from memory. Owned by the push
 * thread. The "floor" is the token after which the ring holds every event:
 * where capture started, or the newest event it had to evict. */
#ifndef CHANGECAST_RING_H
#define CHANGECAST_RING_H

#include "changecast/event.h"

typedef struct cc_ring cc_ring_t;

cc_ring_t *cc_ring_new(size_t max_events, size_t max_bytes);
void cc_ring_free(cc_ring_t *ring);

/* Forgets every event; the ring now holds everything after `floor`
 * (capture (re)started there). */
void cc_ring_reset(cc_ring_t *ring, const char *floor);

/* Takes a reference; evicts the oldest events past either bound. */
void cc_ring_append(cc_ring_t *ring, cc_event_t *event);

/* Moves the floor forward without an event (a postBatchResumeToken),
 * only while the ring is empty: then nothing lies between. */
void cc_ring_advance_floor(cc_ring_t *ring, const char *token);

/* False when events after `token` may be missing from the ring (the token
 * is older than the floor, or no floor is known yet). Otherwise *index is
 * where the events after it start (== count when none yet). */
bool cc_ring_position_after(const cc_ring_t *ring, const char *token, size_t *index);

size_t cc_ring_count(const cc_ring_t *ring);
size_t cc_ring_bytes(const cc_ring_t *ring);
cc_event_t *cc_ring_at(const cc_ring_t *ring, size_t index); /* 0 = oldest */
const char *cc_ring_floor(const cc_ring_t *ring);            /* NULL before capture starts */

#endif
