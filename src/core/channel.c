/* SPDX-License-Identifier: Apache-2.0 */
/* Two singly linked lists behind one mutex each. Messages are few per
 * event and the consumer takes the whole list in one lock, so contention is
 * negligible next to the network work on either side. */
#include "changecast/channel.h"

#include <pthread.h>
#include <time.h>

struct cc_channel {
    pthread_mutex_t lock;
    cc_msg_t *head, *tail;
    size_t backlog; /* messages posted and not yet taken */
    void (*wakeup)(void *arg);
    void *wakeup_arg;

    pthread_mutex_t request_lock;
    pthread_cond_t request_ready;
    cc_request_t *requests; /* waiting, oldest first */
    cc_request_t *running;  /* taken by a worker, so a cancel can reach them */
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

void cc_snapshot_query_free(cc_snapshot_query_t *query)
{
    if (!query) {
        return;
    }
    bson_free(query->db);
    bson_free(query->coll);
    bson_destroy(query->filter);
    bson_destroy(query->sort);
    bson_destroy(query->projection);
    bson_free(query);
}

void cc_snapshot_free(cc_snapshot_t *snapshot)
{
    if (!snapshot) {
        return;
    }
    for (size_t i = 0; i < snapshot->count; i++) {
        bson_free(snapshot->docs[i]);
    }
    bson_free(snapshot->docs);
    bson_free(snapshot->lens);
    bson_free(snapshot->error_code);
    bson_free(snapshot->error_message);
    bson_free(snapshot);
}

static void request_free(cc_request_t *request)
{
    bson_free(request->token);
    cc_snapshot_query_free(request->query);
    bson_free(request);
}

void cc_msg_free(cc_msg_t *msg)
{
    if (msg) {
        cc_snapshot_free(msg->snapshot);
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
    for (cc_request_t *r = channel->requests, *next; r; r = next) {
        next = r->next;
        request_free(r);
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

static void append_msg(cc_channel_t *channel, cc_msg_t *msg)
{
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

void cc_channel_post(cc_channel_t *channel, cc_msg_kind_t kind, cc_event_t *event,
                     const char *token, const char *reason, uint64_t catchup_id)
{
    cc_msg_t *msg = bson_malloc0(sizeof *msg);
    msg->kind = kind;
    msg->event = event;
    msg->token = token ? bson_strdup(token) : NULL;
    msg->reason = reason ? bson_strdup(reason) : NULL;
    msg->catchup_id = catchup_id;
    append_msg(channel, msg);
}

void cc_channel_post_snapshot(cc_channel_t *channel, uint64_t id, cc_snapshot_t *snapshot)
{
    cc_msg_t *msg = bson_malloc0(sizeof *msg);
    msg->kind = CC_MSG_SNAPSHOT;
    msg->catchup_id = id;
    msg->snapshot = snapshot;
    append_msg(channel, msg);
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

static void add_request(cc_channel_t *channel, cc_request_t *request)
{
    pthread_mutex_lock(&channel->request_lock);
    cc_request_t **end = &channel->requests;
    while (*end) {
        end = &(*end)->next;
    }
    *end = request;
    pthread_cond_signal(&channel->request_ready);
    pthread_mutex_unlock(&channel->request_lock);
}

void cc_channel_request_catchup(cc_channel_t *channel, uint64_t id, const char *token)
{
    cc_request_t *request = bson_malloc0(sizeof *request);
    request->kind = CC_REQUEST_CATCHUP;
    request->id = id;
    request->token = bson_strdup(token);
    add_request(channel, request);
}

void cc_channel_request_snapshot(cc_channel_t *channel, uint64_t id, cc_snapshot_query_t *query)
{
    cc_request_t *request = bson_malloc0(sizeof *request);
    request->kind = CC_REQUEST_SNAPSHOT;
    request->id = id;
    request->query = query;
    add_request(channel, request);
}

void cc_channel_cancel_request(cc_channel_t *channel, uint64_t id)
{
    pthread_mutex_lock(&channel->request_lock);
    for (cc_request_t **r = &channel->requests; *r; r = &(*r)->next) {
        if ((*r)->id == id) {
            cc_request_t *gone = *r;
            *r = gone->next;
            request_free(gone);
            break;
        }
    }
    for (cc_request_t *r = channel->running; r; r = r->next) {
        if (r->id == id) {
            r->cancelled = true;
        }
    }
    pthread_mutex_unlock(&channel->request_lock);
}

bool cc_channel_request_cancelled(cc_channel_t *channel, const cc_request_t *request)
{
    pthread_mutex_lock(&channel->request_lock);
    bool cancelled = channel->interrupted || request->cancelled;
    pthread_mutex_unlock(&channel->request_lock);
    return cancelled;
}

cc_request_t *cc_channel_next_request(cc_channel_t *channel, int64_t timeout_ms)
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
    cc_request_t *request = channel->interrupted ? NULL : channel->requests;
    if (request) {
        channel->requests = request->next;
        request->next = channel->running;
        channel->running = request;
    }
    pthread_mutex_unlock(&channel->request_lock);
    return request;
}

void cc_channel_request_done(cc_channel_t *channel, cc_request_t *request)
{
    pthread_mutex_lock(&channel->request_lock);
    for (cc_request_t **r = &channel->running; *r; r = &(*r)->next) {
        if (*r == request) {
            *r = request->next;
            break;
        }
    }
    pthread_mutex_unlock(&channel->request_lock);
    request_free(request);
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
