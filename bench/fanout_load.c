/* SPDX-License-Identifier: Apache-2.0 */
/* The push benchmarks' load generator (bench/fanout.sh): many SSE or
 * WebSocket subscribers in one epoll loop, and publisher threads that make
 * events at a fixed rate, either by inserting documents through a MongoDB
 * wire port (changecast, or the stand-in under a Node watch() server) or by
 * HTTP POST (nchan, the Node broadcast servers). Every event carries its
 * sequence number and its write time (`bench_seq`, `bench_ts`: wall clock in
 * microseconds), so a subscriber needs nothing but the bytes it reads to
 * time a delivery; all processes share one machine and one clock.
 *
 *   fanout_load --mode fanout --proto sse|ws --url http://127.0.0.1:P/PATH
 *       [--ws-protocol NAME] [--ws-subscribe JSON]
 *       --subscribers S [--source-ips N]
 *       --publish-mongo URI | --publish-http http://127.0.0.1:P/PATH
 *       --rate R --seconds D [--warmup-seconds W] [--drain-seconds X]
 *       [--publishers P] [--pad BYTES | --doc-bytes BYTES] [--compress]
 *       [--server-pids PID,PID...]
 *   --doc-bytes (at most 16384): documents shaped like an order (a customer, line items
 *       with repeated field names) of about BYTES as JSON, instead of `pad`.
 *   --compress: subscribers ask for compression (SSE Accept-Encoding gzip,
 *       WebSocket permessage-deflate) and inflate what comes (one zlib
 *       stream per connection, reset per message when the server said
 *       server_no_context_takeover); bytes_per_delivery counts what the
 *       sockets carried.
 *   --inflate-every N (with --compress): only every Nth subscriber
 *       inflates and parses what it gets (latency, sequence, drops come
 *       from those); the others count deliveries without inflating (a
 *       WebSocket message with RSV1, a gzip event's sync-flush marker
 *       00 00 ff ff), so the load generator's own inflating does not
 *       become what limits the run.
 *   --mode idle [--idle-cpu-seconds T]: connect S subscribers, report the
 *       server's RSS per subscriber, and its CPU per second over T idle
 *       seconds (heartbeats only).
 *   --mode catchup --events N: one subscriber sees a marker event, N events
 *       are inserted, then a second subscriber resumes after the marker
 *       (Last-Event-ID, or "after" in --ws-subscribe); time and the server's
 *       peak RSS while it replays the N events.
 *   --mode hostile --stalled N --stalled-sse-path P --stalled-ws-path P
 *       [--stalled-seconds T] [--after-seconds A]: S subscribers read while
 *       events flow; after the baseline window (--seconds) N more connections
 *       (half SSE, half WebSocket, 100 per source address 127.0.1.x) subscribe
 *       and never read for T seconds; the readers' latency in both windows,
 *       their losses, and the server's RSS before, at its peak and A seconds
 *       after the window.
 *
 * Output: one logfmt line (see print_* below). Latency is taken when recv()
 * returns, for deliveries that arrive inside the measured window; its
 * histogram has 1 us buckets to 100 ms and 100 us buckets beyond. CPU comes
 * from /proc/PID/task/X/schedstat (nanoseconds, every thread), RSS from
 * /proc/PID/status. Subscribers are closed with RST (SO_LINGER 0) and bound
 * to 20 source addresses 127.0.0.2-21 (changecast takes at most
 * push.max_connections_per_ip, 1,000 by default, from one), so that runs of 10,000 connections
 * do not run out of ephemeral ports. Linux only; calls libmongoc and libc. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mongoc/mongoc.h>
#include <zlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef enum { MODE_FANOUT, MODE_IDLE, MODE_CATCHUP, MODE_HOSTILE } run_mode_t;
typedef enum { PROTO_SSE, PROTO_WS } proto_t;
typedef enum { PUB_NONE, PUB_MONGO, PUB_HTTP } pub_kind_t;
typedef enum { C_FREE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED } conn_state_t;

typedef struct http_target {
    char host[64];
    int port;
    char path[1024];
} http_target_t;

typedef struct options {
    run_mode_t mode;
    proto_t proto;
    http_target_t sub;
    const char *ws_protocol;
    const char *ws_subscribe;
    int subscribers;
    int source_ips;
    pub_kind_t pub;
    const char *mongo_uri;
    http_target_t pub_http;
    double rate;
    double seconds;
    double warmup;
    double drain;
    int publishers;
    int pad;
    int doc_bytes; /* 0: pad */
    bool compress;
    int inflate_every;
    int events;  /* catchup */
    int stalled; /* hostile: connections that subscribe and never read */
    double stalled_seconds, after_seconds;
    double idle_cpu_seconds; /* idle: server CPU measured this long once all are connected */
    const char *stalled_sse_path, *stalled_ws_path;
    pid_t server_pids[16];
    int nserver_pids;
} options_t;

static options_t opt = {.mode = MODE_FANOUT,
                        .subscribers = 1,
                        .source_ips = 20,
                        .rate = 100,
                        .seconds = 5,
                        .warmup = 1,
                        .drain = 3,
                        .publishers = 4,
                        .pad = 64,
                        .events = 100000,
                        .stalled_seconds = 45,
                        .after_seconds = 5};

typedef struct conn {
    int fd;
    conn_state_t state;
    bool ready;
    bool chunked;
    uint8_t chunk_state; /* 0 size line, 1 data, 2 CRLF after data, 3 chunk extension */
    size_t chunk_left;
    char *buf; /* bytes of an incomplete header, event or frame */
    size_t len, cap;
    uint64_t window_received; /* deliveries of events published in the window */
    int64_t max_seq;
    z_stream *inflater; /* --compress, once the server agreed (sampled connections) */
    bool counts_only;   /* compressed and not sampled: deliveries counted, not parsed */
    uint32_t tail;      /* counts_only gzip: the last bytes seen, for markers across reads */
    bool gzip;          /* SSE: Content-Encoding gzip */
    bool pmd_reset;     /* WebSocket: server_no_context_takeover */
} conn_t;

static conn_t *conns;
static int nconns;
static int epfd;
static int inflight;
static uint64_t disconnects, connect_failures, bad_responses;
static char first_error[256];

/* Publisher schedule, shared with the publisher threads. */
static atomic_long next_seq;
static atomic_long published;
static atomic_long publish_errors;
static atomic_long skipped; /* events due after the schedule's end, never sent */
static uint64_t publish_end_ns;
static atomic_int publishers_done;
static long total_events;
static long window_first_seq, window_last_seq;
static uint64_t t0_mono_ns;
static char publish_error[256];
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;

/* Measurement (main thread only). */
static bool in_window;
static uint64_t window_deliveries, window_bytes, all_deliveries;
static uint64_t hist_fine[100000];   /* 1 us buckets, 0..100 ms */
static uint64_t hist_coarse[100000]; /* 100 us buckets, 100 ms..10 s */
static uint64_t hist_over;
static uint64_t lat_max_us;
static char catchup_token[512];

static uint64_t now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t now_real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "fanout_load: %s\n", what);
    exit(1);
}

static void set_first_error(const char *msg)
{
    if (!first_error[0]) {
        snprintf(first_error, sizeof first_error, "%.255s", msg);
    }
}

/* --- the servers' CPU and memory, from /proc --------------------------- */

