/* SPDX-License-Identifier: Apache-2.0 */
/* The capture thread. One cluster-wide change stream (mongoc_client_watch)
 * whose first stage matches the exposed namespaces, so nothing else ever
 * leaves MongoDB. mongo-c-driver resumes once by itself after a resumable
 * error (change-streams spec, "Resume Process"); past that this loop reopens
 * from its own last token with capped, jittered backoff. The token, advanced
 * by every event and every empty batch's postBatchResumeToken, is saved at
 * most every token_save_ms. */
#include "changecast/capture.h"
#include "changecast/expose.h"
#include "changecast/log.h"
#include "stream.h"
#include "token_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Snapshot reads and catch-up streams run on these; two, so one long
 * catch-up does not hold a snapshot (or another catch-up) up. */
#define CC_CAPTURE_WORKERS 2

struct cc_capture {
    cc_capture_options_t options;
    cc_stream_config_t config;
    cc_channel_t *channel;
    char *token;
    int64_t token_saved_us;
    bool token_dirty;
    pthread_t thread;
    pthread_t workers[CC_CAPTURE_WORKERS];
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
};

/* Sleeps up to ms, or until stop. */
static bool pause_ms(cc_capture_t *capture, int64_t ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    int64_t ns = (int64_t)deadline.tv_nsec + (ms % 1000) * 1000000;
    deadline.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
    deadline.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&capture->lock);
    while (!capture->stopping &&
           pthread_cond_timedwait(&capture->wake, &capture->lock, &deadline) == 0) {
    }
    bool stopping = capture->stopping;
    pthread_mutex_unlock(&capture->lock);
    return !stopping;
}

static bool stopping(cc_capture_t *capture)
{
    pthread_mutex_lock(&capture->lock);
    bool stop = capture->stopping;
    pthread_mutex_unlock(&capture->lock);
    return stop;
}

static void save_token(cc_capture_t *capture, bool force)
{
    if (!capture->token_dirty || !*capture->options.token_file) {
        return;
    }
    int64_t now = bson_get_monotonic_time();
    if (!force && now - capture->token_saved_us < capture->options.token_save_ms * 1000) {
        return;
    }
    bson_error_t error;
    if (cc_token_store_save(capture->options.token_file, capture->token, &error)) {
        capture->token_dirty = false;
        capture->token_saved_us = now;
    } else {
        cc_error("event=token_save_failed error=\"%s\"", error.message);
    }
}

static void set_token(cc_capture_t *capture, const char *token)
{
    if (!capture->token || strcmp(capture->token, token) != 0) {
        bson_free(capture->token);
        capture->token = bson_strdup(token);
        capture->token_dirty = true;
    }
}

/* Full jitter over an exponential bound (AWS architecture blog's advice). */
static int64_t backoff_ms(int attempt)
{
    int64_t bound = 100LL << (attempt < 7 ? attempt : 7);
    if (bound > 10000) {
        bound = 10000;
    }
    return 1 + (int64_t)(rand() % (int)bound);
}

/* Reads one opened stream until it fails or we stop. Returns the error
 * class so the caller decides how to reopen. */
static bool capture_stopping(void *arg)
{
    return stopping(arg);
}

static cc_stream_error_t pump(cc_capture_t *capture, mongoc_change_stream_t *stream,
                              bson_error_t *error)
{
    const bson_t *doc;
    while (cc_stream_wait_for_room(capture->channel, capture_stopping, capture)) {
        if (mongoc_change_stream_next(stream, &doc)) {
            bson_error_t event_error;
            cc_event_t *event = cc_event_new(doc, &event_error);
            if (!event) {
                cc_warn("event=change_skipped reason=\"%s\"", event_error.message);
                continue;
            }
            set_token(capture, event->token);
            cc_channel_post(capture->channel, CC_MSG_EVENT, event, NULL, NULL, 0);
        } else {
            cc_stream_error_t failure = cc_stream_check(stream, error);
            if (failure != CC_STREAM_OK) {
                return failure;
            }
            /* Every empty batch, moved or not: it also tells push that a
             * transaction it holds is complete. */
            char *token = cc_stream_resume_token(stream);
            if (token) {
                cc_channel_post(capture->channel, CC_MSG_PROGRESS, NULL, token, NULL, 0);
                set_token(capture, token);
                bson_free(token);
            }
        }
        save_token(capture, false);
    }
    return CC_STREAM_OK;
}

