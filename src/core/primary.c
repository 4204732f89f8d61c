/* SPDX-License-Identifier: Apache-2.0 */
/* A mutex guards the address; it changes a few times a day and is read once
 * per new client connection, so nothing cleverer is needed. */
#include "changecast/primary.h"

#include <bson/bson.h>
#include <pthread.h>
#include <string.h>

struct cc_primary {
    pthread_mutex_t lock;
    bool known;
    bool ever_known; /* address holds the last primary even while none is known */
    cc_hostport_t address;
    uint64_t epoch;
    cc_primary_notify_fn notify;
    void *notify_arg;
};

cc_primary_t *cc_primary_new(void)
{
    cc_primary_t *primary = bson_malloc0(sizeof *primary);
    pthread_mutex_init(&primary->lock, NULL);
    primary->epoch = 1;
    return primary;
}

void cc_primary_free(cc_primary_t *primary)
{
    if (primary) {
        pthread_mutex_destroy(&primary->lock);
        bson_free(primary);
    }
}

void cc_primary_on_change(cc_primary_t *primary, cc_primary_notify_fn fn, void *arg)
{
    pthread_mutex_lock(&primary->lock);
    primary->notify = fn;
    primary->notify_arg = arg;
    pthread_mutex_unlock(&primary->lock);
}

static bool same_address(const cc_hostport_t *a, const cc_hostport_t *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

void cc_primary_publish(cc_primary_t *primary, const cc_hostport_t *address, bool demoted)
{
    pthread_mutex_lock(&primary->lock);
    bool changed;
    if (address) {
        bool replaced = primary->ever_known && !same_address(&primary->address, address);
        changed = !primary->known || replaced;
        if (replaced || demoted) {
            primary->epoch++;
        }
        primary->address = *address;
        primary->known = true;
        primary->ever_known = true;
    } else {
        changed = primary->known || demoted;
        if (demoted) {
            primary->epoch++;
        }
        primary->known = false;
    }
    cc_primary_notify_fn notify = primary->notify;
    void *arg = primary->notify_arg;
    pthread_mutex_unlock(&primary->lock);
    if (changed && notify) {
        notify(arg);
    }
}

bool cc_primary_get(cc_primary_t *primary, cc_hostport_t *address, uint64_t *epoch)
{
    pthread_mutex_lock(&primary->lock);
    bool known = primary->known;
    if (known) {
        *address = primary->address;
    }
    *epoch = primary->epoch;
    pthread_mutex_unlock(&primary->lock);
    return known;
}
