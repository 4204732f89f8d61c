/* SPDX-License-Identifier: Apache-2.0 */
/* push/server (server layer): the push thread. One libwebsockets context
 * runs on a libev loop of our own (lws's evlib-ev plugin, a foreign loop),
 * so readiness costs O(ready sockets), not a poll() over every socket, and
 * our timers are the loop's own ev_timers (lws's timers re-armed from a
 * callback fire late on this plugin: docs/architecture.md). Capture wakes the thread
 * through an ev_async (libev's thread-safe wakeup), only when its channel
 * goes from empty to non-empty; the channel is then drained in bounded
 * slices, with writes in between. Timers: the flush window (armed before
 * each poll while connections have items waiting), heartbeats (SSE
 * comments, WebSocket pings, idle checks), watermarks, and a one-second
 * tick for token expiry and stalled sockets. Calls everything below. */
#include "encode.h"
#include "gate.h"
#include "port.h"

#include "changecast/hostport.h"
#include "changecast/log.h"

#include <arpa/inet.h>
#include <ev.h>
#include <malloc.h>
#include <string.h>

#define TRIM_AFTER_CONNS 100
#define TRIM_EVERY_S 5.0

struct cc_push {
    cc_port_t port; /* first: lws's context user is the port */
    char *strings[7];
    struct lws_context *context;
    struct lws_vhost *vhost;
    cc_gate_t *gate; /* request heads read ahead of lws; NULL with TLS */
    struct ev_loop *loop;
    ev_async wake;
    ev_prepare before_poll;
    ev_check after_poll;
    ev_timer flush_timer;
    /* The flush window adapts to load (on_adapt_timer): flush_ms while the thread
     * has time to spare, doubling up to max_flush_ms while it is busy. */
    double flush_window_s;
    ev_tstamp woke_at;    /* when the current loop turn began */
    ev_tstamp busy_s;     /* time spent in loop turns since the last count */
    ev_tstamp counted_at; /* the last count */
    ev_timer drain_timer; /* the next slice of the channel */
    ev_timer heartbeat_timer;
    ev_timer watermark_timer;
    double trimmed_at; /* when freed memory was last given back */
    ev_timer tick_timer;
    ev_timer adapt_timer; /* the flush window, four times a second */
    ev_timer shutdown_timer;
    int64_t shutdown_deadline_us;
    SSL_CTX *tls_ctx; /* lws's, for reloading the certificate */
    char address[300];
    pthread_t thread;
    pthread_mutex_t start_lock;
    pthread_cond_t started;
    bool start_done;
    bool start_failed;
    bson_error_t start_error;
    atomic_bool stopping;
    atomic_bool reload_requested;
};

static struct cc_push *push_of_watcher(void *data)
{
    return data;
}

static bool load_pair(SSL_CTX *ctx, const cc_port_t *port)
{
    return SSL_CTX_use_certificate_chain_file(ctx, port->options.tls_cert_file) == 1 &&
           SSL_CTX_use_PrivateKey_file(ctx, port->options.tls_key_file, SSL_FILETYPE_PEM) == 1 &&
           SSL_CTX_check_private_key(ctx) == 1;
}

/* SIGHUP, asked for by the main thread: key files and the certificate are
 * read again here, on the thread that uses them. */
static void reload(struct cc_push *push)
{
    bson_error_t error;
    if (!cc_auth_reload(push->port.auth, &error)) {
        cc_error("event=reload_failed what=auth error=\"%s\"", error.message);
    } else {
        cc_info("event=reloaded what=auth");
    }
    if (!push->tls_ctx) {
        return;
    }
    /* Tried on a scratch context first: a pair that does not load together
     * must not leave the live one half replaced. */
    SSL_CTX *trial = SSL_CTX_new(TLS_server_method());
    bool usable = trial && load_pair(trial, &push->port) && load_pair(push->tls_ctx, &push->port);
    SSL_CTX_free(trial);
    if (!usable) {
        cc_error(
            "event=reload_failed what=push_tls file=\"%s\" detail=\"certificate and key do not "
            "load together; the old ones stay\"",
            push->port.options.tls_cert_file);
        return;
    }
    cc_info("event=reloaded what=push_tls");
}

static void on_room(cc_conn_t *conn)
{
    cc_port_t *port = lws_context_user(lws_get_context(conn->wsi));
    cc_fanout_refill(&port->fanout, conn);
}

static void drain(struct cc_push *push)
{
    if (cc_fanout_drain(&push->port.fanout)) {
        /* More waits: after the sockets that are ready have had their turn. */
        ev_timer_set(&push->drain_timer, 0, 0);
        ev_timer_start(push->loop, &push->drain_timer);
    }
}

