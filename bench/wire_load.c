/* SPDX-License-Identifier: Apache-2.0 */
/* The wire benchmark's load generator: C threads, each with its own
 * single-threaded mongoc_client_t (one connection), run one operation in a
 * closed loop for a fixed time and record every round trip's latency. The
 * result is one logfmt line, so bench/wire.sh can compare targets:
 *   wire_load --uri URI --clients C --op ping|insertfind --seconds S
 *             [--warmup-seconds W]
 *   ops=N seconds=S throughput=X p50_us=A p99_us=B max_us=M errors=E all_ops=T
 * (all_ops counts warm-up and connection set-up too, so that a caller can
 * divide a server's CPU time over the whole run by it.)
 * An insertfind operation is one insert_one followed by one find by _id:
 * two round trips, timed together. Percentiles are exact (nearest rank over
 * every sample), not estimated from buckets. Calls only libmongoc. */
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum { OP_PING, OP_INSERTFIND } op_kind_t;

typedef struct options {
    const char *uri;
    int clients;
    op_kind_t op;
    double seconds;
    double warmup_seconds;
} options_t;

/* One per client thread; the thread alone writes it until it is joined. */
typedef struct worker {
    int index;
    mongoc_client_t *client;
    uint64_t *latency_ns;
    size_t count;
    size_t capacity;
    uint64_t last_end_ns;
    uint64_t errors;
    uint64_t all_ops; /* warm-up and set-up included: divides the servers' CPU time */
    bson_error_t first_error;
} worker_t;

static options_t options = {.clients = 1, .op = OP_PING, .seconds = 5, .warmup_seconds = 1};

/* Set by the main thread between the two barriers, so every worker reads
 * them after the second barrier (which orders the memory) and the clock
 * starts for everybody at once, after all connections are up. */
static pthread_barrier_t connected, started;
static uint64_t measure_start_ns, measure_end_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void record_error(worker_t *worker, const bson_error_t *error)
{
    if (worker->errors++ == 0) {
        worker->first_error = *error;
    }
}

static bool run_ping(worker_t *worker, bson_error_t *error)
{
    bson_t ping = BSON_INITIALIZER;
    BSON_APPEND_INT32(&ping, "ping", 1);
    bool ok = mongoc_client_command_simple(worker->client, "admin", &ping, NULL, NULL, error);
    bson_destroy(&ping);
    return ok;
}

static bool run_insertfind(worker_t *worker, mongoc_collection_t *collection, uint64_t seq,
                           bson_error_t *error)
{
    bson_oid_t id;
    bson_oid_init(&id, NULL);
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_OID(&doc, "_id", &id);
    BSON_APPEND_INT32(&doc, "client", worker->index);
    BSON_APPEND_INT64(&doc, "seq", (int64_t)seq);
    BSON_APPEND_UTF8(&doc, "pad", "0123456789abcdef0123456789abcdef0123456789abcdef");
    bool ok = mongoc_collection_insert_one(collection, &doc, NULL, NULL, error);
    bson_destroy(&doc);
    if (!ok) {
        return false;
    }
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_OID(&filter, "_id", &id);
    bson_t find_opts = BSON_INITIALIZER;
    BSON_APPEND_INT64(&find_opts, "limit", 1);
    mongoc_cursor_t *cursor =
        mongoc_collection_find_with_opts(collection, &filter, &find_opts, NULL);
    const bson_t *found;
    while (mongoc_cursor_next(cursor, &found)) {
    }
    ok = !mongoc_cursor_error(cursor, error);
    mongoc_cursor_destroy(cursor);
    bson_destroy(&find_opts);
    bson_destroy(&filter);
    return ok;
}

static void add_sample(worker_t *worker, uint64_t latency_ns)
{
    if (worker->count == worker->capacity) {
        worker->capacity = worker->capacity ? worker->capacity * 2 : 4096;
        worker->latency_ns =
            bson_realloc(worker->latency_ns, worker->capacity * sizeof *worker->latency_ns);
    }
    worker->latency_ns[worker->count++] = latency_ns;
}

static void *worker_main(void *arg)
{
    worker_t *worker = arg;
    mongoc_collection_t *collection = mongoc_client_get_collection(worker->client, "bench", "wire");
    bson_error_t error;

    /* The first command does server discovery and opens the connection:
     * that is set-up, not load. */
    if (run_ping(worker, &error)) {
        worker->all_ops++;
    } else {
        record_error(worker, &error);
    }
    pthread_barrier_wait(&connected);
    pthread_barrier_wait(&started);

    for (uint64_t seq = 0;; seq++) {
        uint64_t begin = now_ns();
        if (begin >= measure_end_ns) {
            break;
        }
        bool ok = options.op == OP_PING ? run_ping(worker, &error)
                                        : run_insertfind(worker, collection, seq, &error);
        uint64_t end = now_ns();
        if (!ok) {
            record_error(worker, &error);
            continue;
        }
        worker->all_ops++;
        /* Operations begun during warm-up are left out entirely. */
        if (begin >= measure_start_ns) {
            add_sample(worker, end - begin);
            worker->last_end_ns = end;
        }
    }
    mongoc_collection_destroy(collection);
    return NULL;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p% of samples <= it. */
static double percentile_us(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999999);
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    return (double)sorted[rank - 1] / 1000.0;
}

