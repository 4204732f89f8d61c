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
} cc_msg_kind_t;

typedef struct cc_msg {
    cc_msg_kind_t kind;
    cc_event_t *event;
    char *token;
    char *reason;
    uint64_t catchup_id;
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

/* Push asks for the events after `token`, or cancels. */
void cc_channel_request_catchup(cc_channel_t *channel, uint64_t id, const char *token);
void cc_channel_cancel_catchup(cc_channel_t *channel, uint64_t id);

/* Capture side: waits up to timeout_ms for a request; false on none. */
bool cc_channel_next_catchup(cc_channel_t *channel, int64_t timeout_ms, uint64_t *id, char **token);
bool cc_channel_catchup_cancelled(cc_channel_t *channel, uint64_t id);

/* Messages posted and not yet taken: producers wait while it is high, so
 * a slow push thread bounds capture's memory instead of the reverse. */
size_t cc_channel_backlog(cc_channel_t *channel);
#define CC_CHANNEL_MAX_BACKLOG 4096

/* Wakes a waiting cc_channel_next_catchup (shutdown). */
void cc_channel_interrupt(cc_channel_t *channel);

#endif