static void on_drain_timer(struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void)loop;
    (void)revents;
    drain(push_of_watcher(timer->data));
}

static void close_all(struct cc_push *push)
{
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &push->port.conns.all, link)
    {
        /* Say goodbye properly (WebSocket close 1001). */
        cc_conn_close(conn, LWS_CLOSE_STATUS_GOINGAWAY, "shutting down");
    }
}

static void on_shutdown_timer(struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void)revents;
    struct cc_push *push = push_of_watcher(timer->data);
    if (!TAILQ_FIRST(&push->port.conns.all) ||
        bson_get_monotonic_time() > push->shutdown_deadline_us) {
        ev_break(loop, EVBREAK_ALL);
    }
}

static void on_wake(struct ev_loop *loop, ev_async *async, int revents)
{
    (void)revents;
    struct cc_push *push = push_of_watcher(async->data);
    if (atomic_load(&push->stopping)) {
        if (!ev_is_active(&push->shutdown_timer)) {
            close_all(push);
            push->shutdown_deadline_us = bson_get_monotonic_time() + 1000 * 1000;
            ev_timer_start(loop, &push->shutdown_timer);
        }
        return;
    }
    if (atomic_exchange(&push->reload_requested, false)) {
        reload(push);
    }
    if (!ev_is_active(&push->drain_timer)) {
        drain(push);
    }
}

/* Before each poll: items waiting arm the flush window; the turn that
 * ends here counts as busy time. */
static void on_before_poll(struct ev_loop *loop, ev_prepare *prepare, int revents)
{
    (void)revents;
    struct cc_push *push = push_of_watcher(prepare->data);
    if (TAILQ_FIRST(&push->port.conns.dirty) && !ev_is_active(&push->flush_timer)) {
        ev_timer_set(&push->flush_timer, push->flush_window_s, 0);
        ev_timer_start(loop, &push->flush_timer);
    }
    if (push->woke_at > 0) {
        push->busy_s += ev_time() - push->woke_at;
    }
}

static void on_after_poll(struct ev_loop *loop, ev_check *check, int revents)
{
    (void)loop;
    (void)revents;
    push_of_watcher(check->data)->woke_at = ev_time();
}

/* Four times a second: a thread busy most of the time is behind (more deliveries
 * offered than it carries at this window), so the window doubles and each
 * write carries more events per subscriber, at the price of latency; one
 * with time to spare halves it back towards flush_ms. The two thresholds
 * keep it from swinging at every tick. */
static void on_adapt_timer(struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void)loop;
    (void)revents;
    struct cc_push *push = push_of_watcher(timer->data);
    const cc_push_options_t *options = &push->port.options;
    ev_tstamp now = ev_time();
    double busy = push->counted_at > 0 ? push->busy_s / (now - push->counted_at) : 0;
    double least = (double)options->flush_ms / 1000.0;
    double most = (double)options->max_flush_ms / 1000.0;
    double window = push->flush_window_s;
    if (busy > 0.75 && window < most) {
        window = window * 2 < most ? window * 2 : most;
    } else if (busy < 0.4 && window > least) {
        window = window / 2 > least ? window / 2 : least;
    }
    if (window != push->flush_window_s) {
        cc_debug("event=flush_window busy=%.2f window_ms=%.0f", busy, window * 1000);
        push->flush_window_s = window;
        push->port.metrics.flush_window_ms = (int64_t)(window * 1000);
    }
    push->busy_s = 0;
    push->counted_at = now;
}

static void on_flush_timer(struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void)loop;
    (void)revents;
    struct cc_push *push = push_of_watcher(timer->data);
    cc_conns_flush(&push->port.conns);
}

static void on_heartbeat(struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void)loop;
    (void)revents;
    cc_port_t *port = &push_of_watcher(timer->data)->port;
    int64_t now = bson_get_monotonic_time();
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &port->conns.all, link)
    {
        if (conn->state != CC_CONN_STREAMING) {
            continue;
        }
        if (conn->kind == CC_CONN_SSE) {
            cc_conn_push(conn, NULL, cc_buf_ref(port->sse_heartbeat), 0);
        } else if (conn->kind == CC_CONN_WS) {
            if (now - conn->last_rx_us > port->options.idle_timeout_ms * 1000) {
                cc_conn_close(conn, LWS_CLOSE_STATUS_NORMAL, "idle_timeout");
                continue;
            }
            cc_conn_push(conn, NULL, cc_buf_ref(port->ws_ping), 0);
        } else {
            continue;
        }
        cc_conn_wake(conn);
    }
}