static int usage(void)
{
    fprintf(stderr, "usage: wire_load --uri URI --clients C --op ping|insertfind --seconds S "
                    "[--warmup-seconds W]\n");
    return 2;
}

static bool parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value) {
            return false;
        }
        i++;
        if (strcmp(name, "--uri") == 0) {
            options.uri = value;
        } else if (strcmp(name, "--clients") == 0) {
            options.clients = atoi(value);
        } else if (strcmp(name, "--op") == 0) {
            if (strcmp(value, "ping") == 0) {
                options.op = OP_PING;
            } else if (strcmp(value, "insertfind") == 0) {
                options.op = OP_INSERTFIND;
            } else {
                return false;
            }
        } else if (strcmp(name, "--seconds") == 0) {
            options.seconds = atof(value);
        } else if (strcmp(name, "--warmup-seconds") == 0) {
            options.warmup_seconds = atof(value);
        } else {
            return false;
        }
    }
    return options.uri && options.clients >= 1 && options.clients <= 4096 && options.seconds > 0 &&
           options.warmup_seconds >= 0;
}

int main(int argc, char **argv)
{
    if (!parse_args(argc, argv)) {
        return usage();
    }
    mongoc_init();
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(options.uri, &error);
    if (!uri) {
        fprintf(stderr, "wire_load: --uri: %s\n", error.message);
        return 2;
    }
    mongoc_uri_set_appname(uri, "wire_load");

    size_t clients = (size_t)options.clients;
    worker_t *workers = bson_malloc0(clients * sizeof *workers);
    pthread_t *threads = bson_malloc0(clients * sizeof *threads);
    pthread_barrier_init(&connected, NULL, (unsigned)clients + 1);
    pthread_barrier_init(&started, NULL, (unsigned)clients + 1);
    for (size_t i = 0; i < clients; i++) {
        workers[i].index = (int)i;
        workers[i].client = mongoc_client_new_from_uri(uri);
        mongoc_client_set_error_api(workers[i].client, MONGOC_ERROR_API_VERSION_2);
        pthread_create(&threads[i], NULL, worker_main, &workers[i]);
    }
    pthread_barrier_wait(&connected);
    measure_start_ns = now_ns() + (uint64_t)(options.warmup_seconds * 1e9);
    measure_end_ns = measure_start_ns + (uint64_t)(options.seconds * 1e9);
    pthread_barrier_wait(&started);

    size_t total = 0;
    uint64_t errors = 0, all_ops = 0, last_end = measure_start_ns;
    for (size_t i = 0; i < clients; i++) {
        pthread_join(threads[i], NULL);
        total += workers[i].count;
        errors += workers[i].errors;
        all_ops += workers[i].all_ops;
        if (workers[i].last_end_ns > last_end) {
            last_end = workers[i].last_end_ns;
        }
        if (workers[i].errors) {
            fprintf(stderr, "wire_load: client=%zu errors=%llu first=\"%s\" domain=%u code=%u\n", i,
                    (unsigned long long)workers[i].errors, workers[i].first_error.message,
                    workers[i].first_error.domain, workers[i].first_error.code);
        }
    }

    uint64_t *all = bson_malloc((total ? total : 1) * sizeof *all);
    size_t at = 0;
    for (size_t i = 0; i < clients; i++) {
        memcpy(all + at, workers[i].latency_ns, workers[i].count * sizeof *all);
        at += workers[i].count;
    }
    qsort(all, total, sizeof *all, compare_u64);
    /* The window ends when the last counted operation did, not at the
     * deadline: operations begun just before it still count whole. */
    double seconds = (double)(last_end - measure_start_ns) / 1e9;
    printf("ops=%zu seconds=%.3f throughput=%.1f p50_us=%.1f p99_us=%.1f max_us=%.1f "
           "errors=%llu all_ops=%llu\n",
           total, seconds, seconds > 0 ? (double)total / seconds : 0.0,
           percentile_us(all, total, 50), percentile_us(all, total, 99),
           total ? (double)all[total - 1] / 1000.0 : 0.0, (unsigned long long)errors,
           (unsigned long long)all_ops);

    for (size_t i = 0; i < clients; i++) {
        bson_free(workers[i].latency_ns);
        mongoc_client_destroy(workers[i].client);
    }
    bson_free(all);
    bson_free(threads);
    bson_free(workers);
    pthread_barrier_destroy(&connected);
    pthread_barrier_destroy(&started);
    mongoc_uri_destroy(uri);
    mongoc_cleanup();
    return errors ? 1 : 0;
}
