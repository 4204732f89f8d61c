/* SPDX-License-Identifier: Apache-2.0 */
/* Two singly linked lists behind one mutex each. Messages are few per
 * event and the consumer takes the whole list in one lock, so contention is
 * negligible next to the network work on either side. */
#include "changecast/channel.h"

#include <pthread.h>
#include <time.h>

typedef struct catchup_request {
    uint64_t id;
    char *token;
    struct catchup_request *next;
} catchup_request_t;

struct cc_channel {
    pthread_mutex_t lock;
    cc_msg_t *head, *tail;
    size_t backlog; /* messages posted and not yet taken */
    void (*wakeup)(void *arg);
    void *wakeup_arg;

    pthread_mutex_t request_lock;
    pthread_cond_t request_ready;
    catchup_request_t *requests;
    uint64_t running_id; /* the request a worker is serving */
    bool running_cancelled;
    bool interrupted;
};

cc_channel_t *cc_channel_new(void)
{
    cc_channel_t *channel = bson_malloc0(sizeof *channel);
    pthread_mutex_init(&channel->lock, NULL);
    pthread_mutex_init(&channel->request_lock, NULL);
    pthread_cond_init(&channel->request_ready, NULL);
    return channel;
}

void cc_msg_free(cc_msg_t *msg)
{
    if (msg) {
        cc_event_unref(msg->event);
        bson_free(msg->token);
        bson_free(msg->reason);
        bson_free(msg);
    }
}

void cc_channel_free(cc_channel_t *channel)
{
    if (!channel) {
        return;
    }
    for (cc_msg_t *msg = cc_channel_take(channel), *next; msg; msg = next) {
        next = msg->next;
        cc_msg_free(msg);
    }
    for (catchup_request_t *r = channel->requests, *next; r; r = next) {
        next = r->next;
        bson_free(r->token);
        bson_free(r);
    }
    pthread_mutex_destroy(&channel->lock);
    pthread_mutex_destroy(&channel->request_lock);
    pthread_cond_destroy(&channel->request_ready);
    bson_free(channel);
}

void cc_channel_on_post(cc_channel_t *channel, void (*wakeup)(void *arg), void *arg)
{
    pthread_mutex_lock(&channel->lock);
    channel->wakeup = wakeup;
    channel->wakeup_arg = arg;
    pthread_mutex_unlock(&channel->lock);
}

void cc_channel_post(cc_channel_t *channel, cc_msg_kind_t kind, cc_event_t *event,
                     const char *token, const char *reason, uint64_t catchup_id)
{
    cc_msg_t *msg = bson_malloc0(sizeof *msg);
    msg->kind = kind;
    msg->event = event;
    msg->token = token ? bson_strdup(token) : NULL;
    msg->reason = reason ? bson_strdup(reason) : NULL;
    msg->catchup_id = catchup_id;
    pthread_mutex_lock(&channel->lock);
    if (channel->tail) {
        channel->tail->next = msg;
    } else {
        channel->head = msg;
    }
    channel->tail = msg;
    channel->backlog++;
    void (*wakeup)(void *) = channel->wakeup;
    void *arg = channel->wakeup_arg;
    pthread_mutex_unlock(&channel->lock);
    if (wakeup) {
        wakeup(arg);
    }
}

cc_msg_t *cc_channel_take(cc_channel_t *channel)
{
    pthread_mutex_lock(&channel->lock);
    cc_msg_t *all = channel->head;
    channel->head = channel->tail = NULL;
    channel->backlog = 0;
    pthread_mutex_unlock(&channel->lock);
    return all;
}

void cc_channel_request_catchup(cc_channel_t *channel, uint64_t id, const char *token)
{
    catchup_request_t *request = bson_malloc0(sizeof *request);
    request->id = id;
    request->token = bson_strdup(token);
    pthread_mutex_lock(&channel->request_lock);
    catchup_request_t **end = &channel->requests;
    while (*end) {
        end = &(*end)->next;
    }
    *end = request;
    pthread_cond_signal(&channel->request_ready);
    pthread_mutex_unlock(&channel->request_lock);
}

void cc_channel_cancel_catchup(cc_channel_t *channel, uint64_t id)
{
    pthread_mutex_lock(&channel->request_lock);
    for (catchup_request_t **r = &channel->requests; *r; r = &(*r)->next) {
        if ((*r)->id == id) {
            catchup_request_t *gone = *r;
            *r = gone->next;
            bson_free(gone->token);
            bson_free(gone);
            break;
        }
    }
    if (channel->running_id == id) {
        channel->running_cancelled = true;
    }
    pthread_mutex_unlock(&channel->request_lock);
}

bool cc_channel_catchup_cancelled(cc_channel_t *channel, uint64_t id)
{
    pthread_mutex_lock(&channel->request_lock);
    bool cancelled =
        channel->interrupted || (channel->running_id == id && channel->running_cancelled);
    pthread_mutex_unlock(&channel->request_lock);
    return cancelled;
}

bool cc_channel_next_catchup(cc_channel_t *channel, int64_t timeout_ms, uint64_t *id, char **token)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&channel->request_lock);
    while (!channel->requests && !channel->interrupted) {
        if (pthread_cond_timedwait(&channel->request_ready, &channel->request_lock, &deadline) !=
            0) {
            break;
        }
    }
    catchup_request_t *request = channel->interrupted ? NULL : channel->requests;
    if (request) {
        channel->requests = request->next;
        channel->running_id = request->id;
        channel->running_cancelled = false;
    }
    pthread_mutex_unlock(&channel->request_lock);
    if (!request) {
        return false;
    }
    *id = request->id;
    *token = request->token;
    bson_free(request);
    return true;
}

size_t cc_channel_backlog(cc_channel_t *channel)
{
    pthread_mutex_lock(&channel->lock);
    size_t backlog = channel->backlog;
    pthread_mutex_unlock(&channel->lock);
    return backlog;
}

void cc_channel_interrupt(cc_channel_t *channel)
{
    pthread_mutex_lock(&channel->request_lock);
    channel->interrupted = true;
    pthread_cond_broadcast(&channel->request_ready);
    pthread_mutex_unlock(&channel->request_lock);
}