static double server_cpu_s(void)
{
    double total = 0;
    for (int i = 0; i < opt.nserver_pids; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", (int)opt.server_pids[i]);
        DIR *dir = opendir(path);
        if (!dir) {
            continue;
        }
        struct dirent *entry;
        while ((entry = readdir(dir))) {
            if (entry->d_name[0] == '.') {
                continue;
            }
            char file[128];
            snprintf(file, sizeof file, "%s/%.20s/schedstat", path, entry->d_name);
            FILE *f = fopen(file, "r");
            unsigned long long ns = 0;
            if (f) {
                if (fscanf(f, "%llu", &ns) == 1) {
                    total += (double)ns / 1e9;
                }
                fclose(f);
            }
        }
        closedir(dir);
    }
    return total;
}

static long server_status_kib(const char *field)
{
    long total = 0;
    size_t flen = strlen(field);
    for (int i = 0; i < opt.nserver_pids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int)opt.server_pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) {
            continue;
        }
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
                total += strtol(line + flen + 1, NULL, 10);
            }
        }
        fclose(f);
    }
    return total;
}

/* Resets VmHWM, so that it reports the peak of what follows (proc(5)). */
static void server_reset_peak(void)
{
    for (int i = 0; i < opt.nserver_pids; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)opt.server_pids[i]);
        FILE *f = fopen(path, "w");
        if (f) {
            fputs("5", f);
            fclose(f);
        }
    }
}

/* --- events ------------------------------------------------------------- */

/* The number after KEY in JSON text (`"key" : 12`, `"key":12.0`,
 * `"key" : {"$numberLong": "12"}`), or false. */
static bool find_number(const char *p, size_t n, const char *key, int64_t *out)
{
    const char *k = memmem(p, n, key, strlen(key));
    if (!k) {
        return false;
    }
    const char *end = p + n;
    const char *q = k + strlen(key);
    int gap = 0;
    while (q < end && !(*q >= '0' && *q <= '9') && *q != '-' && gap++ < 24) {
        q++;
    }
    bool negative = false;
    if (q < end && *q == '-') {
        negative = true;
        q++;
    }
    if (q >= end || !(*q >= '0' && *q <= '9')) {
        return false;
    }
    int64_t v = 0;
    while (q < end && *q >= '0' && *q <= '9') {
        v = v * 10 + (*q - '0');
        q++;
    }
    *out = negative ? -v : v;
    return true;
}

static void record_latency(int64_t us)
{
    if (us < 0) {
        us = 0;
    }
    if ((uint64_t)us > lat_max_us) {
        lat_max_us = (uint64_t)us;
    }
    if (us < 100000) {
        hist_fine[us]++;
    } else if (us < 10000000) {
        hist_coarse[(us - 100000) / 100]++;
    } else {
        hist_over++;
    }
}

static double percentile_ms(double q)
{
    uint64_t total = window_deliveries;
    if (total == 0) {
        return 0;
    }
    uint64_t rank = (uint64_t)((double)total * q + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < 100000; i++) {
        seen += hist_fine[i];
        if (seen >= rank) {
            return (double)i / 1000.0;
        }
    }
    for (size_t i = 0; i < 100000; i++) {
        seen += hist_coarse[i];
        if (seen >= rank) {
            return (100000.0 + (double)i * 100.0) / 1000.0;
        }
    }
    return (double)lat_max_us / 1000.0;
}

/* One message (an SSE event or a WebSocket text frame) arrived at ARRIVAL. */
/* A delivery seen by a connection that does not parse (counts_only). */
static void count_delivery(void)
{
    all_deliveries++;
    if (in_window) {
        window_deliveries++;
    }
}

static void on_message(conn_t *c, const char *p, size_t n, int64_t arrival_us)
{
    int64_t seq, ts;
    if (!find_number(p, n, "\"bench_seq\"", &seq) || !find_number(p, n, "\"bench_ts\"", &ts)) {
        return; /* subscribed, watermark, heartbeat, retry: not a delivery */
    }
    all_deliveries++;
    if (seq > c->max_seq) {
        c->max_seq = seq;
    }
    if (seq >= window_first_seq && seq <= window_last_seq) {
        c->window_received++;
    }
    if (in_window) {
        window_deliveries++;
        record_latency(arrival_us - ts);
    }
    if (opt.mode == MODE_CATCHUP && seq == 0 && !catchup_token[0]) {
        const char *k = memmem(p, n, "\"_data\"", 7);
        if (k) {
            const char *q = memchr(k + 7, '"', (size_t)(p + n - k - 7));
            if (q) {
                const char *e = memchr(q + 1, '"', (size_t)(p + n - q - 1));
                if (e && (size_t)(e - q - 1) < sizeof catchup_token) {
                    memcpy(catchup_token, q + 1, (size_t)(e - q - 1));
                    catchup_token[e - q - 1] = '\0';
                }
            }
        }
    }
}

/* --- subscriber connections --------------------------------------------- */

static void conn_close(conn_t *c, bool counted)
{
    if (c->state == C_FREE || c->state == C_CLOSED) {
        return;
    }
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
        inflight--;
    }
    if (counted && c->state == C_OPEN) {
        disconnects++;
    }
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c->fd);
    c->fd = -1;
    c->state = C_CLOSED;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    if (c->inflater) {
        inflateEnd(c->inflater);
        free(c->inflater);
        c->inflater = NULL;
    }
}

/* --- compression (--compress) ---------------------------------------------- */

static char *zbuf;
static size_t zcap;

/* Inflates n bytes (and, for a WebSocket message, the 00 00 ff ff tail its
 * sender left off) with the connection's stream; the text in zbuf. */
static bool inflate_into_zbuf(conn_t *c, const char *p, size_t n, bool ws_message, size_t *out)
{
    static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
    z_stream *z = c->inflater;
    if (ws_message && c->pmd_reset) {
        inflateReset(z);
    }
    size_t have = 0;
    for (int part = 0; part < (ws_message ? 2 : 1); part++) {
        z->next_in = (Bytef *)(part ? tail : (const unsigned char *)p);
        z->avail_in = (uInt)(part ? 4 : n);
        while (z->avail_in > 0) {
            if (zcap - have < 65536) {
                zcap = zcap ? zcap * 2 : 1 << 20;
                zbuf = realloc(zbuf, zcap);
                if (!zbuf) {
                    die("out of memory");
                }
            }
            z->next_out = (Bytef *)zbuf + have;
            z->avail_out = (uInt)(zcap - have);
            int rc = inflate(z, Z_SYNC_FLUSH);
            have = zcap - z->avail_out;
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                set_first_error("a compressed message does not inflate");
                return false;
            }
            if (rc == Z_BUF_ERROR && z->avail_out != 0) {
                break;
            }
        }
    }
    *out = have;
    return true;
}

