/* SPDX-License-Identifier: Apache-2.0 */
/* core/log: one logfmt line per event, to stderr or a file that SIGHUP reopens.
 * Owns the log sink; calls nothing of ours. Safe from any thread: each line
 * leaves in a single write(2). */
#ifndef CHANGECAST_LOG_H
#define CHANGECAST_LOG_H

#include <stdbool.h>

typedef enum cc_log_level {
    CC_LOG_DEBUG,
    CC_LOG_INFO,
    CC_LOG_WARN,
    CC_LOG_ERROR,
} cc_log_level_t;

bool cc_log_level_parse(const char *name, cc_log_level_t *level);
void cc_log_set_level(cc_log_level_t level);
bool cc_log_enabled(cc_log_level_t level);

/* Names this instance in every line (instance=NAME), when set before any
 * other thread logs; at most 63 bytes of [A-Za-z0-9._-] are kept. */
void cc_log_set_instance(const char *name);
const char *cc_log_instance(void);

/* Opens (or reopens, after rotation) the log file; NULL or "" logs to stderr. */
bool cc_log_open(const char *path);

/* fmt continues the line after "ts=... level=...", e.g. "conn=%llu event=closed reason=%s". */
void cc_log(cc_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cc_debug(...) (cc_log_enabled(CC_LOG_DEBUG) ? cc_log(CC_LOG_DEBUG, __VA_ARGS__) : (void)0)
#define cc_info(...) cc_log(CC_LOG_INFO, __VA_ARGS__)
#define cc_warn(...) cc_log(CC_LOG_WARN, __VA_ARGS__)
#define cc_error(...) cc_log(CC_LOG_ERROR, __VA_ARGS__)

#endif
