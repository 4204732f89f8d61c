/* SPDX-License-Identifier: Apache-2.0 */
/* The push thread: one libwebsockets context on lws's own poll loop.
 * Capture wakes it with lws_cancel_service() (the only lws call that is
 * safe from another thread); it then drains the channel. Two timers: the
 * flush window (events wait at most push.flush_ms, then leave together),
 * and the heartbeat (SSE comments, WebSocket pings, idle checks). SSE
 * clients that leave are noticed by hangup.c. */
#include "changecast/hostport.h"
#include "changecast/log.h"
#include "push_internal.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <string.h>

static struct cc_push *push_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* Keeps lws_service() returning while connections close at shutdown. */
static void on_shutdown_tick(lws_sorted_usec_list_t *sul)
{
    struct cc_push *push = lws_container_of(sul, struct cc_push, heartbeat_timer);
    lws_sul_schedule(push->context, 0, &push->heartbeat_timer, on_shutdown_tick,
                     100 * LWS_US_PER_MS);
}

static void on_flush_timer(lws_sorted_usec_list_t *sul)
{
    struct cc_push *push = lws_container_of(sul, struct cc_push, flush_timer);
    push->flush_scheduled = false;
    cc_conn_t *conn;
    while ((conn = TAILQ_FIRST(&push->dirty))) {
        TAILQ_REMOVE(&push->dirty, conn, dirty_link);
        conn->dirty = false;
        lws_callback_on_writable(conn->wsi);
    }
}

static void schedule_flush(struct cc_push *push)
{
    if (!push->flush_scheduled && TAILQ_FIRST(&push->dirty)) {
        push->flush_scheduled = true;
        lws_sul_schedule(push->context, 0, &push->flush_timer, on_flush_timer,
                         push->options.flush_ms * LWS_US_PER_MS);
    }
}

static void on_heartbeat(lws_sorted_usec_list_t *sul)
{
    struct cc_push *push = lws_container_of(sul, struct cc_push, heartbeat_timer);
    int64_t now = bson_get_monotonic_time();
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &push->conns, link)
    {
        if (conn->closing) {
            continue;
        }
        if (conn->kind == CC_CONN_SSE) {
            cc_conn_append(conn, ": heartbeat\n\n", 13);
            cc_conn_mark_dirty(conn);
        } else if (conn->kind == CC_CONN_WS) {
            if (now - conn->last_rx_us > push->options.idle_timeout_ms * 1000) {
                cc_conn_drop(conn, LWS_CLOSE_STATUS_NORMAL, "idle_timeout");
                continue;
            }
            /* A ping with a payload: lws 4.1 passes an empty pong to nobody. */
            static const uint8_t ping[3] = {0x89, 0x01, 'c'};
            cc_conn_append(conn, ping, sizeof ping);
            cc_conn_mark_dirty(conn);
        }
    }
    schedule_flush(push);
    lws_sul_schedule(push->context, 0, &push->heartbeat_timer, on_heartbeat,
                     push->options.heartbeat_ms * LWS_US_PER_MS);
}

static void on_expiry_timer(lws_sorted_usec_list_t *sul)
{
    struct cc_push *push = lws_container_of(sul, struct cc_push, expiry_timer);
    cc_access_expire(push);
    lws_sul_schedule(push->context, 0, &push->expiry_timer, on_expiry_timer, LWS_US_PER_SEC);
}

static bool load_pair(SSL_CTX *ctx, const struct cc_push *push)
{
    return SSL_CTX_use_certificate_chain_file(ctx, push->options.tls_cert_file) == 1 &&
           SSL_CTX_use_PrivateKey_file(ctx, push->options.tls_key_file, SSL_FILETYPE_PEM) == 1 &&
           SSL_CTX_check_private_key(ctx) == 1;
}

/* SIGHUP, asked for by the main thread: key files and the certificate are
 * read again here, on the thread that uses them. */