static void on_watermark_timer(struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void)loop;
    (void)revents;
    cc_fanout_send_watermarks(&push_of_watcher(timer->data)->port.fanout);
}

/* glibc keeps the pages it freed inside its heap until asked. After a
 * crowd of connections has gone (hundreds of slow clients dropped), what
 * they held goes back to the system, at most every few seconds. */
static void give_back_memory(struct cc_push *push)
{
#ifdef __GLIBC__
    cc_conns_t *conns = &push->port.conns;
    double now = ev_now(push->loop);
    if (conns->freed_since_trim >= TRIM_AFTER_CONNS && now - push->trimmed_at >= TRIM_EVERY_S) {
        malloc_trim(0);
        conns->freed_since_trim = 0;
        push->trimmed_at = now;
    }
#else
    (void)push;
#endif
}

static void on_tick(struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void)revents;
    struct cc_push *push = push_of_watcher(timer->data);
    cc_access_expire(&push->port);
    cc_conns_sweep(&push->port.conns, bson_get_monotonic_time());
    cc_fanout_settle_late_writes(&push->port.fanout);
    if (push->gate) {
        cc_gate_sweep(push->gate, ev_now(loop));
    }
    give_back_memory(push);
}

/* lws's first protocol: where it filters accepted sockets (the gate takes
 * them), sets up TLS, then serves HTTP. */
static int on_http_protocol(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                            size_t len)
{
    if (reason == LWS_CALLBACK_FILTER_NETWORK_CONNECTION) {
        struct cc_push *push = lws_context_user(lws_get_context(wsi));
        if (!push->gate) {
            return 0;
        }
        cc_gate_take(push->gate, (int)(intptr_t)in);
        return 1; /* lws closes its descriptor; the gate has its own */
    }
    if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS) {
        struct cc_push *push = lws_context_user(lws_get_context(wsi));
        /* The push port's SSL_CTX, kept for SIGHUP; TLS 1.2 at least. */
        push->tls_ctx = user;
        SSL_CTX_set_min_proto_version(push->tls_ctx, TLS1_2_VERSION);
        if (*push->port.options.tls_client_ca_file) {
            /* A client without a certificate from this CA is refused in
             * the handshake. */
            SSL_CTX_set_verify(push->tls_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                               NULL);
        }
        return 0;
    }
    return cc_http_callback(wsi, reason, user, in, len);
}

static void wake_push(void *arg)
{
    struct cc_push *push = arg;
    ev_async_send(push->loop, &push->wake);
}

static void report_start(struct cc_push *push, bool failed)
{
    pthread_mutex_lock(&push->start_lock);
    push->start_done = true;
    push->start_failed = failed;
    pthread_cond_signal(&push->started);
    pthread_mutex_unlock(&push->start_lock);
}

static void lws_to_log(int level, const char *line)
{
    char trimmed[512];
    bson_strncpy(trimmed, line, sizeof trimmed);
    trimmed[strcspn(trimmed, "\r\n")] = '\0';
    cc_log(level == LLL_ERR ? CC_LOG_ERROR : CC_LOG_WARN, "event=lws_log message=\"%s\"", trimmed);
}

static void start_watchers(struct cc_push *push)
{
    struct ev_loop *loop = push->loop;
    const cc_push_options_t *options = &push->port.options;
    ev_async_init(&push->wake, on_wake);
    ev_prepare_init(&push->before_poll, on_before_poll);
    ev_check_init(&push->after_poll, on_after_poll);
    push->flush_window_s = (double)options->flush_ms / 1000.0;
    push->port.metrics.flush_window_ms = options->flush_ms;
    ev_timer_init(&push->flush_timer, on_flush_timer, 0, 0);
    ev_timer_init(&push->drain_timer, on_drain_timer, 0, 0);
    ev_timer_init(&push->heartbeat_timer, on_heartbeat, (double)options->heartbeat_ms / 1000.0,
                  (double)options->heartbeat_ms / 1000.0);
    ev_timer_init(&push->watermark_timer, on_watermark_timer,
                  (double)options->watermark_ms / 1000.0, (double)options->watermark_ms / 1000.0);
    ev_timer_init(&push->tick_timer, on_tick, 1.0, 1.0);
    ev_timer_init(&push->adapt_timer, on_adapt_timer, 0.25, 0.25);
    ev_timer_init(&push->shutdown_timer, on_shutdown_timer, 0.05, 0.05);
    void *watchers[] = {
        &push->wake,        &push->before_poll,     &push->after_poll,      &push->flush_timer,
        &push->drain_timer, &push->heartbeat_timer, &push->watermark_timer, &push->tick_timer,
        &push->adapt_timer, &push->shutdown_timer};
    for (size_t i = 0; i < sizeof watchers / sizeof watchers[0]; i++) {
        ((ev_watcher *)watchers[i])->data = push;
    }
    ev_async_start(loop, &push->wake);
    ev_prepare_start(loop, &push->before_poll);
    ev_check_start(loop, &push->after_poll);
    ev_timer_start(loop, &push->heartbeat_timer);
    ev_timer_start(loop, &push->tick_timer);
    ev_timer_start(loop, &push->adapt_timer);
    if (options->watermark_ms > 0) {
        ev_timer_start(loop, &push->watermark_timer);
    }
}

