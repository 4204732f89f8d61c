/* SPDX-License-Identifier: Apache-2.0 */
/* The resume-token file: missing means "from now", saved atomically, a bad
 * file is an error that says what to do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "changes/token_store.h"

static void test_token_store_round_trip_and_missing_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/cc_token_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/token", dir);
    char *token;
    bson_error_t error;
    assert_true(cc_token_store_load(path, &token, &error));
    assert_null(token);
    assert_true(cc_token_store_save(path, "82ABC0", &error));
    assert_true(cc_token_store_save(path, "82ABC1", &error));
    assert_true(cc_token_store_load(path, &token, &error));
    assert_string_equal(token, "82ABC1");
    bson_free(token);
    char temp[300];
    snprintf(temp, sizeof temp, "%s.tmp", path);
    assert_int_equal(access(temp, F_OK), -1); /* renamed into place, nothing left */
    unlink(path);
    rmdir(dir);
}

static void test_token_store_rejects_garbage_with_advice(void **state)
{
    (void)state;
    char path[] = "/tmp/cc_token_bad_XXXXXX";
    int fd = mkstemp(path);
    assert_true(write(fd, "not a token\n", 12) == 12);
    close(fd);
    char *token;
    bson_error_t error;
    assert_false(cc_token_store_load(path, &token, &error));
    assert_non_null(strstr(error.message, "delete it to start from now"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_store_round_trip_and_missing_file),
        cmocka_unit_test(test_token_store_rejects_garbage_with_advice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
