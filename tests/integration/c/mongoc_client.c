/* SPDX-License-Identifier: Apache-2.0 */
/* A libmongoc application for the integration tests: runs one scenario
 * against a connection string and prints what it saw as relaxed Extended
 * JSON lines, so the Node tests can assert on real libmongoc behaviour.
 *   mongoc_client URI crud|cursor|watch|client-watch|hello */
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, const bson_error_t *error)
{
    fprintf(stderr, "mongoc_client: %s: %s (domain %u code %u)\n", what, error->message,
            error->domain, error->code);
    return 1;
}

static void print_doc(const char *label, const bson_t *doc)
{
    char *json = bson_as_relaxed_extended_json(doc, NULL);
    printf("%s %s\n", label, json);
    bson_free(json);
    fflush(stdout);
}

static int run_crud(mongoc_client_t *client)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "it_mongoc", "items");
    bson_error_t error;
    bson_t reply;
    mongoc_collection_drop(coll, NULL);
    bson_t *doc = BCON_NEW("_id", BCON_INT32(1), "name", "widget", "qty", BCON_INT32(5));
    if (!mongoc_collection_insert_one(coll, doc, NULL, &reply, &error)) {
        return fail("insert_one", &error);
    }
    print_doc("inserted", &reply);
    bson_destroy(&reply);
    bson_t *filter = BCON_NEW("_id", BCON_INT32(1));
    bson_t *update = BCON_NEW("$inc", "{", "qty", BCON_INT32(2), "}");
    if (!mongoc_collection_update_one(coll, filter, update, NULL, &reply, &error)) {
        return fail("update_one", &error);
    }
    print_doc("updated", &reply);
    bson_destroy(&reply);
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *found;
    while (mongoc_cursor_next(cursor, &found)) {
        print_doc("found", found);
    }
    if (mongoc_cursor_error(cursor, &error)) {
        return fail("find", &error);
    }
    mongoc_cursor_destroy(cursor);
    if (!mongoc_collection_delete_one(coll, filter, NULL, &reply, &error)) {
        return fail("delete_one", &error);
    }
    print_doc("deleted", &reply);
    bson_destroy(&reply);
    int64_t count = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &error);
    if (count < 0) {
        return fail("count_documents", &error);
    }
    printf("count %lld\n", (long long)count);
    bson_destroy(doc);
    bson_destroy(filter);
    bson_destroy(update);
    mongoc_collection_destroy(coll);
    return 0;
}

/* Inserts 250 documents and reads them back in batches of 40: several getMores. */
static int run_cursor(mongoc_client_t *client)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "it_mongoc", "many");
    bson_error_t error;
    mongoc_collection_drop(coll, NULL);
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, NULL);
    for (int i = 0; i < 250; i++) {
        bson_t *doc = BCON_NEW("_id", BCON_INT32(i));
        mongoc_bulk_operation_insert(bulk, doc);
        bson_destroy(doc);
    }
    bson_t reply;
    if (!mongoc_bulk_operation_execute(bulk, &reply, &error)) {
        return fail("bulk insert", &error);
    }
    bson_destroy(&reply);
    mongoc_bulk_operation_destroy(bulk);
    bson_t *opts = BCON_NEW("batchSize", BCON_INT32(40), "sort", "{", "_id", BCON_INT32(1), "}");
    bson_t empty = BSON_INITIALIZER;
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts(coll, &empty, opts, NULL);
    const bson_t *doc;
    int seen = 0, in_order = 1;
    while (mongoc_cursor_next(cursor, &doc)) {
        bson_iter_t iter;
        if (bson_iter_init_find(&iter, doc, "_id") && bson_iter_int32(&iter) != seen) {
            in_order = 0;
        }
        seen++;
    }
    if (mongoc_cursor_error(cursor, &error)) {
        return fail("cursor", &error);
    }
    printf("cursor seen=%d in_order=%d\n", seen, in_order);
    mongoc_cursor_destroy(cursor);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
    return 0;
}

static int watch_and_insert(mongoc_change_stream_t *stream, mongoc_collection_t *coll, int events)
{
    bson_error_t error;
    const bson_t *event;
    const bson_t *error_doc;
    for (int i = 0; i < events; i++) {
        bson_t *doc = BCON_NEW("n", BCON_INT32(i));
        if (!mongoc_collection_insert_one(coll, doc, NULL, NULL, &error)) {
            return fail("insert_one", &error);
        }
        bson_destroy(doc);
    }
    int seen = 0;
    int64_t deadline = bson_get_monotonic_time() + 10 * 1000 * 1000;
    while (seen < events && bson_get_monotonic_time() < deadline) {
        if (mongoc_change_stream_next(stream, &event)) {
            print_doc("event", event);
            seen++;
        } else if (mongoc_change_stream_error_document(stream, &error, &error_doc)) {
            return fail("change stream", &error);
        }
    }
    const bson_t *token = mongoc_change_stream_get_resume_token(stream);
    if (token) {
        print_doc("resume_token", token);
    }
    printf("events %d\n", seen);
    return seen == events ? 0 : 1;
}

static int run_watch(mongoc_client_t *client, bool whole_cluster)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "it_mongoc", "watched");
    bson_t pipeline = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("maxAwaitTimeMS", BCON_INT64(200));
    mongoc_change_stream_t *stream = whole_cluster ? mongoc_client_watch(client, &pipeline, opts)
                                                   : mongoc_collection_watch(coll, &pipeline, opts);
    bson_error_t error;
    const bson_t *error_doc;
    if (mongoc_change_stream_error_document(stream, &error, &error_doc)) {
        return fail("watch", &error);
    }
    int rc = watch_and_insert(stream, coll, 3);
    mongoc_change_stream_destroy(stream);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
    return rc;
}

static int run_hello(mongoc_client_t *client)
{
    bson_t *command = BCON_NEW("hello", BCON_INT32(1));
    bson_t reply;
    bson_error_t error;
    if (!mongoc_client_command_simple(client, "admin", command, NULL, &reply, &error)) {
        return fail("hello", &error);
    }
    print_doc("hello", &reply);
    bson_destroy(&reply);
    bson_destroy(command);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mongoc_client URI crud|cursor|watch|client-watch|hello\n");
        return 2;
    }
    mongoc_init();
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(argv[1], &error);
    if (!uri) {
        return fail("uri", &error);
    }
    mongoc_client_t *client = mongoc_client_new_from_uri_with_error(uri, &error);
    if (!client) {
        return fail("client", &error);
    }
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_set_appname(client, "it-mongoc");
    const char *scenario = argv[2];
    int rc;
    if (strcmp(scenario, "crud") == 0) {
        rc = run_crud(client);
    } else if (strcmp(scenario, "cursor") == 0) {
        rc = run_cursor(client);
    } else if (strcmp(scenario, "watch") == 0) {
        rc = run_watch(client, false);
    } else if (strcmp(scenario, "client-watch") == 0) {
        rc = run_watch(client, true);
    } else if (strcmp(scenario, "hello") == 0) {
        rc = run_hello(client);
    } else {
        fprintf(stderr, "mongoc_client: unknown scenario %s\n", scenario);
        rc = 2;
    }
    mongoc_client_destroy(client);
    mongoc_uri_destroy(uri);
    mongoc_cleanup();
    return rc;
}
