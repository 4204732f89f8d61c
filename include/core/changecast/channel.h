/* SPDX-License-Identifier: Apache-2.0 */
/* core/channel: the only link between the capture thread and the push
 * thread. Capture posts messages (events, progress, status) in stream order;
 * push takes them all at once when woken. Push asks capture for catch-up
 * streams the same way in the other direction. A mutex guards each list;
 * the wakeup function (lws_cancel_service) is the only thing called across. */
#ifndef CHANGECAST_CHANNEL_H
#define CHANGECAST_CHANNEL_H

#include "changecast/event.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum cc_msg_kind {
    CC_MSG_EVENT,           /* a live event */
    CC_MSG_STARTED,         /* capture stream open; token: where it resumed (may be NULL) */
    CC_MSG_PROGRESS,        /* token: postBatchResumeToken of an empty batch */
    CC_MSG_RESTARTED,       /* own position lost upstream; started from now */
    CC_MSG_UNAVAILABLE,     /* reason: why no change stream can run */
    CC_MSG_INTERRUPTED,     /* reason: the stream failed; capture retries */
    CC_MSG_CATCHUP_EVENT,   /* an event of catch-up `catchup_id` */
    CC_MSG_CATCHUP_CURRENT, /* catch-up `catchup_id` has read up to token */
    CC_MSG_CATCHUP_LOST,    /* catch-up `catchup_id`: token older than the history */
    CC_MSG_SNAPSHOT,        /* snapshot `catchup_id` read (or refused: snapshot->error_code) */
} cc_msg_kind_t;

/* What a live query reads first: documents of one collection matching
 * `filter`, as of one cluster time (readConcern snapshot). */
typedef struct cc_snapshot_query {
    char *db;
    char *coll;
    bson_t *filter;      /* a find filter; NULL = every document */
    bson_t *sort;        /* NULL = natural order */
    bson_t *projection;  /* NULL = whole documents */
    int64_t limit;       /* 0 = none */
    uint32_t at_seconds; /* the cluster time to read at */
    uint32_t at_increment;
    int64_t max_docs; /* refuse past these */
    int64_t max_bytes;
} cc_snapshot_query_t;

void cc_snapshot_query_free(cc_snapshot_query_t *query);

typedef struct cc_snapshot {
    char **docs; /* each document as relaxed Extended JSON */
    size_t *lens;
    size_t count;
    size_t bytes;
    uint32_t seconds; /* atClusterTime */
    uint32_t increment;
    char *error_code; /* NULL when read; else e.g. "snapshot_too_large" */
    char *error_message;
} cc_snapshot_t;

void cc_snapshot_free(cc_snapshot_t *snapshot);

/* Work the push thread hands to capture's workers. */
typedef enum cc_request_kind { CC_REQUEST_CATCHUP, CC_REQUEST_SNAPSHOT } cc_request_kind_t;

typedef struct cc_request {
    cc_request_kind_t kind;
    uint64_t id;
    char *token;                /* catch-up: the events after this */
    cc_snapshot_query_t *query; /* snapshot */
    bool cancelled;             /* guarded by the channel */
    struct cc_request *next;
} cc_request_t;

typedef struct cc_msg {
    cc_msg_kind_t kind;
    cc_event_t *event;
    char *token;
    char *reason;
    uint64_t catchup_id; /* the request a CATCHUP_* or SNAPSHOT message answers */
    cc_snapshot_t *snapshot;
    struct cc_msg *next;
} cc_msg_t;

typedef struct cc_channel cc_channel_t;

cc_channel_t *cc_channel_new(void);
void cc_channel_free(cc_channel_t *channel);

/* Set by the consumer before any post; runs on the posting thread. */
void cc_channel_on_post(cc_channel_t *channel, void (*wakeup)(void *arg), void *arg);

/* Capture side. The message's strings and event reference move in. */
void cc_channel_post(cc_channel_t *channel, cc_msg_kind_t kind, cc_event_t *event,
                     const char *token, const char *reason, uint64_t catchup_id);

/* Push side: every message posted so far, oldest first; free each with
 * cc_msg_free. */
cc_msg_t *cc_channel_take(cc_channel_t *channel);
void cc_msg_free(cc_msg_t *msg);

/* Push asks for the events after `token`, or for a snapshot (the query
 * moves in), or cancels either. */
void cc_channel_request_catchup(cc_channel_t *channel, uint64_t id, const char *token);
void cc_channel_request_snapshot(cc_channel_t *channel, uint64_t id, cc_snapshot_query_t *query);
void cc_channel_cancel_request(cc_channel_t *channel, uint64_t id);

/* Worker side: waits up to timeout_ms for a request (NULL on none); the
 * worker owns it until cc_channel_request_done. */
cc_request_t *cc_channel_next_request(cc_channel_t *channel, int64_t timeout_ms);
bool cc_channel_request_cancelled(cc_channel_t *channel, const cc_request_t *request);
void cc_channel_request_done(cc_channel_t *channel, cc_request_t *request);

/* Capture side: posts a snapshot's result (moves in). */
void cc_channel_post_snapshot(cc_channel_t *channel, uint64_t id, cc_snapshot_t *snapshot);

/* Messages posted and not yet taken: producers wait while it is high, so
 * a slow push thread bounds capture's memory instead of the reverse. */
size_t cc_channel_backlog(cc_channel_t *channel);
#define CC_CHANNEL_MAX_BACKLOG 4096

/* Wakes every waiting cc_channel_next_request (shutdown). */
void cc_channel_interrupt(cc_channel_t *channel);

#endif