static void conn_keep(conn_t *c, const char *p, size_t n)
{
    if (n == 0) {
        c->len = 0;
        return;
    }
    if (c->cap < n) {
        size_t cap = n < 4096 ? 4096 : n * 2;
        char *b = malloc(cap);
        if (!b) {
            die("out of memory");
        }
        c->buf = b;
        c->cap = cap;
    }
    memmove(c->buf, p, n);
    c->len = n;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* A client frame: FIN, the opcode, masked (RFC 6455 5.3; the mask may be
 * zero, which leaves the payload as it is). */
static bool ws_send(conn_t *c, int opcode, const char *payload, size_t n)
{
    char frame[16 + 4096];
    size_t h = 0;
    if (n > 4096) {
        return false;
    }
    frame[h++] = (char)(0x80 | opcode);
    if (n < 126) {
        frame[h++] = (char)(0x80 | n);
    } else {
        frame[h++] = (char)(0x80 | 126);
        frame[h++] = (char)((n >> 8) & 0xff);
        frame[h++] = (char)(n & 0xff);
    }
    memset(frame + h, 0, 4);
    h += 4;
    memcpy(frame + h, payload, n);
    return send_all(c->fd, frame, h + n);
}

static void send_request(conn_t *c)
{
    char req[4096];
    int n;
    if (opt.proto == PROTO_SSE) {
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n%s%s%s%s\r\n",
                     opt.sub.path, opt.sub.host, opt.sub.port,
                     opt.compress ? "Accept-Encoding: gzip\r\n" : "",
                     opt.mode == MODE_CATCHUP && catchup_token[0] ? "Last-Event-ID: " : "",
                     opt.mode == MODE_CATCHUP && catchup_token[0] ? catchup_token : "",
                     opt.mode == MODE_CATCHUP && catchup_token[0] ? "\r\n" : "");
    } else {
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s%s%s\r\n",
                     opt.sub.path, opt.sub.host, opt.sub.port,
                     opt.compress ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                    "client_max_window_bits\r\n"
                                  : "",
                     opt.ws_protocol ? "Sec-WebSocket-Protocol: " : "",
                     opt.ws_protocol ? opt.ws_protocol : "", opt.ws_protocol ? "\r\n" : "");
    }
    if (n <= 0 || (size_t)n >= sizeof req || !send_all(c->fd, req, (size_t)n)) {
        set_first_error("cannot send the subscribe request");
        conn_close(c, false);
        connect_failures++;
    }
}

static void conn_open(int index)
{
    conn_t *c = &conns[index];
    memset(c, 0, sizeof *c);
    c->max_seq = -1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        set_first_error(strerror(errno));
        connect_failures++;
        c->state = C_CLOSED;
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(index % opt.source_ips));
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
        set_first_error(strerror(errno));
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.sub.port)};
    dst.sin_addr.s_addr = htonl(0x7f000001u);
    c->state = C_CONNECTING;
    inflight++;
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
        set_first_error(strerror(errno));
        conn_close(c, false);
        connect_failures++;
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)index};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Removes HTTP/1.1 chunked framing in place; returns the data length. */
static size_t dechunk(conn_t *c, char *p, size_t n)
{
    size_t out = 0, i = 0;
    while (i < n) {
        if (c->chunk_state == 1) {
            size_t take = n - i < c->chunk_left ? n - i : c->chunk_left;
            memmove(p + out, p + i, take);
            out += take;
            i += take;
            c->chunk_left -= take;
            if (c->chunk_left == 0) {
                c->chunk_state = 2;
            }
        } else if (c->chunk_state == 2) { /* \r\n after the data */
            if (p[i++] == '\n') {
                c->chunk_state = 0;
            }
        } else { /* size line: hex digits, then ";extensions" (state 3), then \r\n */
            char ch = p[i++];
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (ch == '\n') {
                c->chunk_state = c->chunk_left == 0 ? 2 : 1; /* size 0: trailers end it */
            } else if (d >= 0 && c->chunk_state == 0) {
                c->chunk_left = c->chunk_left * 16 + (size_t)d;
            } else if (ch == ';') {
                c->chunk_state = 3;
            }
        }
    }
    return out;
}

/* SSE events end with an empty line. */
static size_t sse_consume(conn_t *c, const char *p, size_t n, int64_t arrival)
{
    size_t start = 0;
    for (;;) {
        const char *e = memmem(p + start, n - start, "\n\n", 2);
        if (!e) {
            break;
        }
        on_message(c, p + start, (size_t)(e - (p + start)), arrival);
        start = (size_t)(e - p) + 2;
    }
    return start;
}

static size_t ws_consume(conn_t *c, const char *p, size_t n, int64_t arrival)
{
    size_t start = 0;
    while (n - start >= 2) {
        const unsigned char *h = (const unsigned char *)p + start;
        int opcode = h[0] & 0x0f;
        bool masked = (h[1] & 0x80) != 0;
        uint64_t len = h[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (n - start < 4) {
                break;
            }
            len = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (len == 127) {
            if (n - start < 10) {
                break;
            }
            len = 0;
            for (int i = 0; i < 8; i++) {
                len = (len << 8) | h[2 + i];
            }
            hl = 10;
        }
        if (masked) {
            hl += 4;
        }
        if ((uint64_t)(n - start) < hl + len) {
            break;
        }
        const char *payload = p + start + hl;
        if (opcode == 0x1 || opcode == 0x0) {
            if (!c->ready) {
                c->ready = true; /* the answer to our subscribe message */
            }
            size_t inflated;
            if ((h[0] & 0x40) && c->counts_only) {
                count_delivery();
            } else if ((h[0] & 0x40) && c->inflater) {
                if (!inflate_into_zbuf(c, payload, (size_t)len, true, &inflated)) {
                    conn_close(c, true);
                    return n;
                }
                on_message(c, zbuf, inflated, arrival);
            } else {
                on_message(c, payload, (size_t)len, arrival);
            }
        } else if (opcode == 0x9) {
            ws_send(c, 0xA, payload, (size_t)len);
        } else if (opcode == 0x8) {
            conn_close(c, true);
            return n;
        }
        start += hl + (size_t)len;
    }
    return start;
}

static void on_body(conn_t *c, char *p, size_t n, int64_t arrival)
{
    if (c->chunked) {
        n = dechunk(c, p, n);
    }
    if (c->gzip && c->counts_only) {
        /* Each compressed event ends in a sync flush: 00 00 ff ff. */
        for (size_t i = 0; i < n; i++) {
            c->tail = c->tail << 8 | (uint8_t)p[i];
            if (c->tail == 0x0000ffffu) {
                count_delivery();
            }
        }
        return;
    }
    if (c->gzip) {
        size_t inflated;
        if (!inflate_into_zbuf(c, p, n, false, &inflated)) {
            conn_close(c, true);
            return;
        }
        p = zbuf;
        n = inflated;
    }
    const char *data = p;
    size_t len = n;
    if (c->len > 0) { /* an incomplete message waits: append */
        if (c->len + n > c->cap) {
            size_t cap = (c->len + n) * 2;
            char *b = realloc(c->buf, cap);
            if (!b) {
                die("out of memory");
            }
            c->buf = b;
            c->cap = cap;
        }
        memcpy(c->buf + c->len, p, n);
        c->len += n;
        data = c->buf;
        len = c->len;
    }
    size_t used = opt.proto == PROTO_SSE ? sse_consume(c, data, len, arrival)
                                         : ws_consume(c, data, len, arrival);
    if (c->state != C_OPEN) {
        return;
    }
    conn_keep(c, data + used, len - used);
}

static bool header_has(const char *h, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++) {
        if (strncasecmp(h + i, needle, k) == 0) {
            return true;
        }
    }
    return false;
}

