/* SPDX-License-Identifier: Apache-2.0 */
/* Stream plumbing shared by capture and catch-up. Error codes follow the
 * server's error_codes.yml: 286 ChangeStreamHistoryLost, 280
 * ChangeStreamFatalError (the resume token is no longer in the oplog),
 * 40573 (change streams need a replica set). */
#include "stream.h"
#include "changecast/expose.h"
#include "changecast/log.h"

#include <string.h>
#include <time.h>

static bool one_of(const char *value, const char *const *allowed, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(value, allowed[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool cc_stream_config_init(cc_stream_config_t *config, const cc_capture_options_t *options,
                           bson_error_t *error)
{
    static const char *const full[] = {"default", "updateLookup", "whenAvailable", "required"};
    static const char *const before[] = {"off", "whenAvailable", "required"};
    memset(config, 0, sizeof *config);
    bson_init(&config->pipeline);
    if (!one_of(options->full_document, full, 4)) {
        bson_set_error(error, 0, 0,
                       "changes.full_document: \"%s\" is not one of default, updateLookup, "
                       "whenAvailable, required",
                       options->full_document);
        return false;
    }
    if (!one_of(options->full_document_before_change, before, 3)) {
        bson_set_error(error, 0, 0,
                       "changes.full_document_before_change: \"%s\" is not one of off, "
                       "whenAvailable, required",
                       options->full_document_before_change);
        return false;
    }
    cc_expose_t expose;
    bson_error_t detail;
    if (!cc_expose_parse(options->expose, &expose, &detail)) {
        bson_set_error(error, 0, 0, "changes.expose: %s", detail.message);
        return false;
    }
    if (expose.count == 0) {
        bson_set_error(error, 0, 0, "changes.expose: no namespace is exposed");
        return false;
    }
    config->uri = mongoc_uri_new_with_error(options->uri, &detail);
    if (!config->uri) {
        cc_expose_destroy(&expose);
        bson_set_error(error, 0, 0, "wire.upstream: %s", detail.message);
        return false;
    }
    cc_expose_append_match_stage(&expose, &config->pipeline, "0");
    cc_expose_destroy(&expose);
    config->full_document = bson_strdup(options->full_document);
    config->full_document_before_change = bson_strdup(options->full_document_before_change);
    config->max_await_ms = options->max_await_ms;
    config->instance = bson_strdup(options->instance ? options->instance : "");
    return true;
}

void cc_stream_config_destroy(cc_stream_config_t *config)
{
    mongoc_uri_destroy(config->uri);
    bson_destroy(&config->pipeline);
    bson_free(config->full_document);
    bson_free(config->full_document_before_change);
    bson_free(config->instance);
    memset(config, 0, sizeof *config);
}

mongoc_client_t *cc_stream_client_new(const cc_stream_config_t *config, const char *role)
{
    mongoc_uri_t *uri = mongoc_uri_copy(config->uri);
    /* MongoDB's logs, currentOp and fail points tell instances apart by it. */
    char app_name[128];
    snprintf(app_name, sizeof app_name, "changecast-%s@%s", role, config->instance);
    mongoc_uri_set_appname(uri, app_name);
    /* Keep selecting (up to serverSelectionTimeoutMS) instead of failing at
     * once during an election: single-threaded clients try once by default. */
    mongoc_uri_set_option_as_bool(uri, MONGOC_URI_SERVERSELECTIONTRYONCE, false);
    /* Short rounds keep shutdown prompt; the callers retry anyway. */
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000);
    /* A getMore answers within maxAwaitTimeMS; a socket silent far longer
     * is dead, and waiting out the 5-minute default would stall capture
     * (and shutdown) for nothing. */
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS,
                                   (int32_t)(config->max_await_ms + 10000));
    /* A change stream needs no retryable reads of its own: it resumes. */
    mongoc_client_t *client = mongoc_client_new_from_uri(uri);
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    mongoc_uri_destroy(uri);
    return client;
}

mongoc_change_stream_t *cc_stream_open(mongoc_client_t *client, const cc_stream_config_t *config,
                                       const char *token)
{
    bson_t opts = BSON_INITIALIZER;
    if (strcmp(config->full_document, "default") != 0) {
        BSON_APPEND_UTF8(&opts, "fullDocument", config->full_document);
    }
    if (strcmp(config->full_document_before_change, "off") != 0) {
        BSON_APPEND_UTF8(&opts, "fullDocumentBeforeChange", config->full_document_before_change);
    }
    BSON_APPEND_INT64(&opts, "maxAwaitTimeMS", config->max_await_ms);
    if (token) {
        /* startAfter, not resumeAfter: it also resumes past an invalidate. */
        bson_t after;
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "startAfter", &after);
        BSON_APPEND_UTF8(&after, "_data", token);
        bson_append_document_end(&opts, &after);
    }
    bson_t pipeline = BSON_INITIALIZER;
    bson_t stages;
    BSON_APPEND_ARRAY_BEGIN(&pipeline, "pipeline", &stages);
    bson_concat(&stages, &config->pipeline);
    bson_append_array_end(&pipeline, &stages);
    mongoc_change_stream_t *stream = mongoc_client_watch(client, &pipeline, &opts);
    bson_destroy(&pipeline);
    bson_destroy(&opts);
    return stream;
}

