/* SPDX-License-Identifier: Apache-2.0 */
#include "changecast/write_clock.h"

#include <bson/bson.h>
#include <pthread.h>

typedef struct write_entry {
    uint64_t time; /* seconds << 32 | increment: orders as MongoDB Timestamps do */
    int64_t at_us;
} write_entry_t;

struct cc_write_clock {
    pthread_mutex_t lock;
    write_entry_t *entries;
    size_t capacity;
    size_t head;
    size_t count;
    uint64_t delivered; /* the furthest cluster time settled so far */
};

/* A write whose change was delivered before its reply was recorded (the
 * push thread can be quicker than the wire thread): its latency is 0. */
#define DELIVERED_FIRST INT64_MAX

cc_write_clock_t *cc_write_clock_new(size_t capacity)
{
    cc_write_clock_t *clock = bson_malloc0(sizeof *clock);
    pthread_mutex_init(&clock->lock, NULL);
    clock->capacity = capacity ? capacity : 1;
    clock->entries = bson_malloc0(clock->capacity * sizeof *clock->entries);
    return clock;
}

void cc_write_clock_free(cc_write_clock_t *clock)
{
    if (clock) {
        pthread_mutex_destroy(&clock->lock);
        bson_free(clock->entries);
        bson_free(clock);
    }
}

void cc_write_clock_record(cc_write_clock_t *clock, uint32_t seconds, uint32_t increment,
                           int64_t at_us)
{
    pthread_mutex_lock(&clock->lock);
    if (clock->count == clock->capacity) {
        clock->head = (clock->head + 1) % clock->capacity;
        clock->count--;
    }
    size_t tail = (clock->head + clock->count) % clock->capacity;
    uint64_t time = ((uint64_t)seconds << 32) | increment;
    clock->entries[tail] =
        (write_entry_t){time, time <= clock->delivered ? DELIVERED_FIRST : at_us};
    clock->count++;
    pthread_mutex_unlock(&clock->lock);
}

/* Settles, oldest first, the writes at or before `through`; the lock is held. */
static void settle_locked(cc_write_clock_t *clock, uint64_t through, int64_t now_us,
                          void (*settled)(int64_t latency_us, void *arg), void *arg)
{
    if (through > clock->delivered) {
        clock->delivered = through;
    }
    while (clock->count && clock->entries[clock->head].time <= through) {
        int64_t latency = now_us - clock->entries[clock->head].at_us;
        clock->head = (clock->head + 1) % clock->capacity;
        clock->count--;
        settled(latency > 0 ? latency : 0, arg);
    }
}

void cc_write_clock_settle(cc_write_clock_t *clock, uint32_t seconds, uint32_t increment,
                           int64_t now_us, void (*settled)(int64_t latency_us, void *arg),
                           void *arg)
{
    pthread_mutex_lock(&clock->lock);
    settle_locked(clock, ((uint64_t)seconds << 32) | increment, now_us, settled, arg);
    pthread_mutex_unlock(&clock->lock);
}

void cc_write_clock_settle_late(cc_write_clock_t *clock, int64_t now_us,
                                void (*settled)(int64_t latency_us, void *arg), void *arg)
{
    pthread_mutex_lock(&clock->lock);
    settle_locked(clock, clock->delivered, now_us, settled, arg);
    pthread_mutex_unlock(&clock->lock);
}