static void on_handshake(conn_t *c, char *p, size_t n, int64_t arrival)
{
    /* Headers are small and rare: they always go through buf. */
    if (c->len + n > c->cap) {
        size_t cap = (c->len + n) * 2;
        char *b = realloc(c->buf, cap);
        if (!b) {
            die("out of memory");
        }
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) {
        return;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    const char *want = opt.proto == PROTO_SSE ? " 200" : " 101";
    if (c->len < 12 || memcmp(c->buf + 8, want, 4) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "unexpected response: %.120s", c->buf);
        for (char *q = msg; *q; q++) {
            if (*q == '\r' || *q == '\n') {
                *q = ' ';
            }
        }
        set_first_error(msg);
        bad_responses++;
        conn_close(c, false);
        return;
    }
    c->chunked = header_has(c->buf, hlen, "transfer-encoding: chunked");
    bool gzip = opt.proto == PROTO_SSE && header_has(c->buf, hlen, "content-encoding: gzip");
    bool pmd = opt.proto == PROTO_WS && header_has(c->buf, hlen, "permessage-deflate");
    if ((gzip || pmd) && (c - conns) % (opt.inflate_every > 0 ? opt.inflate_every : 1) != 0) {
        c->counts_only = true;
        c->gzip = gzip;
        c->tail = 0xffffffffu;
    } else if (gzip || pmd) {
        c->inflater = calloc(1, sizeof *c->inflater);
        if (!c->inflater || inflateInit2(c->inflater, gzip ? 16 + MAX_WBITS : -MAX_WBITS) != Z_OK) {
            die("cannot set up zlib");
        }
        c->gzip = gzip;
        c->pmd_reset = pmd && header_has(c->buf, hlen, "server_no_context_takeover");
    }
    c->state = C_OPEN;
    inflight--;
    if (opt.proto == PROTO_WS && opt.ws_subscribe) {
        char sub[2048];
        const char *msg = opt.ws_subscribe;
        if (opt.mode == MODE_CATCHUP && catchup_token[0]) {
            /* {"type":"subscribe",...} + "after": token */
            size_t l = strlen(opt.ws_subscribe);
            snprintf(sub, sizeof sub, "%.*s,\"after\":\"%s\"}", (int)(l - 1), opt.ws_subscribe,
                     catchup_token);
            msg = sub;
        }
        if (!ws_send(c, 0x1, msg, strlen(msg))) {
            conn_close(c, true);
            return;
        }
    } else {
        c->ready = true;
    }
    size_t rest = c->len - hlen;
    c->len = 0;
    if (rest > 0) { /* the body's first bytes came with the headers */
        char *tmp = malloc(rest);
        if (!tmp) {
            die("out of memory");
        }
        memcpy(tmp, c->buf + hlen, rest);
        on_body(c, tmp, rest, arrival);
        free(tmp);
    }
}

static char rbuf[1 << 18];

static void on_event(conn_t *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        if (events & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            set_first_error(err ? strerror(err) : "connect failed");
            conn_close(c, false);
            connect_failures++;
            return;
        }
        if (events & EPOLLOUT) {
            c->state = C_HANDSHAKE;
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - conns)};
            epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
            send_request(c);
        }
        return;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        return;
    }
    ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        if (c->state == C_HANDSHAKE) {
            connect_failures++;
            set_first_error(r == 0 ? "closed before the response" : strerror(errno));
        }
        conn_close(c, true);
        return;
    }
    int64_t arrival = now_real_us();
    if (c->state == C_HANDSHAKE) {
        on_handshake(c, rbuf, (size_t)r, arrival);
    } else if (c->state == C_OPEN) {
        if (in_window) {
            window_bytes += (uint64_t)r;
        }
        on_body(c, rbuf, (size_t)r, arrival);
    }
}

/* Runs the loop for up to MS milliseconds, opening connections [from, to)
 * while fewer than the in-flight bound are being set up. */
static int next_to_open, open_limit;

static void poll_once(int ms)
{
    while (next_to_open < open_limit && inflight < 200) {
        conn_open(next_to_open++);
    }
    struct epoll_event evs[1024];
    int n = epoll_wait(epfd, evs, 1024, ms);
    for (int i = 0; i < n; i++) {
        on_event(&conns[evs[i].data.u32], evs[i].events);
    }
}

static int count_ready(void)
{
    int ready = 0;
    for (int i = 0; i < next_to_open; i++) {
        ready += conns[i].state == C_OPEN && conns[i].ready;
    }
    return ready;
}

/* Opens connections up to LIMIT and waits until each is ready or failed. */
static int connect_until(int limit, double timeout_s)
{
    open_limit = limit;
    uint64_t deadline = now_mono_ns() + (uint64_t)(timeout_s * 1e9);
    int ready = 0;
    while (now_mono_ns() < deadline) {
        poll_once(10);
        ready = count_ready();
        int settled = 0;
        for (int i = 0; i < next_to_open; i++) {
            settled += conns[i].state == C_CLOSED || (conns[i].state == C_OPEN && conns[i].ready);
        }
        if (next_to_open == limit && settled == limit) {
            break;
        }
    }
    return ready;
}

static void run_for(double seconds)
{
    uint64_t end = now_mono_ns() + (uint64_t)(seconds * 1e9);
    while (now_mono_ns() < end) {
        poll_once(10);
    }
}

/* --- publishers ----------------------------------------------------------- */

static void publish_failed(const char *msg)
{
    atomic_fetch_add(&publish_errors, 1);
    pthread_mutex_lock(&error_lock);
    if (!publish_error[0]) {
        snprintf(publish_error, sizeof publish_error, "%.255s", msg);
    }
    pthread_mutex_unlock(&error_lock);
}

static char pad_text[4096];
/* --doc-bytes: an order's customer and line items, about that many bytes
 * of JSON, different for every event (customer, SKUs, quantities, prices
 * follow the sequence number) but with the same field names, as a stream
 * of real orders is: a compressor that keeps its window between messages
 * gains from the names, not from events repeating each other. */
#define MAX_DOC_BYTES 16384

static size_t order_text(long seq, char *out, size_t cap)
{
    static const char *const names[] = {"Blue widget, large", "Red gadget",    "Steel bolt M8",
                                        "Oak shelf 80 cm",    "LED strip 5 m", "Copper pipe 15 mm",
                                        "Garden hose 25 m"};
    static const char *const customers[] = {"Ann Example", "Bo Tester", "Cy Sample",
                                            "Di Placeholder", "Ed Mock"};
    uint64_t x = (uint64_t)seq * 0x9E3779B97F4A7C15ull + 1;
    size_t len =
        (size_t)snprintf(out, cap,
                         "\"customer\":{\"name\":\"%s\",\"email\":\"c%ld@example.com\","
                         "\"tier\":\"%s\"},\"status\":\"paid\",\"currency\":\"EUR\",\"lines\":[",
                         customers[seq % 5], seq % 100000, seq % 3 ? "silver" : "gold");
    for (int i = 0; len + 200 < (size_t)opt.doc_bytes || i == 0; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        len +=
            (size_t)snprintf(out + len, cap - len,
                             "%s{\"sku\":\"SKU-%05u\",\"name\":\"%s\",\"qty\":%u,\"price\":%u.%02u,"
                             "\"warehouse\":\"DE-%u\"}",
                             i ? "," : "", (unsigned)(x % 90000) + 10000, names[(x >> 20) % 7],
                             1 + (unsigned)((x >> 30) % 9), 1 + (unsigned)((x >> 34) % 400),
                             (unsigned)((x >> 42) % 100), 1 + (unsigned)((x >> 50) % 5));
    }
    len += (size_t)snprintf(out + len, cap - len, "]");
    return len;
}

