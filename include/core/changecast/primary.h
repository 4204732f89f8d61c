/* SPDX-License-Identifier: Apache-2.0 */
/* core/primary: where the upstream primary is, written by the topology monitor
 * (capture thread), read by the wire thread. The "epoch" counts primaries:
 * it moves when connections pinned to the old primary must go (another server
 * became primary, or the old one stepped down), and stays when the primary is
 * merely unreachable, since those connections fail by themselves. */
#ifndef CHANGECAST_PRIMARY_H
#define CHANGECAST_PRIMARY_H

#include "changecast/hostport.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cc_primary cc_primary_t;

/* Runs on the publishing thread: hand over to your own loop from here. */
typedef void (*cc_primary_notify_fn)(void *arg);

cc_primary_t *cc_primary_new(void);
void cc_primary_free(cc_primary_t *primary);
void cc_primary_on_change(cc_primary_t *primary, cc_primary_notify_fn fn, void *arg);

/* address NULL: no primary known. demoted: the previous primary is reachable
 * but no longer primary, so its connections must close. */
void cc_primary_publish(cc_primary_t *primary, const cc_hostport_t *address, bool demoted);

/* False when no primary is known; *epoch is filled either way. */
bool cc_primary_get(cc_primary_t *primary, cc_hostport_t *address, uint64_t *epoch);

#endif
