/* SPDX-License-Identifier: Apache-2.0 */
/* Config parsing: defaults, the file, flags over the file, and errors that
 * name the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "changecast/config.h"

static char *write_file(const char *text)
{
    char *path = strdup("/tmp/cc_config_test_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    (void)state;
    cc_config_t config;
    cc_config_init(&config);
    assert_string_equal(config.wire.listen, "127.0.0.1:27018");
    assert_string_equal(config.wire.upstream, "mongodb://127.0.0.1:27017/?replicaSet=rs0");
    assert_int_equal(config.wire.drain_timeout_ms, 10000);
    assert_string_equal(config.log.level, "info");
    cc_config_destroy(&config);
}

static void test_file_then_flags_override(void **state)
{
    (void)state;
    char *path = write_file("; comment\n[wire]\nlisten = 127.0.0.1:9000\nmax_connections = 5\n"
                            "[log]\nlevel = debug\n");
    char *argv[] = {"changecast",  "--config", path, "--wire.listen=0.0.0.0:27018",
                    "--log.level", "warn"};
    cc_config_t config;
    cc_cli_action_t action;
    bson_error_t error;
    cc_config_init(&config);
    assert_true(cc_config_from_args(&config, 6, argv, &action, &error));
    assert_int_equal(action, CC_CLI_RUN);
    assert_string_equal(config.wire.listen, "0.0.0.0:27018");
    assert_int_equal(config.wire.max_connections, 5);
    assert_string_equal(config.log.level, "warn");
    cc_config_destroy(&config);
    unlink(path);
    free(path);
}

static void test_errors_name_the_key(void **state)
{
    (void)state;
    const struct {
        const char *file;
        const char *expect;
    } table[] = {
        {"[wire]\nlisten = nowhere\n", "wire.listen"},
        {"[wire]\nlisten = 127.0.0.1:70000\n", "wire.listen"},
        {"[wire]\nmax_connections = ten\n", "wire.max_connections"},
        {"[wire]\nmax_connections = 0\n", "wire.max_connections"},
        {"[wire]\nlistne = 127.0.0.1:1\n", "wire.listne: no such key"},
        {"[nosuch]\nlisten = 1\n", "nosuch.listen: no such key"},
        {"[log]\nlevel = loud\n", "log.level"},
        {"[wire]\njust words\n", "line 2"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char *path = write_file(table[i].file);
        cc_config_t config;
        bson_error_t error;
        cc_config_init(&config);
        assert_false(cc_config_load_file(&config, path, &error));
        if (!strstr(error.message, table[i].expect)) {
            fail_msg("\"%s\" does not mention \"%s\"", error.message, table[i].expect);
        }
        cc_config_destroy(&config);
        unlink(path);
        free(path);
    }
}

static void test_flag_errors(void **state)
{
    (void)state;
    cc_config_t config;
    cc_cli_action_t action;
    bson_error_t error;
    char *unknown[] = {"changecast", "--wire.nope=1"};
    char *missing[] = {"changecast", "--wire.listen"};
    char *bare[] = {"changecast", "listen"};
    char *nofile[] = {"changecast", "--config", "/nonexistent/changecast.conf"};
    cc_config_init(&config);
    assert_false(cc_config_from_args(&config, 2, unknown, &action, &error));
    assert_non_null(strstr(error.message, "wire.nope"));
    assert_false(cc_config_from_args(&config, 2, missing, &action, &error));
    assert_non_null(strstr(error.message, "needs a value"));
    assert_false(cc_config_from_args(&config, 2, bare, &action, &error));
    assert_false(cc_config_from_args(&config, 3, nofile, &action, &error));
    assert_non_null(strstr(error.message, "cannot open"));
    cc_config_destroy(&config);
}

static void test_actions(void **state)
{
    (void)state;
    cc_config_t config;
    cc_cli_action_t action;
    bson_error_t error;
    char *help[] = {"changecast", "--help"};
    char *version[] = {"changecast", "--version"};
    char *check[] = {"changecast", "--check-config", "--wire.listen", "127.0.0.1:1"};
    cc_config_init(&config);
    assert_true(cc_config_from_args(&config, 2, help, &action, &error));
    assert_int_equal(action, CC_CLI_HELP);
    assert_true(cc_config_from_args(&config, 2, version, &action, &error));
    assert_int_equal(action, CC_CLI_VERSION);
    assert_true(cc_config_from_args(&config, 4, check, &action, &error));
    assert_int_equal(action, CC_CLI_CHECK_CONFIG);
    assert_string_equal(config.wire.listen, "127.0.0.1:1");
    cc_config_destroy(&config);
}

static void test_shipped_config_file_is_valid(void **state)
{
    (void)state;
    cc_config_t config;
    bson_error_t error;
    cc_config_init(&config);
    if (!cc_config_load_file(&config, CC_SOURCE_DIR "/conf/changecast.conf", &error)) {
        fail_msg("%s", error.message);
    }
    cc_config_destroy(&config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_then_flags_override),
        cmocka_unit_test(test_errors_name_the_key),
        cmocka_unit_test(test_flag_errors),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_shipped_config_file_is_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