static bson_t *make_doc(long seq)
{
    bson_t *doc = bson_new();
    BSON_APPEND_INT64(doc, "bench_seq", seq);
    BSON_APPEND_INT64(doc, "bench_ts", now_real_us());
    if (opt.doc_bytes) {
        size_t cap = (size_t)opt.doc_bytes + 1024;
        char *text = malloc(cap + 2);
        size_t len = order_text(seq, text + 1, cap);
        text[0] = '{';
        text[len + 1] = '}';
        bson_t fields;
        bson_error_t error;
        if (!bson_init_from_json(&fields, text, (ssize_t)len + 2, &error)) {
            die(error.message);
        }
        bson_concat(doc, &fields);
        bson_destroy(&fields);
        free(text);
    } else {
        BSON_APPEND_UTF8(doc, "pad", pad_text);
    }
    return doc;
}

/* The HTTP publishers send what a change event of the same document looks
 * like on changecast's SSE stream (compact relaxed Extended JSON, a token of
 * the same length), so every peer carries the same bytes. */
static int make_event_json(char *out, size_t cap, long seq)
{
    int64_t ts = now_real_us();
    long secs = (long)(ts / 1000000);
    char oid[25];
    snprintf(oid, sizeof oid, "%08lx%016lx", (unsigned long)secs, (unsigned long)seq);
    char token[183];
    memset(token, 'A', sizeof token - 1);
    token[sizeof token - 1] = '\0';
    char head[40];
    int hl = snprintf(head, sizeof head, "82%08lX%016lX", (unsigned long)secs, (unsigned long)seq);
    memcpy(token, head, (size_t)hl);
    char fields[MAX_DOC_BYTES + 1024];
    if (opt.doc_bytes) {
        order_text(seq, fields, sizeof fields);
    } else {
        snprintf(fields, sizeof fields, "\"pad\":\"%s\"", pad_text);
    }
    return snprintf(out, cap,
                    "{\"_id\":{\"_data\":\"%s\"},\"operationType\":\"insert\","
                    "\"clusterTime\":{\"$timestamp\":{\"t\":%ld,\"i\":1}},"
                    "\"wallTime\":{\"$date\":\"2026-11-26T03:13:15.953Z\"},"
                    "\"fullDocument\":{\"_id\":{\"$oid\":\"%s\"},\"bench_seq\":%ld,"
                    "\"bench_ts\":%lld,%s},\"ns\":{\"db\":\"bench\","
                    "\"coll\":\"events\"},\"documentKey\":{\"_id\":{\"$oid\":\"%s\"}}}",
                    token, secs, oid, seq, (long long)ts, fields, oid);
}

static int http_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in dst = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)opt.pub_http.port)};
    dst.sin_addr.s_addr = htonl(0x7f000001u);
    if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* One POST on a keep-alive connection; reads the whole response. */
static bool http_post(int *fd, const char *body, size_t n)
{
    if (*fd < 0 && (*fd = http_connect()) < 0) {
        publish_failed("cannot connect to the publish endpoint");
        return false;
    }
    char req[65536];
    int hl = snprintf(req, sizeof req,
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      opt.pub_http.path, opt.pub_http.host, opt.pub_http.port, n);
    if (hl <= 0 || (size_t)hl + n > sizeof req) {
        publish_failed("event too large");
        return false;
    }
    memcpy(req + hl, body, n);
    if (!send_all(*fd, req, (size_t)hl + n)) {
        close(*fd);
        *fd = -1;
        publish_failed("publish send failed");
        return false;
    }
    char resp[8192];
    size_t have = 0;
    char *hend = NULL;
    while (!(hend = memmem(resp, have, "\r\n\r\n", 4))) {
        ssize_t r = recv(*fd, resp + have, sizeof resp - have - 1, 0);
        if (r <= 0) {
            close(*fd);
            *fd = -1;
            publish_failed("publish response cut");
            return false;
        }
        have += (size_t)r;
    }
    resp[have] = '\0';
    size_t head = (size_t)(hend - resp) + 4;
    bool ok = have > 12 && resp[9] == '2';
    bool chunked = header_has(resp, head, "transfer-encoding: chunked");
    bool closing = header_has(resp, head, "connection: close");
    size_t want = 0;
    char *cl = NULL;
    for (size_t i = 0; i + 15 < head; i++) {
        if (strncasecmp(resp + i, "content-length:", 15) == 0) {
            cl = resp + i + 15;
            break;
        }
    }
    if (cl) {
        want = (size_t)strtoul(cl, NULL, 10);
    }
    for (;;) {
        size_t body_have = have - head;
        if (chunked ? memmem(resp + head, body_have, "0\r\n\r\n", 5) != NULL : body_have >= want) {
            break;
        }
        if (have >= sizeof resp - 1) {
            memmove(resp + head, resp + have - 8, 8); /* only the end matters */
            have = head + 8;
        }
        ssize_t r = recv(*fd, resp + have, sizeof resp - have - 1, 0);
        if (r <= 0) {
            closing = true;
            break;
        }
        have += (size_t)r;
    }
    if (closing) {
        close(*fd);
        *fd = -1;
    }
    if (!ok) {
        char msg[160];
        snprintf(msg, sizeof msg, "publish answered %.40s", resp);
        for (char *q = msg; *q; q++) {
            if (*q == '\r' || *q == '\n') {
                *q = ' ';
            }
        }
        publish_failed(msg);
    }
    return ok;
}

