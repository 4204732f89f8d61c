/* SPDX-License-Identifier: Apache-2.0 */
/* changes/snapshot: the first half of a live query. One `find` with
 * readConcern "snapshot" at the cluster time the push thread chose (where
 * capture had read up to), which the reply confirms (cursor.atClusterTime):
 * the point where the subscriber's changes start. A time older than the
 * server's snapshot history fails (SnapshotTooOld) and is reported as such,
 * never silently read at another time. The getMores ride the same session and
 * server, as a cursor opened in a session must. The whole result is held
 * (bounded by the query's caps) so that a refusal comes before anything is
 * sent. Runs on a capture worker; answers the push thread through the
 * channel. */
#include "changecast/json.h"
#include "changecast/log.h"
#include "stream.h"

#include <string.h>

static void fail(cc_snapshot_t *snapshot, const char *code, const char *message)
{
    for (size_t i = 0; i < snapshot->count; i++) {
        bson_free(snapshot->docs[i]);
    }
    snapshot->count = 0;
    snapshot->bytes = 0;
    snapshot->error_code = bson_strdup(code);
    snapshot->error_message = bson_strdup(message);
}

/* A failure to read: the driver's words (which name hosts) go to the log,
 * the client gets changecast's own; errors of our own making pass as they
 * are. */
static void fail_read(cc_snapshot_t *snapshot, const bson_error_t *error)
{
    if (error->domain == 0) {
        fail(snapshot, "snapshot_failed", error->message);
        return;
    }
    cc_warn("event=snapshot_read_failed error=\"%s\"", error->message);
    fail(snapshot, "snapshot_failed",
         "the snapshot could not be read from MongoDB; try again (details in changecast's log)");
}

static bool too_large(cc_snapshot_t *snapshot, const char *what, int64_t cap, const char *key)
{
    char message[200];
    snprintf(message, sizeof message,
             "the matching documents exceed %lld %s (push.%s): narrow the filter or give a limit",
             (long long)cap, what, key);
    fail(snapshot, "snapshot_too_large", message);
    return false;
}

static bool add_document(cc_snapshot_t *snapshot, const cc_snapshot_query_t *query,
                         const bson_t *doc, size_t *capacity)
{
    if ((int64_t)snapshot->count >= query->max_docs) {
        return too_large(snapshot, "documents", query->max_docs, "snapshot_max_docs");
    }
    size_t len;
    char *json = cc_json_document(doc, &len);
    if (!json) { /* MongoDB keeps strings as drivers send them */
        fail(snapshot, "snapshot_failed", "a matching document has a string that is not UTF-8");
        return false;
    }
    if ((int64_t)(snapshot->bytes + len) > query->max_bytes) {
        bson_free(json);
        return too_large(snapshot, "bytes", query->max_bytes, "snapshot_max_bytes");
    }
    if (snapshot->count == *capacity) {
        *capacity = *capacity ? *capacity * 2 : 64;
        snapshot->docs = bson_realloc(snapshot->docs, *capacity * sizeof *snapshot->docs);
        snapshot->lens = bson_realloc(snapshot->lens, *capacity * sizeof *snapshot->lens);
    }
    snapshot->docs[snapshot->count] = json;
    snapshot->lens[snapshot->count++] = len;
    snapshot->bytes += len;
    return true;
}

static void build_find(const cc_snapshot_query_t *query, bson_t *cmd)
{
    BSON_APPEND_UTF8(cmd, "find", query->coll);
    if (query->filter) {
        BSON_APPEND_DOCUMENT(cmd, "filter", query->filter);
    }
    if (query->sort) {
        BSON_APPEND_DOCUMENT(cmd, "sort", query->sort);
    }
    if (query->projection) {
        BSON_APPEND_DOCUMENT(cmd, "projection", query->projection);
    }
    /* One past the cap is enough to know the answer is too large. */
    BSON_APPEND_INT64(cmd, "limit", query->limit ? query->limit : query->max_docs + 1);
}

/* Reads the reply's first batch and cluster time; the reply moves into the
 * returned cursor, which continues with getMore. */
