/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the config parser (src/core/config.c), through the two
 * ways a user reaches it: the INI file and the command line. The input is
 * the file's text, then optionally a NUL byte and command-line arguments
 * separated by NUL bytes. cc_config_load_file only reads paths, so the text
 * goes into a memfd opened as /proc/self/fd/N; config.c is used as it is.
 *
 * The target runs `changecast --config FILE ARGS...`. An argument naming
 * another config file is dropped: the fuzzer must not read files of this
 * machine (or /dev/zero, which never ends). A key that was set must keep a
 * value inside its range, and an error must say something. */
#define _GNU_SOURCE
#include "changecast/config.h"
#include "core/fuzz/fuzz_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_ARGS = 64 };

static int config_fd = -1;
static char config_path[64];

static void check_config(const cc_config_t *config)
{
    /* Strings are never NULL after cc_config_init, whatever was set. */
    CHECK(config->wire.listen && config->wire.upstream && config->changes.expose &&
          config->push.listen && config->log.level && config->log.file);
    CHECK(config->wire.max_connections >= 1 && config->wire.max_connections <= 1000000);
    CHECK(config->changes.ring_bytes >= 1024);
    CHECK(config->push.max_message_bytes >= 256 && config->push.max_message_bytes <= 16777216);
    CHECK(config->push.heartbeat_ms >= 100);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (config_fd < 0) {
        config_fd = memfd_create("fuzz_config", 0);
        CHECK(config_fd >= 0);
        snprintf(config_path, sizeof config_path, "/proc/self/fd/%d", config_fd);
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t file_len = nul ? (size_t)(nul - data) : size;
    CHECK(ftruncate(config_fd, 0) == 0);
    CHECK(pwrite(config_fd, data, file_len, 0) == (ssize_t)file_len);

    /* The arguments: one copy, NUL-terminated, split in place. */
    size_t args_len = nul ? size - file_len - 1 : 0;
    char *args = malloc(args_len + 1);
    CHECK(args);
    if (args_len) {
        memcpy(args, nul + 1, args_len);
    }
    args[args_len] = '\0';
    char *argv[MAX_ARGS + 4] = {"changecast", "--config", config_path};
    int argc = 3;
    for (char *arg = args; arg < args + args_len && argc < MAX_ARGS + 3; arg += strlen(arg) + 1) {
        if (strncmp(arg, "--config", 8) == 0) {
            continue;
        }
        argv[argc++] = arg;
    }
    argv[argc] = NULL;

    cc_config_t config;
    cc_cli_action_t action;
    bson_error_t error;
    cc_config_init(&config);
    if (cc_config_from_args(&config, argc, argv, &action, &error)) {
        check_config(&config);
    } else {
        CHECK(error.message[0] != '\0');
    }
    cc_config_destroy(&config);
    free(args);
    return 0;
}