static void reload(struct cc_push *push)
{
    bson_error_t error;
    if (!cc_auth_reload(push->auth, &error)) {
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
    bool usable = trial && load_pair(trial, push) && load_pair(push->tls_ctx, push);
    SSL_CTX_free(trial);
    if (!usable) {
        cc_error(
            "event=reload_failed what=push_tls file=\"%s\" detail=\"certificate and key do not "
            "load together; the old ones stay\"",
            push->options.tls_cert_file);
        return;
    }
    cc_info("event=reloaded what=push_tls");
}

static void on_watermark_timer(lws_sorted_usec_list_t *sul)
{
    struct cc_push *push = lws_container_of(sul, struct cc_push, watermark_timer);
    cc_fanout_send_watermarks(push);
    schedule_flush(push);
    lws_sul_schedule(push->context, 0, &push->watermark_timer, on_watermark_timer,
                     push->options.watermark_ms * LWS_US_PER_MS);
}

static int on_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct cc_push *push = push_of(wsi);
    cc_conn_t **slot = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (!lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI)) {
            return cc_http_error(push, wsi, slot, 405, "method_not_allowed",
                                 "the push port answers GET only");
        }
        return cc_http_serve(push, wsi, (const char *)in, slot);
    case LWS_CALLBACK_HTTP_BODY:
        /* No endpoint takes a body; refusing it also keeps pipelined bodies
         * (which lws 4.1 mishandles) away. */
        return -1;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        cc_conn_t *conn = *slot;
        if (!conn) {
            return 0;
        }
        if (conn->kind == CC_CONN_HTTP) {
            cc_conn_append(conn, conn->http_body, conn->http_body_len);
            int written =
                lws_write(wsi, conn->out.data + LWS_PRE, conn->out.len, LWS_WRITE_HTTP_FINAL);
            conn->out.len = 0;
            if (written < 0 || lws_http_transaction_completed(wsi)) {
                return -1;
            }
            return 0;
        }
        if (conn->status_pending) {
            return cc_sse_write_status(conn);
        }
        return cc_conn_flush(conn);
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (slot && *slot) {
            cc_conn_free(*slot);
            *slot = NULL;
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* A WebSocket upgrade without our subprotocol lands here. */
        return 1;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (atomic_exchange(&push->reload_requested, false)) {
            reload(push);
        }
        cc_fanout_drain_channel(push);
        schedule_flush(push);
        return 0;
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
        /* The push port's SSL_CTX, kept for SIGHUP; TLS 1.2 at least. */
        push->tls_ctx = user;
        SSL_CTX_set_min_proto_version(push->tls_ctx, TLS1_2_VERSION);
        if (*push->options.tls_client_ca_file) {
            /* A client without a certificate from this CA is refused in
             * the handshake. */
            SSL_CTX_set_verify(push->tls_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                               NULL);
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static int on_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    struct cc_push *push = push_of(wsi);
    cc_conn_t **slot = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[64], origin[256];
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 ||
            strcmp(uri, "/v1/ws") != 0) {
            return 1;
        }
        /* Cross-site WebSocket hijacking: a foreign page must not ride a
         * browser's cookie token. */
        if (cc_access_origin(push, wsi, origin, sizeof origin) == CC_ORIGIN_REFUSED) {
            cc_access_refused(push, CC_REFUSAL_ORIGIN_NOT_ALLOWED);
            lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, "origin_not_allowed");
            return -1;
        }
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        *slot = cc_conn_new(push, wsi, CC_CONN_WS);
        cc_info("push_conn=%llu event=ws_open", (unsigned long long)(*slot)->id);
        cc_ws_open(*slot);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (*slot) {
            cc_ws_receive(*slot, in, len);
            schedule_flush(push);
        }
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        cc_debug("push_conn=%llu event=pong", *slot ? (unsigned long long)(*slot)->id : 0ULL);
        if (*slot) {
            (*slot)->last_rx_us = bson_get_monotonic_time();
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return *slot ? cc_conn_flush(*slot) : 0;
    case LWS_CALLBACK_CLOSED:
        if (*slot) {
            cc_conn_free(*slot);
            *slot = NULL;
        }
        return 0;
    default:
        return 0;
    }
}

