/* SPDX-License-Identifier: Apache-2.0 */
/* push/pending (pure layer): the newest state per document waiting for one
 * format=docs subscription (conflation). Calls core/event only. */
#ifndef CC_PUSH_PENDING_H
#define CC_PUSH_PENDING_H

#include "changecast/event.h"

#include <stdbool.h>

typedef struct cc_pending cc_pending_t;

cc_pending_t *cc_pending_new(void);
void cc_pending_free(cc_pending_t *pending);
size_t cc_pending_count(const cc_pending_t *pending);
/* doc_json (owned; NULL: the event's post-image) is the upserted state. */
void cc_pending_put(cc_pending_t *pending, cc_event_t *event, bool upsert, char *doc_json);
void cc_pending_drain(cc_pending_t *pending,
                      void (*emit)(cc_event_t *event, bool upsert, const char *doc_json, bool last,
                                   void *arg),
                      void *arg);

#endif