static mongoc_cursor_t *open_cursor(mongoc_client_t *client, mongoc_client_session_t *session,
                                    uint32_t server_id, const cc_snapshot_query_t *query,
                                    cc_snapshot_t *snapshot, bson_error_t *error)
{
    bson_t cmd = BSON_INITIALIZER, opts = BSON_INITIALIZER, reply;
    build_find(query, &cmd);
    bson_t read_concern;
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "readConcern", &read_concern);
    BSON_APPEND_UTF8(&read_concern, "level", "snapshot");
    BSON_APPEND_TIMESTAMP(&read_concern, "atClusterTime", query->at_seconds, query->at_increment);
    bson_append_document_end(&opts, &read_concern);
    BSON_APPEND_INT32(&opts, "serverId", (int32_t)server_id);
    mongoc_client_session_append(session, &opts, NULL);
    mongoc_database_t *db = mongoc_client_get_database(client, query->db);
    bool ok = mongoc_database_read_command_with_opts(db, &cmd, NULL, &opts, &reply, error);
    mongoc_database_destroy(db);
    bson_destroy(&cmd);
    bson_destroy(&opts);
    bson_iter_t iter;
    if (ok && !(bson_iter_init(&iter, &reply) &&
                bson_iter_find_descendant(&iter, "cursor.atClusterTime", &iter) &&
                BSON_ITER_HOLDS_TIMESTAMP(&iter))) {
        bson_set_error(error, 0, 0,
                       "the upstream's snapshot read named no atClusterTime (live queries need "
                       "MongoDB 5.0 or later)");
        ok = false;
    }
    if (!ok) {
        bson_destroy(&reply);
        return NULL;
    }
    bson_iter_timestamp(&iter, &snapshot->seconds, &snapshot->increment);
    if (snapshot->seconds != query->at_seconds || snapshot->increment != query->at_increment) {
        bson_set_error(error, 0, 0, "the upstream read at another cluster time than asked");
        bson_destroy(&reply);
        return NULL;
    }
    bson_t cursor_opts = BSON_INITIALIZER;
    BSON_APPEND_INT32(&cursor_opts, "serverId", (int32_t)server_id);
    mongoc_client_session_append(session, &cursor_opts, NULL);
    mongoc_cursor_t *cursor =
        mongoc_cursor_new_from_command_reply_with_opts(client, &reply, &cursor_opts);
    bson_destroy(&cursor_opts);
    return cursor;
}

static void read_all(mongoc_client_t *client, cc_channel_t *channel, const cc_request_t *request,
                     cc_snapshot_t *snapshot)
{
    bson_error_t error;
    mongoc_server_description_t *primary = mongoc_client_select_server(client, false, NULL, &error);
    if (!primary) {
        fail_read(snapshot, &error);
        return;
    }
    uint32_t server_id = mongoc_server_description_id(primary);
    mongoc_server_description_destroy(primary);
    mongoc_client_session_t *session = mongoc_client_start_session(client, NULL, &error);
    if (!session) {
        fail_read(snapshot, &error);
        return;
    }
    mongoc_cursor_t *cursor =
        open_cursor(client, session, server_id, request->query, snapshot, &error);
    if (!cursor) {
        fail_read(snapshot, &error);
        mongoc_client_session_destroy(session);
        return;
    }
    const bson_t *doc;
    size_t capacity = 0;
    while (mongoc_cursor_next(cursor, &doc)) {
        if (!add_document(snapshot, request->query, doc, &capacity)) {
            break;
        }
        if (snapshot->count % 256 == 0 && cc_channel_request_cancelled(channel, request)) {
            break;
        }
    }
    if (!snapshot->error_code && mongoc_cursor_error(cursor, &error)) {
        fail_read(snapshot, &error);
    }
    mongoc_cursor_destroy(cursor);
    mongoc_client_session_destroy(session);
}

void cc_snapshot_run(mongoc_client_t *client, cc_channel_t *channel, const cc_request_t *request)
{
    cc_snapshot_t *snapshot = bson_malloc0(sizeof *snapshot);
    read_all(client, channel, request, snapshot);
    if (snapshot->error_code) {
        cc_warn("event=snapshot_refused ns=%s.%s code=%s error=\"%s\"", request->query->db,
                request->query->coll, snapshot->error_code, snapshot->error_message);
    } else {
        cc_debug("event=snapshot_read ns=%s.%s docs=%zu bytes=%zu", request->query->db,
                 request->query->coll, snapshot->count, snapshot->bytes);
    }
    cc_channel_post_snapshot(channel, request->id, snapshot);
}