static void wake_push(void *arg)
{
    struct cc_push *push = arg;
    lws_cancel_service(push->context);
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

static void *push_thread(void *arg)
{
    struct cc_push *push = arg;
    cc_hostport_t hp;
    cc_hostport_parse(push->options.listen, &hp, &push->start_error);
    static const struct lws_protocols protocols[] = {
        {"http", on_http, sizeof(cc_conn_t *), 0, 0, NULL, 0},
        /* Clients send small JSON messages; larger ones arrive in pieces,
         * which ws.c assembles. The receive buffer is per connection. */
        {"changecast.v1", on_ws, sizeof(cc_conn_t *), 512, 0, NULL, 4096},
        {"changecast-hangup", cc_hangup_callback, 0, 0, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = hp.port;
    info.iface = hp.host;
    info.protocols = protocols;
    info.user = push;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    /* lws looks an address up on the socket's family: on an IPv6 socket an
     * IPv4 literal is not found, and lws 4.1 then listens on every
     * interface. An IPv4 address gets an IPv4 socket. */
    struct in_addr ipv4;
    if (inet_pton(AF_INET, hp.host, &ipv4) == 1) {
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    }
    info.max_http_header_data = 8192;
    if (*push->options.tls_cert_file) {
        push->tls = true;
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = push->options.tls_cert_file;
        info.ssl_private_key_filepath = push->options.tls_key_file;
        /* SSE and our raw WebSocket framing are written for HTTP/1.1. */
        info.alpn = "http/1.1";
        if (*push->options.tls_client_ca_file) {
            info.ssl_ca_filepath = push->options.tls_client_ca_file;
            info.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
        }
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_to_log);
    push->context = lws_create_context(&info);
    push->vhost = push->context ? lws_get_vhost_by_name(push->context, "default") : NULL;
    if (!push->context || !push->vhost) {
        bson_set_error(&push->start_error, 0, 0, "push.listen: cannot listen on %s",
                       push->options.listen);
        if (push->context) {
            lws_context_destroy(push->context);
            push->context = NULL;
        }
        report_start(push, true);
        return NULL;
    }
    if (!cc_hangup_init(push)) {
        bson_set_error(&push->start_error, 0, 0, "push: cannot watch for client hangups");
        cc_hangup_close(push);
        lws_context_destroy(push->context);
        push->context = NULL;
        report_start(push, true);
        return NULL;
    }
    snprintf(push->address, sizeof push->address, "%s:%d", hp.host,
             lws_get_vhost_listen_port(push->vhost));
    cc_channel_on_post(push->channel, wake_push, push);
    lws_sul_schedule(push->context, 0, &push->heartbeat_timer, on_heartbeat,
                     push->options.heartbeat_ms * LWS_US_PER_MS);
    lws_sul_schedule(push->context, 0, &push->expiry_timer, on_expiry_timer, LWS_US_PER_SEC);
    if (push->options.watermark_ms > 0) {
        lws_sul_schedule(push->context, 0, &push->watermark_timer, on_watermark_timer,
                         push->options.watermark_ms * LWS_US_PER_MS);
    }
    report_start(push, false);
    cc_fanout_drain_channel(push);
    while (!atomic_load(&push->stopping)) {
        if (lws_service(push->context, 0) < 0) {
            break;
        }
    }
    /* Say goodbye properly (WebSocket close 1001) before the context goes. */
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &push->conns, link)
    {
        cc_conn_drop(conn, LWS_CLOSE_STATUS_GOINGAWAY, "shutting down");
    }
    lws_sul_schedule(push->context, 0, &push->heartbeat_timer, on_shutdown_tick,
                     100 * LWS_US_PER_MS);
    int64_t deadline = bson_get_monotonic_time() + 1000 * 1000;
    while (TAILQ_FIRST(&push->conns) && bson_get_monotonic_time() < deadline) {
        if (lws_service(push->context, 0) < 0) {
            break;
        }
    }
    cc_channel_on_post(push->channel, NULL, NULL);
    lws_context_destroy(push->context);
    cc_hangup_close(push);
    return NULL;
}

cc_push_t *cc_push_start(const cc_push_options_t *options, cc_channel_t *channel,
                         bson_error_t *error)
{
    struct cc_push *push = bson_malloc0(sizeof *push);
    push->options = *options;
    const char **kept[] = {&push->options.listen,
                           &push->options.expose,
                           &push->options.full_document,
                           &push->options.allowed_origins,
                           &push->options.tls_cert_file,
                           &push->options.tls_key_file,
                           &push->options.tls_client_ca_file};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        push->strings[i] = bson_strdup(*kept[i] ? *kept[i] : "");
        *kept[i] = push->strings[i];
    }
    push->channel = channel;
    push->hangup_fd = -1;
    TAILQ_INIT(&push->conns);
    TAILQ_INIT(&push->dirty);
    TAILQ_INIT(&push->catchups);
    pthread_mutex_init(&push->start_lock, NULL);
    pthread_cond_init(&push->started, NULL);
    bson_error_t detail;
    if (!cc_expose_parse(options->expose, &push->expose, &detail)) {
        bson_set_error(error, 0, 0, "changes.expose: %s", detail.message);
        cc_push_stop(push);
        return NULL;
    }
    if (!cc_access_init(push, error)) {
        cc_push_stop(push);
        return NULL;
    }
    push->ring = cc_ring_new((size_t)options->ring_events, (size_t)options->ring_bytes);
    push->index = cc_index_new();
    pthread_create(&push->thread, NULL, push_thread, push);
    pthread_mutex_lock(&push->start_lock);
    while (!push->start_done) {
        pthread_cond_wait(&push->started, &push->start_lock);
    }
    pthread_mutex_unlock(&push->start_lock);
    if (push->start_failed) {
        *error = push->start_error;
        cc_push_stop(push);
        return NULL;
    }
    return push;
}

void cc_push_reload(cc_push_t *push)
{
    atomic_store(&push->reload_requested, true);
    lws_cancel_service(push->context);
}

const char *cc_push_address(const cc_push_t *push)
{
    return push->address;
}

void cc_push_set_wire_stats(cc_push_t *push, int64_t connections, uint64_t bytes_to_upstream,
                            uint64_t bytes_to_clients)
{
    atomic_store(&push->wire_connections, connections);
    atomic_store(&push->wire_bytes_to_upstream, bytes_to_upstream);
    atomic_store(&push->wire_bytes_to_clients, bytes_to_clients);
}

void cc_push_stop(cc_push_t *push)
{
    if (!push) {
        return;
    }
    if (push->thread) {
        atomic_store(&push->stopping, true);
        if (push->context) {
            lws_cancel_service(push->context);
        }
        pthread_join(push->thread, NULL);
    }
    bson_free(push->capture_position);
    for (size_t i = 0; i < push->txn_count; i++) {
        cc_event_unref(push->txn_events[i]);
    }
    bson_free(push->txn_events);
    cc_index_free(push->index);
    cc_ring_free(push->ring);
    cc_expose_destroy(&push->expose);
    cc_access_cleanup(push);
    for (size_t i = 0; i < sizeof push->strings / sizeof push->strings[0]; i++) {
        bson_free(push->strings[i]);
    }
    pthread_mutex_destroy(&push->start_lock);
    pthread_cond_destroy(&push->started);
    bson_free(push);
}