static void sleep_until_mono(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000u), .tv_nsec = (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Event i is due at t0 + i/R; threads take the next due event in turn. */
static void *publisher_main(void *arg)
{
    (void)arg;
    mongoc_client_t *client = NULL;
    mongoc_collection_t *coll = NULL;
    int fd = -1;
    if (opt.pub == PUB_MONGO) {
        client = mongoc_client_new(opt.mongo_uri);
        if (!client) {
            publish_failed("bad --publish-mongo URI");
            atomic_fetch_add(&publishers_done, 1);
            return NULL;
        }
        coll = mongoc_client_get_collection(client, "bench", "events");
    }
    char body[32768];
    for (;;) {
        long seq = atomic_fetch_add(&next_seq, 1);
        if (seq >= total_events || atomic_load(&publish_errors) > 100) {
            break;
        }
        /* A server too busy to take events at the rate (nchan and the Node
         * servers answer POSTs on the loop that fans out) gets no more once
         * the schedule is over: what it missed is not made up later. */
        if (now_mono_ns() > publish_end_ns) {
            atomic_fetch_add(&skipped, 1);
            continue;
        }
        sleep_until_mono(t0_mono_ns + (uint64_t)((double)seq * 1e9 / opt.rate));
        bool ok;
        if (opt.pub == PUB_MONGO) {
            bson_t *doc = make_doc(seq);
            bson_error_t error;
            ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, &error);
            if (!ok) {
                publish_failed(error.message);
            }
            bson_destroy(doc);
        } else {
            int n = make_event_json(body, sizeof body, seq);
            ok = n > 0 && http_post(&fd, body, (size_t)n);
        }
        if (ok) {
            atomic_fetch_add(&published, 1);
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    if (coll) {
        mongoc_collection_destroy(coll);
        mongoc_client_destroy(client);
    }
    atomic_fetch_add(&publishers_done, 1);
    return NULL;
}

/* Catch-up: seq 0 alone (the marker), or seq 1..N in batches. */
static bool insert_range(long first, long last)
{
    mongoc_client_t *client = mongoc_client_new(opt.mongo_uri);
    if (!client) {
        publish_failed("bad --publish-mongo URI");
        return false;
    }
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "bench", "events");
    bool ok = true;
    for (long s = first; s <= last && ok; s += 1000) {
        bson_t *docs[1000];
        size_t n = 0;
        for (long i = s; i <= last && n < 1000; i++) {
            docs[n++] = make_doc(i);
        }
        bson_error_t error;
        ok = mongoc_collection_insert_many(coll, (const bson_t **)docs, n, NULL, NULL, &error);
        if (!ok) {
            publish_failed(error.message);
        }
        for (size_t i = 0; i < n; i++) {
            bson_destroy(docs[i]);
        }
    }
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    return ok;
}

typedef struct range {
    long first, last;
    atomic_int done;
    bool ok;
} range_t;

static void *insert_thread(void *arg)
{
    range_t *r = arg;
    r->ok = insert_range(r->first, r->last);
    atomic_store(&r->done, 1);
    return NULL;
}

/* --- modes ---------------------------------------------------------------- */

static void close_all(void)
{
    for (int i = 0; i < next_to_open; i++) {
        conn_close(&conns[i], false);
    }
}

static int run_fanout(void)
{
    int ready = connect_until(opt.subscribers, 120);
    long warm_n = (long)(opt.warmup * opt.rate);
    long win_n = (long)(opt.seconds * opt.rate);
    if (win_n < 1) {
        win_n = 1;
    }
    total_events = warm_n + win_n;
    window_first_seq = warm_n;
    window_last_seq = warm_n + win_n - 1;
    run_for(0.2); /* let the servers register the last subscribers */

    t0_mono_ns = now_mono_ns() + 10000000u;
    publish_end_ns = t0_mono_ns + (uint64_t)((opt.warmup + opt.seconds) * 1e9);
    pthread_t threads[64];
    int np = opt.publishers < 64 ? opt.publishers : 64;
    for (int i = 0; i < np; i++) {
        pthread_create(&threads[i], NULL, publisher_main, NULL);
    }
    uint64_t win_start = t0_mono_ns + (uint64_t)(opt.warmup * 1e9);
    uint64_t win_end = win_start + (uint64_t)(opt.seconds * 1e9);
    while (now_mono_ns() < win_start) {
        poll_once(5);
    }
    double scpu0 = server_cpu_s(), lcpu0 = thread_cpu_s();
    uint64_t w0 = now_mono_ns();
    in_window = true;
    while (now_mono_ns() < win_end) {
        poll_once(5);
    }
    in_window = false;
    double window_s = (double)(now_mono_ns() - w0) / 1e9;
    double scpu = server_cpu_s() - scpu0, lcpu = thread_cpu_s() - lcpu0;
    long rss = server_status_kib("VmRSS");
    long published_at_end = atomic_load(&published);
    /* Drain: until every open subscriber has the last event, or time is up. */
    uint64_t drain_end = 0;
    for (;;) {
        poll_once(5);
        if (atomic_load(&publishers_done) == np) {
            if (!drain_end) {
                drain_end = now_mono_ns() + (uint64_t)(opt.drain * 1e9);
            }
            long last = total_events - 1 - atomic_load(&skipped);
            bool all = true;
            for (int i = 0; i < next_to_open && all; i++) {
                all = conns[i].state != C_OPEN || conns[i].counts_only || conns[i].max_seq >= last;
            }
            if (all || now_mono_ns() > drain_end) {
                break;
            }
        }
    }
    for (int i = 0; i < np; i++) {
        pthread_join(threads[i], NULL);
    }
    /* Drops from the connections that parse what they get. */
    uint64_t received = 0;
    int parsing = 0;
    for (int i = 0; i < next_to_open; i++) {
        received += conns[i].window_received;
        parsing += !conns[i].counts_only && conns[i].fd >= 0;
    }

    long skipped_n = atomic_load(&skipped);
    long sent_in_window = win_n - (skipped_n < win_n ? skipped_n : win_n);
    uint64_t expected = (uint64_t)(parsing < ready ? parsing : ready) * (uint64_t)sent_in_window;
    uint64_t drops = expected > received ? expected - received : 0;
    double dps = (double)window_deliveries / window_s;
    printf("subscribers=%d ready=%d connect_failures=%llu published=%ld skipped=%ld "
           "publish_errors=%ld "
           "publish_rate=%.1f deliveries=%llu deliveries_per_s=%.0f p50_ms=%.3f p99_ms=%.3f "
           "max_ms=%.3f drops=%llu disconnects=%llu server_cpu_s=%.3f load_cpu_s=%.3f "
           "server_cpu_s_per_m=%.3f total_cpu_s_per_m=%.3f server_rss_kib=%ld "
           "bytes_per_delivery=%.0f window_s=%.3f\n",
           opt.subscribers, ready, (unsigned long long)connect_failures, published_at_end,
           atomic_load(&skipped), atomic_load(&publish_errors),
           (double)published_at_end / (opt.warmup + opt.seconds),
           (unsigned long long)window_deliveries, dps, percentile_ms(0.50), percentile_ms(0.99),
           (double)lat_max_us / 1000.0, (unsigned long long)drops, (unsigned long long)disconnects,
           scpu, lcpu, window_deliveries ? scpu * 1e6 / (double)window_deliveries : 0,
           window_deliveries ? (scpu + lcpu) * 1e6 / (double)window_deliveries : 0, rss,
           window_deliveries ? (double)window_bytes / (double)window_deliveries : 0, window_s);
    close_all();
    if (first_error[0] || publish_error[0]) {
        fprintf(stderr, "fanout_load: first error: %s%s%s\n", first_error,
                publish_error[0] ? "; publish: " : "", publish_error);
    }
    /* Zero deliveries is a result (a server that fell over); a run whose
     * subscribers or publishers could not even start is not. */
    return ready > 0 && published_at_end > 0 ? 0 : 1;
}

static int run_idle(void)
{
    int base_n = opt.subscribers >= 1000 ? 100 : opt.subscribers / 10;
    int base_ready = connect_until(base_n, 60);
    run_for(1.0);
    long rss0 = server_status_kib("VmRSS");
    int ready = connect_until(opt.subscribers, 120);
    run_for(2.0);
    long rss1 = server_status_kib("VmRSS");
    int added = ready - base_ready;
    /* What keeping them costs while nothing happens (heartbeats, pings). */
    double cpu0 = server_cpu_s();
    run_for(opt.idle_cpu_seconds);
    double idle_cpu = opt.idle_cpu_seconds > 0 ? (server_cpu_s() - cpu0) / opt.idle_cpu_seconds : 0;
    printf("subscribers=%d ready=%d base=%d connect_failures=%llu server_rss_base_kib=%ld "
           "server_rss_kib=%ld bytes_per_subscriber=%.0f idle_cpu_s_per_s=%.4f\n",
           opt.subscribers, ready, base_ready, (unsigned long long)connect_failures, rss0, rss1,
           added > 0 ? (double)(rss1 - rss0) * 1024.0 / added : 0, idle_cpu);
    close_all();
    if (first_error[0]) {
        fprintf(stderr, "fanout_load: first error: %s\n", first_error);
    }
    return ready == opt.subscribers ? 0 : 1;
}

static bool wait_for_seq(conn_t *c, long seq, double timeout_s)
{
    uint64_t deadline = now_mono_ns() + (uint64_t)(timeout_s * 1e9);
    while (now_mono_ns() < deadline && c->state == C_OPEN && c->max_seq < seq) {
        poll_once(5);
    }
    return c->max_seq >= seq;
}

static int run_catchup(void)
{
    if (opt.pub != PUB_MONGO) {
        die("--mode catchup needs --publish-mongo");
    }
    window_first_seq = 1;
    window_last_seq = opt.events;
    if (connect_until(1, 30) != 1) {
        fprintf(stderr, "fanout_load: live subscriber failed: %s\n", first_error);
        return 1;
    }
    range_t marker = {.first = 0, .last = 0};
    pthread_t th;
    pthread_create(&th, NULL, insert_thread, &marker);
    bool got = wait_for_seq(&conns[0], 0, 30);
    pthread_join(th, NULL);
    if (!got || !catchup_token[0]) {
        fprintf(stderr, "fanout_load: no marker event (%s)\n", publish_error);
        return 1;
    }
    uint64_t i0 = now_mono_ns();
    range_t bulk = {.first = 1, .last = opt.events};
    pthread_create(&th, NULL, insert_thread, &bulk);
    got = wait_for_seq(&conns[0], opt.events, 600);
    pthread_join(th, NULL);
    double insert_s = (double)(now_mono_ns() - i0) / 1e9;
    if (!got) {
        fprintf(stderr, "fanout_load: the live subscriber did not get all events (%s)\n",
                publish_error);
        return 1;
    }
    conn_close(&conns[0], false);
    run_for(0.5);
    long rss0 = server_status_kib("VmRSS");
    server_reset_peak();
    double scpu0 = server_cpu_s(), lcpu0 = thread_cpu_s();
    uint64_t t0 = now_mono_ns();
    connect_until(2, 30);
    conn_t *c = &conns[1];
    uint64_t deadline = now_mono_ns() + 600000000000u;
    while (c->state == C_OPEN && c->window_received < (uint64_t)opt.events &&
           now_mono_ns() < deadline) {
        poll_once(5);
    }
    double secs = (double)(now_mono_ns() - t0) / 1e9;
    double scpu = server_cpu_s() - scpu0, lcpu = thread_cpu_s() - lcpu0;
    long peak = server_status_kib("VmHWM");
    uint64_t got_n = c->window_received;
    printf("events=%d received=%llu seconds=%.3f events_per_s=%.0f server_rss_before_kib=%ld "
           "server_peak_kib=%ld peak_delta_kib=%ld server_cpu_s=%.3f load_cpu_s=%.3f "
           "insert_s=%.2f disconnects=%llu\n",
           opt.events, (unsigned long long)got_n, secs, (double)got_n / secs, rss0, peak,
           peak - rss0, scpu, lcpu, insert_s, (unsigned long long)disconnects);
    close_all();
    if (first_error[0]) {
        fprintf(stderr, "fanout_load: first error: %s\n", first_error);
    }
    return got_n == (uint64_t)opt.events ? 0 : 1;
}

/* --- hostile: subscribers that never read ----------------------------- */

static int *stalled_fds;
static atomic_int stalled_open;

/* Blocking: these connections are opened by their own thread, so the
 * readers' loop is never held up by them. */
static int open_stalled(int index)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000101u + (uint32_t)(index / 100));
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.sub.port)};
    dst.sin_addr.s_addr = htonl(0x7f000001u);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
        close(fd);
        return -1;
    }
    char req[2048];
    bool ws = index % 2 == 1;
    int n = ws ? snprintf(req, sizeof req,
                          "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
                          opt.stalled_ws_path, opt.sub.host, opt.sub.port,
                          opt.ws_protocol ? opt.ws_protocol : "changecast.v1")
               : snprintf(req, sizeof req,
                          "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n",
                          opt.stalled_sse_path, opt.sub.host, opt.sub.port);
    if (n <= 0 || (size_t)n >= sizeof req || !send_all(fd, req, (size_t)n)) {
        close(fd);
        return -1;
    }
    if (ws) {
        /* The 101 answer, then the subscribe message; nothing is read after. */
        char answer[1024];
        size_t got = 0;
        while (got < sizeof answer - 1 && !memmem(answer, got, "\r\n\r\n", 4)) {
            ssize_t r = recv(fd, answer + got, sizeof answer - 1 - got, 0);
            if (r <= 0) {
                close(fd);
                return -1;
            }
            got += (size_t)r;
        }
        conn_t c = {.fd = fd};
        if (!opt.ws_subscribe || !ws_send(&c, 1, opt.ws_subscribe, strlen(opt.ws_subscribe))) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void *stalled_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < opt.stalled; i++) {
        stalled_fds[i] = open_stalled(i);
        if (stalled_fds[i] >= 0) {
            atomic_fetch_add(&stalled_open, 1);
        }
    }
    return NULL;
}

