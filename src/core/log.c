/* SPDX-License-Identifier: Apache-2.0 */
/* Logfmt lines built in a stack buffer and written with one write(2), so lines
 * from the wire, capture and push threads never interleave. The file
 * descriptor swaps atomically on reopen (SIGHUP after log rotation). */
#include "changecast/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_fd = 2;
static atomic_int log_threshold = CC_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Set once at start-up, before other threads exist. */
static char instance[64];

void cc_log_set_instance(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p && n + 1 < sizeof instance; p++) {
        bool safe = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-';
        instance[n++] = safe ? *p : '-';
    }
    instance[n] = '\0';
}

const char *cc_log_instance(void)
{
    return instance;
}

bool cc_log_level_parse(const char *name, cc_log_level_t *level)
{
    for (int i = CC_LOG_DEBUG; i <= CC_LOG_ERROR; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (cc_log_level_t)i;
            return true;
        }
    }
    return false;
}

void cc_log_set_level(cc_log_level_t level)
{
    atomic_store(&log_threshold, (int)level);
}

bool cc_log_enabled(cc_log_level_t level)
{
    return (int)level >= atomic_load(&log_threshold);
}

bool cc_log_open(const char *path)
{
    int fd = 2;
    if (path && *path) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            cc_error("event=log_open_failed path=\"%s\" error=\"%s\"", path, strerror(errno));
            return false;
        }
    }
    int old = atomic_exchange(&log_fd, fd);
    if (old != 2 && old != fd) {
        close(old);
    }
    return true;
}

void cc_log(cc_log_level_t level, const char *fmt, ...)
{
    if (!cc_log_enabled(level)) {
        return;
    }
    char line[2048];
    struct timespec now;
    struct tm utc;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &utc);
    size_t n = strftime(line, sizeof line, "ts=%Y-%m-%dT%H:%M:%S", &utc);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ level=%s ", now.tv_nsec / 1000000L,
                          level_names[level]);
    if (instance[0]) {
        n += (size_t)snprintf(line + n, sizeof line - n, "instance=%s ", instance);
    }
    va_list args;
    va_start(args, fmt);
    int body = vsnprintf(line + n, sizeof line - n, fmt, args);
    va_end(args);
    /* An over-long line is cut rather than split: a log line stays one event. */
    n = body < 0 ? n : n + (size_t)body;
    if (n > sizeof line - 2) {
        n = sizeof line - 2;
    }
    line[n++] = '\n';
    ssize_t ignored = write(atomic_load(&log_fd), line, n);
    (void)ignored;
}
