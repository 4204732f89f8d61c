/* SPDX-License-Identifier: Apache-2.0 */
/* changes/capture: ONE upstream change stream for the deployment, on its
 * own thread with mongo-c-driver, filtered at the source to the exposed
 * namespaces, resumed from a persisted token; plus a worker that serves
 * private catch-up streams for subscribers older than the ring. Talks to the
 * push thread only through a cc_channel_t. */
#ifndef CHANGECAST_CAPTURE_H
#define CHANGECAST_CAPTURE_H

#include "changecast/channel.h"

#include <bson/bson.h>
#include <stdint.h>

typedef struct cc_capture_options {
    const char *uri;
    const char *expose;
    const char *full_document;               /* default, updateLookup, whenAvailable, required */
    const char *full_document_before_change; /* off, whenAvailable, required */
    const char *token_file;                  /* empty: do not persist */
    int64_t token_save_ms;
    int64_t max_await_ms;
    const char *instance; /* in the appName of capture's connections */
} cc_capture_options_t;

typedef struct cc_capture cc_capture_t;

/* Validates the options (errors name the key) and starts both threads. */
cc_capture_t *cc_capture_start(const cc_capture_options_t *options, cc_channel_t *channel,
                               bson_error_t *error);

/* Stops both threads and saves the last token. */
void cc_capture_stop(cc_capture_t *capture);

#endif