static void reset_latency(void)
{
    memset(hist_fine, 0, sizeof hist_fine);
    memset(hist_coarse, 0, sizeof hist_coarse);
    hist_over = lat_max_us = window_deliveries = 0;
}

static int run_hostile(void)
{
    int ready = connect_until(opt.subscribers, 60);
    total_events =
        (long)((opt.warmup + opt.seconds + opt.stalled_seconds + opt.after_seconds) * opt.rate);
    window_first_seq = 0;
    window_last_seq = total_events - 1;
    run_for(0.2);
    t0_mono_ns = now_mono_ns() + 10000000u;
    publish_end_ns = t0_mono_ns + (uint64_t)((double)total_events / opt.rate * 1e9);
    pthread_t threads[64];
    int np = opt.publishers < 64 ? opt.publishers : 64;
    for (int i = 0; i < np; i++) {
        pthread_create(&threads[i], NULL, publisher_main, NULL);
    }
    uint64_t base_start = t0_mono_ns + (uint64_t)(opt.warmup * 1e9);
    while (now_mono_ns() < base_start) {
        poll_once(5);
    }
    in_window = true;
    run_for(opt.seconds);
    double base_p50 = percentile_ms(0.50), base_p99 = percentile_ms(0.99);
    long rss_before = server_status_kib("VmRSS");
    reset_latency();
    server_reset_peak();
    stalled_fds = malloc((size_t)opt.stalled * sizeof *stalled_fds);
    pthread_t opener;
    pthread_create(&opener, NULL, stalled_main, NULL);
    run_for(opt.stalled_seconds);
    in_window = false;
    double during_p50 = percentile_ms(0.50), during_p99 = percentile_ms(0.99);
    double during_max = (double)lat_max_us / 1000.0;
    long rss_peak = server_status_kib("VmHWM");
    pthread_join(opener, NULL);
    run_for(opt.after_seconds);
    long rss_after = server_status_kib("VmRSS");
    for (;;) {
        poll_once(5);
        if (atomic_load(&publishers_done) == np) {
            break;
        }
    }
    for (int i = 0; i < np; i++) {
        pthread_join(threads[i], NULL);
    }
    /* What the readers still have in flight. */
    uint64_t drain_end = now_mono_ns() + (uint64_t)(opt.drain * 1e9);
    long last = total_events - 1 - atomic_load(&skipped);
    for (bool all = false; !all && now_mono_ns() < drain_end;) {
        poll_once(5);
        all = true;
        for (int i = 0; i < next_to_open && all; i++) {
            all = conns[i].state != C_OPEN || conns[i].max_seq >= last;
        }
    }
    uint64_t received = 0;
    for (int i = 0; i < next_to_open; i++) {
        received += conns[i].window_received;
    }
    long sent = atomic_load(&published);
    uint64_t expected = (uint64_t)ready * (uint64_t)sent;
    printf("readers=%d ready=%d stalled=%d stalled_open=%d published=%ld publish_errors=%ld "
           "publish_rate=%.1f base_p50_ms=%.3f base_p99_ms=%.3f during_p50_ms=%.3f "
           "during_p99_ms=%.3f during_max_ms=%.3f reader_drops=%llu reader_disconnects=%llu "
           "rss_before_kib=%ld rss_peak_kib=%ld rss_after_kib=%ld\n",
           opt.subscribers, ready, opt.stalled, atomic_load(&stalled_open), sent,
           atomic_load(&publish_errors), (double)sent / ((double)total_events / opt.rate), base_p50,
           base_p99, during_p50, during_p99, during_max,
           (unsigned long long)(expected > received ? expected - received : 0),
           (unsigned long long)disconnects, rss_before, rss_peak, rss_after);
    for (int i = 0; i < opt.stalled; i++) {
        if (stalled_fds[i] >= 0) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(stalled_fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(stalled_fds[i]);
        }
    }
    free(stalled_fds);
    close_all();
    if (first_error[0] || publish_error[0]) {
        fprintf(stderr, "fanout_load: first error: %s%s%s\n", first_error,
                publish_error[0] ? "; publish: " : "", publish_error);
    }
    return ready > 0 && sent > 0 ? 0 : 1;
}

