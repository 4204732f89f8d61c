/* SPDX-License-Identifier: Apache-2.0 */
/* The write clock: a write is settled when a delivery reaches its cluster
 * time, in reply order; one whose change went out before its reply was
 * recorded counts 0 and is settled without waiting for another delivery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "changecast/write_clock.h"

typedef struct settled_log {
    int64_t latencies[8];
    size_t count;
} settled_log_t;

static void note(int64_t latency_us, void *arg)
{
    settled_log_t *log = arg;
    log->latencies[log->count++] = latency_us;
}

static void test_settles_writes_up_to_the_delivered_time(void **state)
{
    (void)state;
    cc_write_clock_t *clock = cc_write_clock_new(8);
    settled_log_t log = {0};
    cc_write_clock_record(clock, 100, 1, 1000);
    cc_write_clock_record(clock, 100, 2, 2000);
    cc_write_clock_settle(clock, 100, 1, 5000, note, &log);
    assert_int_equal(log.count, 1);
    assert_int_equal(log.latencies[0], 4000);
    cc_write_clock_settle(clock, 100, 2, 6000, note, &log);
    assert_int_equal(log.count, 2);
    assert_int_equal(log.latencies[1], 4000);
    cc_write_clock_free(clock);
}

static void
test_a_write_recorded_after_its_delivery_counts_zero_without_another_delivery(void **state)
{
    (void)state;
    cc_write_clock_t *clock = cc_write_clock_new(8);
    settled_log_t log = {0};
    cc_write_clock_settle(clock, 100, 5, 1000, note, &log); /* the change went out first */
    cc_write_clock_record(clock, 100, 5, 3000);             /* then its reply was recorded */
    cc_write_clock_record(clock, 100, 6, 3000);             /* a later write, not delivered */
    cc_write_clock_settle_late(clock, 9000, note, &log);
    assert_int_equal(log.count, 1);
    assert_int_equal(log.latencies[0], 0);
    cc_write_clock_settle(clock, 100, 6, 4000, note, &log);
    assert_int_equal(log.count, 2);
    assert_int_equal(log.latencies[1], 1000);
    cc_write_clock_free(clock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settles_writes_up_to_the_delivered_time),
        cmocka_unit_test(
            test_a_write_recorded_after_its_delivery_counts_zero_without_another_delivery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
