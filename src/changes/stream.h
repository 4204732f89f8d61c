/* SPDX-License-Identifier: Apache-2.0 */
/* changes/stream: what the capture and catch-up streams share: the pipeline
 * and options, opening a stream after a token, classifying its errors. */
#ifndef CC_CHANGES_STREAM_H
#define CC_CHANGES_STREAM_H

#include "changecast/capture.h"

#include <mongoc/mongoc.h>

typedef struct cc_stream_config {
    mongoc_uri_t *uri;
    bson_t pipeline;
    char *full_document;
    char *full_document_before_change;
    int64_t max_await_ms;
    char *instance;
} cc_stream_config_t;

typedef enum cc_stream_error {
    CC_STREAM_OK,
    CC_STREAM_RETRY,        /* network, primary change, anything resumable */
    CC_STREAM_REFUSED,      /* the server refused the request (e.g. a bad token) */
    CC_STREAM_HISTORY_LOST, /* 286 ChangeStreamHistoryLost, 280 token not found */
    CC_STREAM_UNSUPPORTED,  /* 40573: a standalone has no change streams */
} cc_stream_error_t;

bool cc_stream_config_init(cc_stream_config_t *config, const cc_capture_options_t *options,
                           bson_error_t *error);
void cc_stream_config_destroy(cc_stream_config_t *config);

/* A client whose connections carry the appName changecast-<role>@<instance>. */
mongoc_client_t *cc_stream_client_new(const cc_stream_config_t *config, const char *role);

/* startAfter `token` when given, else from now. Check the result with
 * cc_stream_check. */
mongoc_change_stream_t *cc_stream_open(mongoc_client_t *client, const cc_stream_config_t *config,
                                       const char *token);
cc_stream_error_t cc_stream_check(const mongoc_change_stream_t *stream, bson_error_t *error);

/* The stream's current resume token (_data, upper case), or NULL. */
char *cc_stream_resume_token(const mongoc_change_stream_t *stream);

/* Waits while the push thread has CC_CHANNEL_MAX_BACKLOG messages to take;
 * false when `cancelled` says to give up. */
bool cc_stream_wait_for_room(cc_channel_t *channel, bool (*cancelled)(void *arg), void *arg);

/* Serves one catch-up request: events after its token until the stream
 * has nothing more, posted as CC_MSG_CATCHUP_* messages. */
void cc_catchup_run(mongoc_client_t *client, const cc_stream_config_t *config,
                    cc_channel_t *channel, const cc_request_t *request);

/* Serves one snapshot request: the query's documents as of one cluster
 * time, posted as a CC_MSG_SNAPSHOT message. */
void cc_snapshot_run(mongoc_client_t *client, cc_channel_t *channel, const cc_request_t *request);

#endif
