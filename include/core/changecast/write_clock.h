/* SPDX-License-Identifier: Apache-2.0 */
/* core/write_clock: when the wire proxy forwarded the reply of each write
 * to an exposed namespace (by the write's operationTime), so the push
 * thread can tell, when that write's change reaches subscribers, how long
 * the round took: write-to-delivery latency measured on real traffic. The
 * wire thread records, the push thread settles; a mutex guards a bounded
 * queue (the oldest entry gives way when it is full). */
#ifndef CHANGECAST_WRITE_CLOCK_H
#define CHANGECAST_WRITE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

typedef struct cc_write_clock cc_write_clock_t;

cc_write_clock_t *cc_write_clock_new(size_t capacity);
void cc_write_clock_free(cc_write_clock_t *clock);

/* A write's reply left for its client at at_us (monotonic). */
void cc_write_clock_record(cc_write_clock_t *clock, uint32_t seconds, uint32_t increment,
                           int64_t at_us);

/* Everything up to cluster time (seconds, increment) has been delivered at
 * now_us: calls settled(latency_us) for each write recorded at or before
 * it, oldest first, and forgets them. Writes are recorded in reply order,
 * which follows operationTime closely; one that got ahead waits for the
 * next delivery past it. */
void cc_write_clock_settle(cc_write_clock_t *clock, uint32_t seconds, uint32_t increment,
                           int64_t now_us, void (*settled)(int64_t latency_us, void *arg),
                           void *arg);

/* Settles writes recorded after their change was already delivered (no
 * later delivery may come to settle them), with latency 0. The push
 * thread calls it now and then. */
void cc_write_clock_settle_late(cc_write_clock_t *clock, int64_t now_us,
                                void (*settled)(int64_t latency_us, void *arg), void *arg);

#endif