cc_stream_error_t cc_stream_check(const mongoc_change_stream_t *stream, bson_error_t *error)
{
    const bson_t *reply;
    if (!mongoc_change_stream_error_document(stream, error, &reply)) {
        return CC_STREAM_OK;
    }
    if (error->domain == MONGOC_ERROR_SERVER || error->domain == MONGOC_ERROR_QUERY) {
        if (error->code == 286 || error->code == 280) {
            return CC_STREAM_HISTORY_LOST;
        }
        if (error->code == 40573) {
            return CC_STREAM_UNSUPPORTED;
        }
        if (error->domain == MONGOC_ERROR_SERVER && error->code != 0 &&
            !mongoc_error_has_label(reply, "ResumableChangeStreamError")) {
            return CC_STREAM_REFUSED;
        }
    }
    return CC_STREAM_RETRY;
}

char *cc_stream_resume_token(const mongoc_change_stream_t *stream)
{
    const bson_t *token = mongoc_change_stream_get_resume_token((mongoc_change_stream_t *)stream);
    bson_iter_t iter;
    char normalized[CC_MAX_RESUME_TOKEN + 8];
    if (token && bson_iter_init_find(&iter, token, "_data") && BSON_ITER_HOLDS_UTF8(&iter) &&
        cc_token_normalize(bson_iter_utf8(&iter, NULL), normalized, sizeof normalized)) {
        return bson_strdup(normalized);
    }
    return NULL;
}

bool cc_stream_wait_for_room(cc_channel_t *channel, bool (*cancelled)(void *arg), void *arg)
{
    for (;;) {
        if (cancelled(arg)) {
            return false;
        }
        if (cc_channel_backlog(channel) <= CC_CHANNEL_MAX_BACKLOG) {
            return true;
        }
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 2 * 1000 * 1000}, NULL);
    }
}

typedef struct catchup_ref {
    cc_channel_t *channel;
    const cc_request_t *request;
} catchup_ref_t;

static bool catchup_cancelled(void *arg)
{
    catchup_ref_t *ref = arg;
    return cc_channel_request_cancelled(ref->channel, ref->request);
}

void cc_catchup_run(mongoc_client_t *client, const cc_stream_config_t *config,
                    cc_channel_t *channel, const cc_request_t *request)
{
    int attempts = 0;
    uint64_t id = request->id;
    char *position = bson_strdup(request->token);
    while (!cc_channel_request_cancelled(channel, request)) {
        bson_error_t error;
        mongoc_change_stream_t *stream = cc_stream_open(client, config, position);
        cc_stream_error_t failure = cc_stream_check(stream, &error);
        const bson_t *doc;
        catchup_ref_t ref = {channel, request};
        while (failure == CC_STREAM_OK &&
               cc_stream_wait_for_room(channel, catchup_cancelled, &ref)) {
            if (mongoc_change_stream_next(stream, &doc)) {
                bson_error_t event_error;
                cc_event_t *event = cc_event_new(doc, &event_error);
                if (event) {
                    bson_free(position);
                    position = bson_strdup(event->token);
                    cc_channel_post(channel, CC_MSG_CATCHUP_EVENT, event, NULL, NULL, id);
                }
                continue;
            }
            failure = cc_stream_check(stream, &error);
            if (failure == CC_STREAM_OK) {
                /* An empty batch: the stream has caught up with the present. */
                char *current = cc_stream_resume_token(stream);
                cc_channel_post(channel, CC_MSG_CATCHUP_CURRENT, NULL, current ? current : position,
                                NULL, id);
                bson_free(current);
                mongoc_change_stream_destroy(stream);
                bson_free(position);
                return;
            }
        }
        mongoc_change_stream_destroy(stream);
        /* Only network trouble is worth another try: a refused token stays
         * refused, and retrying it would hold up every other catch-up. */
        if (failure == CC_STREAM_HISTORY_LOST || failure == CC_STREAM_UNSUPPORTED ||
            failure == CC_STREAM_REFUSED || ++attempts > 5) {
            cc_channel_post(channel, CC_MSG_CATCHUP_LOST, NULL, NULL, error.message, id);
            break;
        }
        if (failure == CC_STREAM_OK) {
            break; /* cancelled */
        }
        cc_warn("event=catchup_interrupted id=%llu error=\"%s\"", (unsigned long long)id,
                error.message);
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000}, NULL);
    }
    bson_free(position);
}