static void *capture_thread(void *arg)
{
    cc_capture_t *capture = arg;
    mongoc_client_t *client = cc_stream_client_new(&capture->config, "capture");
    int attempt = 0;
    bool reported_unavailable = false;

    while (!stopping(capture)) {
        bson_error_t error;
        mongoc_change_stream_t *stream = cc_stream_open(client, &capture->config, capture->token);
        cc_stream_error_t failure = cc_stream_check(stream, &error);
        if (failure == CC_STREAM_OK) {
            char *start = cc_stream_resume_token(stream);
            cc_info("event=capture_started resumed=%s", capture->token ? "true" : "false");
            cc_channel_post(capture->channel, CC_MSG_STARTED, NULL,
                            capture->token ? capture->token : start, NULL, 0);
            if (!capture->token && start) {
                /* A stream opened at "now" starts at its first batch's
                 * postBatchResumeToken, a high-water mark: a position live
                 * queries can place a snapshot at right away. */
                cc_channel_post(capture->channel, CC_MSG_PROGRESS, NULL, start, NULL, 0);
                set_token(capture, start);
            }
            bson_free(start);
            attempt = 0;
            reported_unavailable = false;
            failure = pump(capture, stream, &error);
        }
        mongoc_change_stream_destroy(stream);
        if (failure == CC_STREAM_OK) {
            break; /* stopping */
        }
        if (failure == CC_STREAM_HISTORY_LOST) {
            /* Our own position fell out of the upstream's history: events
             * are gone for good. Say so once, loudly, start from now, and
             * tell every subscriber to re-fetch. Never loop on it. */
            cc_error("event=capture_history_lost error=\"%s\" action=\"starting from now; "
                     "subscribers get reset\"",
                     error.message);
            bson_free(capture->token);
            capture->token = NULL;
            capture->token_dirty = false;
            cc_channel_post(capture->channel, CC_MSG_RESTARTED, NULL, NULL, error.message, 0);
            continue;
        }
        if (failure == CC_STREAM_UNSUPPORTED) {
            if (!reported_unavailable) {
                cc_error("event=capture_unavailable error=\"%s\"", error.message);
                cc_channel_post(capture->channel, CC_MSG_UNAVAILABLE, NULL, NULL,
                                "the upstream cannot open change streams (they need a replica "
                                "set or a sharded cluster)",
                                0);
                reported_unavailable = true;
            }
            pause_ms(capture, 10000);
            continue;
        }
        int64_t wait = backoff_ms(attempt++);
        cc_warn("event=capture_interrupted error=\"%s\" retry_in_ms=%lld", error.message,
                (long long)wait);
        cc_channel_post(capture->channel, CC_MSG_INTERRUPTED, NULL, NULL, error.message, 0);
        pause_ms(capture, wait);
    }
    save_token(capture, true);
    mongoc_client_destroy(client);
    return NULL;
}

/* Catch-up streams and snapshot reads, one at a time per worker. */
static void *worker_main(void *arg)
{
    cc_capture_t *capture = arg;
    mongoc_client_t *client = cc_stream_client_new(&capture->config, "worker");
    while (!stopping(capture)) {
        cc_request_t *request = cc_channel_next_request(capture->channel, 500);
        if (!request) {
            continue;
        }
        if (request->kind == CC_REQUEST_CATCHUP) {
            cc_catchup_run(client, &capture->config, capture->channel, request);
        } else {
            cc_snapshot_run(client, capture->channel, request);
        }
        cc_channel_request_done(capture->channel, request);
    }
    mongoc_client_destroy(client);
    return NULL;
}

cc_capture_t *cc_capture_start(const cc_capture_options_t *options, cc_channel_t *channel,
                               bson_error_t *error)
{
    /* The stream config holds a bson_t, which asks for 128-byte alignment. */
    void *memory = NULL;
    if (posix_memalign(&memory, BSON_ALIGNOF(bson_t), sizeof(cc_capture_t)) != 0) {
        bson_set_error(error, 0, 0, "out of memory");
        return NULL;
    }
    cc_capture_t *capture = memset(memory, 0, sizeof(cc_capture_t));
    capture->options = *options;
    capture->channel = channel;
    pthread_mutex_init(&capture->lock, NULL);
    pthread_cond_init(&capture->wake, NULL);
    if (!cc_stream_config_init(&capture->config, options, error) ||
        (*options->token_file &&
         !cc_token_store_load(options->token_file, &capture->token, error))) {
        cc_stream_config_destroy(&capture->config);
        free(capture);
        return NULL;
    }
    if (capture->token) {
        cc_info("event=token_loaded file=\"%s\"", options->token_file);
    }
    pthread_create(&capture->thread, NULL, capture_thread, capture);
    for (int i = 0; i < CC_CAPTURE_WORKERS; i++) {
        pthread_create(&capture->workers[i], NULL, worker_main, capture);
    }
    return capture;
}

void cc_capture_stop(cc_capture_t *capture)
{
    if (!capture) {
        return;
    }
    pthread_mutex_lock(&capture->lock);
    capture->stopping = true;
    pthread_cond_broadcast(&capture->wake);
    pthread_mutex_unlock(&capture->lock);
    cc_channel_interrupt(capture->channel);
    pthread_join(capture->thread, NULL);
    for (int i = 0; i < CC_CAPTURE_WORKERS; i++) {
        pthread_join(capture->workers[i], NULL);
    }
    cc_stream_config_destroy(&capture->config);
    bson_free(capture->token);
    pthread_mutex_destroy(&capture->lock);
    pthread_cond_destroy(&capture->wake);
    free(capture);
}