/* --- arguments ---------------------------------------------------------- */

static void parse_http(const char *url, http_target_t *t)
{
    if (strncmp(url, "http://", 7) != 0) {
        die("URLs must start with http://");
    }
    const char *h = url + 7;
    const char *colon = strchr(h, ':');
    const char *slash = strchr(h, '/');
    if (!colon || !slash || colon > slash || (size_t)(colon - h) >= sizeof t->host) {
        die("URL must be http://HOST:PORT/PATH");
    }
    memcpy(t->host, h, (size_t)(colon - h));
    t->host[colon - h] = '\0';
    t->port = atoi(colon + 1);
    snprintf(t->path, sizeof t->path, "%s", slash);
}

static void usage(void)
{
    fputs("usage: fanout_load --mode fanout|idle|catchup|hostile --proto sse|ws --url URL "
          "[--ws-protocol P] [--ws-subscribe JSON] --subscribers S [--source-ips N] "
          "[--publish-mongo URI | --publish-http URL] [--rate R] [--seconds D] "
          "[--warmup-seconds W] [--drain-seconds X] [--publishers P] [--pad BYTES] "
          "[--doc-bytes BYTES] [--compress] [--inflate-every N] "
          "[--events N] [--server-pids PID,PID] [--stalled N --stalled-sse-path P "
          "--stalled-ws-path P] [--stalled-seconds T] [--after-seconds A]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--compress")) { /* the one flag without a value */
            opt.compress = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
        }
        i++;
        if (!strcmp(a, "--mode")) {
            opt.mode = !strcmp(v, "idle")      ? MODE_IDLE
                       : !strcmp(v, "catchup") ? MODE_CATCHUP
                       : !strcmp(v, "hostile") ? MODE_HOSTILE
                                               : MODE_FANOUT;
        } else if (!strcmp(a, "--proto")) {
            opt.proto = !strcmp(v, "ws") ? PROTO_WS : PROTO_SSE;
        } else if (!strcmp(a, "--url")) {
            parse_http(v, &opt.sub);
        } else if (!strcmp(a, "--ws-protocol")) {
            opt.ws_protocol = v;
        } else if (!strcmp(a, "--ws-subscribe")) {
            opt.ws_subscribe = v;
        } else if (!strcmp(a, "--subscribers")) {
            opt.subscribers = atoi(v);
        } else if (!strcmp(a, "--source-ips")) {
            opt.source_ips = atoi(v);
        } else if (!strcmp(a, "--publish-mongo")) {
            opt.pub = PUB_MONGO;
            opt.mongo_uri = v;
        } else if (!strcmp(a, "--publish-http")) {
            opt.pub = PUB_HTTP;
            parse_http(v, &opt.pub_http);
        } else if (!strcmp(a, "--rate")) {
            opt.rate = atof(v);
        } else if (!strcmp(a, "--seconds")) {
            opt.seconds = atof(v);
        } else if (!strcmp(a, "--warmup-seconds")) {
            opt.warmup = atof(v);
        } else if (!strcmp(a, "--drain-seconds")) {
            opt.drain = atof(v);
        } else if (!strcmp(a, "--publishers")) {
            opt.publishers = atoi(v);
        } else if (!strcmp(a, "--pad")) {
            opt.pad = atoi(v);
        } else if (!strcmp(a, "--inflate-every")) {
            opt.inflate_every = atoi(v);
        } else if (!strcmp(a, "--doc-bytes")) {
            opt.doc_bytes = atoi(v);

        } else if (!strcmp(a, "--events")) {
            opt.events = atoi(v);
        } else if (!strcmp(a, "--idle-cpu-seconds")) {
            opt.idle_cpu_seconds = atof(v);
        } else if (!strcmp(a, "--stalled")) {
            opt.stalled = atoi(v);
        } else if (!strcmp(a, "--stalled-seconds")) {
            opt.stalled_seconds = atof(v);
        } else if (!strcmp(a, "--after-seconds")) {
            opt.after_seconds = atof(v);
        } else if (!strcmp(a, "--stalled-sse-path")) {
            opt.stalled_sse_path = v;
        } else if (!strcmp(a, "--stalled-ws-path")) {
            opt.stalled_ws_path = v;
        } else if (!strcmp(a, "--server-pids")) {
            char *copy = strdup(v), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && opt.nserver_pids < 16;
                 t = strtok_r(NULL, ",", &save)) {
                opt.server_pids[opt.nserver_pids++] = (pid_t)atoi(t);
            }
            free(copy);
        } else {
            usage();
        }
    }
    if (!opt.sub.port || opt.subscribers < 1 || opt.source_ips < 1 || opt.rate <= 0 ||
        opt.pad < 0 || opt.pad >= (int)sizeof pad_text || opt.publishers < 1 || opt.doc_bytes < 0 ||
        opt.doc_bytes > MAX_DOC_BYTES) {
        usage();
    }
    memset(pad_text, 'x', (size_t)opt.pad);
    mongoc_init();
    nconns = opt.subscribers + 2;
    conns = calloc((size_t)nconns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || epfd < 0) {
        die("cannot allocate");
    }
    if (opt.mode == MODE_HOSTILE &&
        (opt.pub == PUB_NONE || !opt.stalled_sse_path || !opt.stalled_ws_path)) {
        usage();
    }
    int rc = opt.mode == MODE_IDLE      ? run_idle()
             : opt.mode == MODE_CATCHUP ? run_catchup()
             : opt.mode == MODE_HOSTILE ? run_hostile()
                                        : (opt.pub == PUB_NONE ? (usage(), 2) : run_fanout());
    fflush(stdout);
    mongoc_cleanup();
    return rc;
}