static bool fail_start(struct cc_push *push, const char *message)
{
    bson_set_error(&push->start_error, 0, 0, "%s", message);
    if (push->context) {
        lws_context_destroy(push->context);
        push->context = NULL;
    }
    cc_hangup_close(&push->port);
    report_start(push, true);
    return false;
}

static bool create_context(struct cc_push *push)
{
    cc_port_t *port = &push->port;
    cc_hostport_t hp;
    char message[400];
    cc_hostport_parse(port->options.listen, &hp, &push->start_error);
    static const struct lws_protocols protocols[] = {
        /* A connection's cc_conn_t is lws's opaque user data of its socket
         * (set by the transport that makes it): no per-session memory. */
        {"http", on_http_protocol, 0, 0, 0, NULL, 0},
        /* Clients send small JSON messages; larger ones arrive in pieces,
         * which ws.c assembles. The receive buffer is per connection, so
         * it is small, but not under 128: lws 4.1 keeps a control frame's
         * payload (up to 125 bytes) in it, and a smaller one cuts pongs
         * (push-ws.test.js, control frames). The send size is set so lws
         * never splits a write of its own by the receive buffer's size. */
        {"changecast.v1", cc_ws_callback, 0, 128, 0, NULL, 4096},
        {"changecast-hangup", cc_hangup_callback, 0, 0, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    void *foreign_loops[] = {push->loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = hp.port;
    info.iface = hp.host;
    info.protocols = protocols;
    info.user = push; /* == &push->port */
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = foreign_loops;
    /* lws looks an address up on the socket's family: on an IPv6 socket an
     * IPv4 literal is not found, and lws 4.1 then listens on every
     * interface. An IPv4 address gets an IPv4 socket. */
    struct in_addr ipv4;
    if (inet_pton(AF_INET, hp.host, &ipv4) == 1) {
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    }
    /* Headroom above what the gate lets through (CC_HEAD_MAX_BYTES of
     * raw head), so that lws never cuts a head the gate passed; the table
     * lives only until a request's headers are read. */
    info.max_http_header_data = CC_HEAD_MAX_BYTES + 2048;
    if (*port->options.tls_cert_file) {
        port->tls = true;
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = port->options.tls_cert_file;
        info.ssl_private_key_filepath = port->options.tls_key_file;
        /* SSE and our raw WebSocket framing are written for HTTP/1.1. */
        info.alpn = "http/1.1";
        if (*port->options.tls_client_ca_file) {
            info.ssl_ca_filepath = port->options.tls_client_ca_file;
            info.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
        }
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_to_log);
    push->context = lws_create_context(&info);
    push->vhost = push->context ? lws_get_vhost_by_name(push->context, "default") : NULL;
    if (!push->context || !push->vhost) {
        snprintf(message, sizeof message,
                 "push.listen: cannot listen on %s (or libwebsockets' libev plugin, package "
                 "libwebsockets-evlib-ev, is missing)",
                 port->options.listen);
        return fail_start(push, message);
    }
    if (!cc_hangup_init(port, push->vhost)) {
        return fail_start(push, "push: cannot watch for client hangups");
    }
    if (!port->tls) {
        push->gate = cc_gate_new(port, push->loop, push->vhost);
    }
    snprintf(push->address, sizeof push->address, "%s:%d", hp.host,
             lws_get_vhost_listen_port(push->vhost));
    return true;
}

static void *push_thread(void *arg)
{
    struct cc_push *push = arg;
    push->loop = ev_loop_new(EVBACKEND_EPOLL);
    push->port.loop = push->loop;
    start_watchers(push);
    if (!create_context(push)) {
        ev_loop_destroy(push->loop);
        return NULL;
    }
    cc_channel_on_post(push->port.fanout.channel, wake_push, push);
    report_start(push, false);
    drain(push);
    ev_run(push->loop, 0);
    cc_channel_on_post(push->port.fanout.channel, NULL, NULL);
    cc_gate_free(push->gate);
    lws_context_destroy(push->context);
    cc_hangup_close(&push->port);
    ev_loop_destroy(push->loop);
    return NULL;
}

cc_push_t *cc_push_start(const cc_push_options_t *options, cc_channel_t *channel,
                         bson_error_t *error)
{
    struct cc_push *push = bson_malloc0(sizeof *push);
    cc_port_t *port = &push->port;
    port->options = *options;
    const char **kept[] = {&port->options.listen,
                           &port->options.expose,
                           &port->options.full_document,
                           &port->options.allowed_origins,
                           &port->options.tls_cert_file,
                           &port->options.tls_key_file,
                           &port->options.tls_client_ca_file};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        push->strings[i] = bson_strdup(*kept[i] ? *kept[i] : "");
        *kept[i] = push->strings[i];
    }
    port->hangup_fd = -1;
    cc_conns_init(&port->conns, &port->metrics,
                  (cc_conn_limits_t){(size_t)options->max_queue_bytes, options->stall_timeout_ms,
                                     (int)options->unsent_bytes},
                  on_room);
    if (options->compression && cc_deflate_init(&port->deflate)) {
        port->conns.deflate = &port->deflate;
    }
    cc_fanout_init(&port->fanout, &port->options, &port->conns, &port->metrics, channel);
    port->sse_heartbeat = cc_encode_sse_comment("heartbeat");
    port->gzip_header = cc_buf_copy(cc_gzip_header, sizeof cc_gzip_header);
    /* A ping with a payload: lws 4.1 passes an empty pong to nobody. */
    static const uint8_t ping[3] = {0x80 | CC_WS_OP_PING, 0x01, 'c'};
    port->ws_ping = cc_buf_copy(ping, sizeof ping);
    pthread_mutex_init(&push->start_lock, NULL);
    pthread_cond_init(&push->started, NULL);
    pthread_mutex_init(&port->wire_stats_lock, NULL);
    bson_error_t detail;
    if (!cc_expose_parse(options->expose, &port->expose, &detail)) {
        bson_set_error(error, 0, 0, "changes.expose: %s", detail.message);
        cc_push_stop(push);
        return NULL;
    }
    if (!cc_access_init(port, error)) {
        cc_push_stop(push);
        return NULL;
    }
    int failed = pthread_create(&push->thread, NULL, push_thread, push);
    if (failed) {
        push->thread = 0;
        bson_set_error(error, 0, 0, "cannot start the push thread: %s", strerror(failed));
        cc_push_stop(push);
        return NULL;
    }
    pthread_mutex_lock(&push->start_lock);
    while (!push->start_done) {
        pthread_cond_wait(&push->started, &push->start_lock);
    }
    pthread_mutex_unlock(&push->start_lock);
    if (push->start_failed) {
        *error = push->start_error;
        pthread_join(push->thread, NULL);
        push->thread = 0;
        cc_push_stop(push);
        return NULL;
    }
    return push;
}

void cc_push_reload(cc_push_t *push)
{
    atomic_store(&push->reload_requested, true);
    ev_async_send(push->loop, &push->wake);
}

const char *cc_push_address(const cc_push_t *push)
{
    return push->address;
}

void cc_push_set_wire_stats(cc_push_t *push, const cc_wire_stats_t *stats)
{
    pthread_mutex_lock(&push->port.wire_stats_lock);
    push->port.wire_stats = *stats;
    pthread_mutex_unlock(&push->port.wire_stats_lock);
}

void cc_push_stop(cc_push_t *push)
{
    if (!push) {
        return;
    }
    if (push->thread) {
        atomic_store(&push->stopping, true);
        ev_async_send(push->loop, &push->wake);
        pthread_join(push->thread, NULL);
    }
    cc_port_t *port = &push->port;
    cc_fanout_cleanup(&port->fanout);
    cc_conns_cleanup(&port->conns);
    cc_deflate_cleanup(&port->deflate);
    cc_buf_unref(port->sse_heartbeat);
    cc_buf_unref(port->gzip_header);
    cc_buf_unref(port->ws_ping);
    cc_expose_destroy(&port->expose);
    cc_access_cleanup(port);
    for (size_t i = 0; i < sizeof push->strings / sizeof push->strings[0]; i++) {
        bson_free(push->strings[i]);
    }
    pthread_mutex_destroy(&push->start_lock);
    pthread_mutex_destroy(&port->wire_stats_lock);
    pthread_cond_destroy(&push->started);
    bson_free(push);
}
