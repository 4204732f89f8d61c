/* SPDX-License-Identifier: Apache-2.0 */
/* push/position (pure layer): how far capture has read, and what of that
 * may be shown to clients. A position is the token of the last event, or
 * of the last empty batch (a high-water mark, postBatchResumeToken). Calls
 * core/event's token functions only. */
#ifndef CC_PUSH_POSITION_H
#define CC_PUSH_POSITION_H

#include "changecast/event.h"

#include <stdbool.h>

typedef struct cc_capture_position {
    char *token;   /* NULL: nothing read yet */
    bool is_event; /* else a high-water mark */
} cc_capture_position_t;

void cc_position_set(cc_capture_position_t *position, const char *token);
void cc_position_clear(cc_capture_position_t *position);
/* The cluster time up to which capture has read every event: its
 * position's time, or just before it for a high-water mark. */
bool cc_position_read_through(const cc_capture_position_t *position, uint32_t *seconds,
                              uint32_t *increment);
/* The token that stands, for clients, for how far capture has read: a
 * high-water mark, never an event's own token (which names a collection
 * and a document key the client may not be granted). False when none can
 * be given (a token layout we cannot rebuild). */
bool cc_position_public(const cc_capture_position_t *position, char *out, size_t size);

#endif
