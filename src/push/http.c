/* SPDX-License-Identifier: Apache-2.0 */
/* The push port's HTTP side: routes a request to an SSE stream (sse.c) or
 * answers it here (/healthz, /metrics, the client and demo assets, CORS
 * preflights, errors) through reply.c. */
#include "assets.h"
#include "encode.h"
#include "port.h"

#include "changecast/log.h"

#include <string.h>

/* Answers with `doc` as JSON and destroys it. */
static int reply_json(cc_port_t *port, struct lws *wsi, unsigned status, bson_t *doc)
{
    char *json = cc_json_or_placeholder(doc, NULL);
    int rc = cc_http_reply(port, wsi, status, "application/json", json);
    bson_free(json);
    bson_destroy(doc);
    return rc;
}

static int serve_health(cc_port_t *port, struct lws *wsi)
{
    if (port->fanout.capture_state == CC_CAPTURE_LIVE) {
        int64_t lag = cc_fanout_capture_lag_ms(&port->fanout);
        int64_t most = port->options.healthz_max_lag_ms;
        bool lagging = most > 0 && lag > most;
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "status", lagging ? "lagging" : "ok");
        if (lag >= 0) {
            BSON_APPEND_INT64(&doc, "lag_ms", lag);
        }
        if (most > 0) {
            BSON_APPEND_INT64(&doc, "max_lag_ms", most);
        }
        return reply_json(port, wsi, lagging ? 503 : 200, &doc);
    }
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "status", "unavailable");
    BSON_APPEND_UTF8(&doc, "reason",
                     port->fanout.capture_state == CC_CAPTURE_STARTING
                         ? "the capture stream is starting"
                         : port->fanout.capture_reason);
    return reply_json(port, wsi, 503, &doc);
}

/* Document states waiting in format=docs queues: bounded by distinct _ids. */
static size_t pending_docs(cc_port_t *port)
{
    size_t total = 0;
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &port->conns.all, link)
    {
        cc_sub_t *sub;
        TAILQ_FOREACH(sub, &conn->subs, conn_link)
        {
            total += cc_sub_states_waiting(sub);
        }
    }
    return total;
}

/* One metric's HELP and TYPE lines; its samples follow. */
static void metric(bson_string_t *out, const char *name, const char *type, const char *help)
{
    bson_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric with one sample. Counters stay exact as doubles below 2^53. */
static void single(bson_string_t *out, const char *name, const char *type, const char *help,
                   double value)
{
    metric(out, name, type, help);
    bson_string_append_printf(out, "%s %.15g\n", name, value);
}

/* One sample of a labelled metric: name{label="value"} count. */
static void sample(bson_string_t *out, const char *name, const char *label, const char *value,
                   double count)
{
    bson_string_append_printf(out, "%s{%s=\"%s\"} %.15g\n", name, label, value, count);
}

static void push_metrics(cc_port_t *port, bson_string_t *out)
{
    const cc_metrics_t *m = &port->metrics;
    metric(out, "changecast_subscribers", "gauge", "Open subscriber connections.");
    sample(out, "changecast_subscribers", "transport", "sse",
           (double)port->conns.count[CC_CONN_SSE]);
    sample(out, "changecast_subscribers", "transport", "ws", (double)port->conns.count[CC_CONN_WS]);
    single(out, "changecast_events_captured_total", "counter", "Change events read from MongoDB.",
           (double)m->events_captured);
    single(out, "changecast_events_delivered_total", "counter",
           "Change events queued to subscribers.", (double)m->events_delivered);
    metric(out, "changecast_drops_total", "counter", "Subscriber connections dropped.");
    sample(out, "changecast_drops_total", "reason", "slow_consumer",
           (double)m->drops_slow_consumer);
    metric(out, "changecast_paused_total", "counter",
           "Live subscriptions paused because changecast fell behind while their socket still "
           "drained (they continue from the ring).");
    sample(out, "changecast_paused_total", "reason", "server_behind",
           (double)m->paused_server_behind);
    single(out, "changecast_flush_window_seconds", "gauge",
           "The flush window now: push.flush_ms, grown up to push.max_flush_ms while the push "
           "thread is busy.",
           (double)m->flush_window_ms / 1000.0);
    single(out, "changecast_output_queues", "gauge",
           "Connections holding an output queue now (idle ones hold none).",
           (double)port->conns.queues);
    metric(out, "changecast_socket_writes_total", "counter",
           "Writes to subscriber sockets, and those the socket did not take whole.");
    sample(out, "changecast_socket_writes_total", "result", "whole",
           (double)(m->writes - m->partial_writes));
    sample(out, "changecast_socket_writes_total", "result", "partial", (double)m->partial_writes);
    metric(out, "changecast_compressed_connections_total", "counter",
           "Connections that agreed to compression: WebSocket permessage-deflate, SSE gzip.");
    sample(out, "changecast_compressed_connections_total", "transport", "ws",
           (double)m->compressed_ws);
    sample(out, "changecast_compressed_connections_total", "transport", "sse",
           (double)m->compressed_sse);
    single(out, "changecast_compressions_total", "counter",
           "Shared buffers compressed: once each, however many subscribers send them.",
           (double)m->compressions);
    metric(out, "changecast_resets_total", "counter", "Resets sent to subscribers.");
    const struct {
        const char *reason;
        uint64_t count;
    } resets[] = {{"history_lost", m->resets_history_lost},
                  {"capture_restarted", m->resets_capture_restarted},
                  {"too_many_pending", m->resets_too_many_pending},
                  {"server_behind", m->resets_server_behind}};
    for (size_t i = 0; i < sizeof resets / sizeof resets[0]; i++) {
        sample(out, "changecast_resets_total", "reason", resets[i].reason, (double)resets[i].count);
    }
    metric(out, "changecast_snapshots_total", "counter", "Live-query snapshots sent or refused.");
    sample(out, "changecast_snapshots_total", "result", "served", (double)m->snapshots_served);
    sample(out, "changecast_snapshots_total", "result", "refused", (double)m->snapshots_refused);
    single(out, "changecast_pending_docs", "gauge",
           "Document states waiting for format=docs clients.", (double)(pending_docs(port)));
    single(out, "changecast_transactions_total", "counter", "Transactions delivered as one piece.",
           (double)m->transactions_grouped);
    single(out, "changecast_catchups_total", "counter", "Private catch-up streams opened.",
           (double)m->catchups_started);
    single(out, "changecast_subscription_checks_total", "counter",
           "Live events offered to subscriptions (candidates from the namespace and _id index).",
           (double)m->subscription_checks);
    single(out, "changecast_requests_rejected_total", "counter",
           "Push requests answered with an error.", (double)m->requests_rejected);
    metric(out, "changecast_refusals_total", "counter",
           "Requests, subscriptions and messages refused, by reason.");
    for (size_t i = 0; i < CC_REFUSAL_COUNT; i++) {
        sample(out, "changecast_refusals_total", "reason", cc_refusal_name((cc_refusal_t)i),
               (double)m->refusals[i]);
    }
    single(out, "changecast_expired_streams_total", "counter",
           "Streams ended because their token expired.", (double)m->expired_streams);
}

static void capture_metrics(cc_port_t *port, bson_string_t *out)
{
    const cc_metrics_t *m = &port->metrics;
    single(out, "changecast_ring_events", "gauge", "Events held for reconnecting subscribers.",
           (double)(cc_ring_count(port->fanout.ring)));
    single(out, "changecast_ring_bytes", "gauge", "Bytes those events take.",
           (double)(cc_ring_bytes(port->fanout.ring)));
    int64_t lag = cc_fanout_capture_lag_ms(&port->fanout);
    single(out, "changecast_capture_lag_seconds", "gauge",
           "How far capture may be behind the deployment: the time since it last had read "
           "everything (an empty batch), or since the clusterTime of its last event, whichever "
           "is less.",
           lag > 0 ? (double)lag / 1000.0 : 0.0);
    single(out, "changecast_capture_up", "gauge", "Whether the capture stream is live.",
           (double)(port->fanout.capture_state == CC_CAPTURE_LIVE));
    metric(out, "changecast_write_to_delivery_seconds", "histogram",
           "From the wire proxy forwarding a write's reply to its change being queued for "
           "subscribers.");
    for (size_t i = 0; i < CC_WRITE_LATENCY_BUCKETS; i++) {
        bson_string_append_printf(out,
                                  "changecast_write_to_delivery_seconds_bucket{le=\"%g\"} %llu\n",
                                  cc_write_latency_bounds_ms[i] / 1000.0,
                                  (unsigned long long)m->write_latency_buckets[i]);
    }
    bson_string_append_printf(out,
                              "changecast_write_to_delivery_seconds_bucket{le=\"+Inf\"} %llu\n"
                              "changecast_write_to_delivery_seconds_sum %.6f\n"
                              "changecast_write_to_delivery_seconds_count %llu\n",
                              (unsigned long long)m->write_latency_count, m->write_latency_sum_s,
                              (unsigned long long)m->write_latency_count);
}

static void wire_metrics(cc_port_t *port, bson_string_t *out)
{
    pthread_mutex_lock(&port->wire_stats_lock);
    cc_wire_stats_t w = port->wire_stats;
    pthread_mutex_unlock(&port->wire_stats_lock);
    single(out, "changecast_wire_connections", "gauge",
           "Application connections to the wire proxy.", (double)w.connections);
    single(out, "changecast_wire_upstream_connections", "gauge",
           "Connections to MongoDB the wire proxy holds for them (opened once a client's first "
           "message has arrived).",
           (double)w.upstream_connections);
    metric(out, "changecast_wire_bytes_forwarded_total", "counter",
           "Bytes the wire proxy forwarded.");
    sample(out, "changecast_wire_bytes_forwarded_total", "direction", "upstream",
           (double)w.bytes_to_upstream);
    sample(out, "changecast_wire_bytes_forwarded_total", "direction", "client",
           (double)w.bytes_to_clients);
    metric(out, "changecast_wire_refused_total", "counter",
           "Application connections closed on accept, by the limit they met.");
    sample(out, "changecast_wire_refused_total", "reason", "max_connections",
           (double)w.refused_max_connections);
    sample(out, "changecast_wire_refused_total", "reason", "max_connections_per_ip",
           (double)w.refused_max_connections_per_ip);
    metric(out, "changecast_wire_timeouts_total", "counter",
           "Application connections closed because a message did not arrive whole in time.");
    sample(out, "changecast_wire_timeouts_total", "reason", "handshake",
           (double)w.handshake_timeouts);
    sample(out, "changecast_wire_timeouts_total", "reason", "message", (double)w.message_timeouts);
}

/* Prometheus text exposition format 0.0.4. */
static int serve_metrics(cc_port_t *port, struct lws *wsi)
{
    bson_string_t *body = bson_string_new(NULL);
    push_metrics(port, body);
    capture_metrics(port, body);
    wire_metrics(port, body);
    int rc = cc_http_reply(port, wsi, 200, "text/plain; version=0.0.4", body->str);
    bson_string_free(body, true);
    return rc;
}

/* The exposed namespaces, for pickers such as the demo page's. */
static int serve_namespaces(cc_port_t *port, struct lws *wsi)
{
    bson_t doc = BSON_INITIALIZER, list;
    BSON_APPEND_ARRAY_BEGIN(&doc, "namespaces", &list);
    for (size_t i = 0; i < port->expose.count; i++) {
        const cc_ns_pattern_t *p = &port->expose.patterns[i];
        char key[24], name[512];
        snprintf(key, sizeof key, "%zu", i);
        snprintf(name, sizeof name, "%s.%s", p->db, p->coll ? p->coll : "*");
        BSON_APPEND_UTF8(&list, key, name);
    }
    bson_append_array_end(&doc, &list);
    return reply_json(port, wsi, 200, &doc);
}

/* Embedded files; the demo page's only with push.demo = on. */
static int serve_asset(cc_port_t *port, struct lws *wsi, const char *path)
{
    for (const cc_asset_t *asset = cc_assets; asset->path; asset++) {
        if (strcmp(asset->path, path) != 0) {
            continue;
        }
        if (strncmp(path, "/v1/", 4) != 0 && !port->options.demo) {
            break;
        }
        char type[64];
        snprintf(type, sizeof type, "%s; charset=utf-8", asset->content_type);
        return cc_http_reply_bytes(port, wsi, 200, type, (const char *)asset->data, asset->len);
    }
    return cc_http_error(port, wsi, 404, "not_found", "no such endpoint");
}

static int cc_http_serve(cc_port_t *port, struct lws *wsi, const char *path)
{
    if (strcmp(path, "/healthz") == 0) {
        return serve_health(port, wsi);
    }
    if (strcmp(path, "/metrics") == 0) {
        return serve_metrics(port, wsi);
    }
    if (strcmp(path, "/v1/events") == 0) {
        return cc_sse_open(port, wsi);
    }
    if (strcmp(path, "/v1/namespaces") == 0) {
        return serve_namespaces(port, wsi);
    }
    return serve_asset(port, wsi, path);
}

static cc_port_t *port_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

void cc_port_release_conn(cc_port_t *port, cc_conn_t *conn)
{
    cc_sub_t *sub;
    while ((sub = TAILQ_FIRST(&conn->subs))) {
        TAILQ_REMOVE(&conn->subs, sub, conn_link);
        cc_fanout_stop(&port->fanout, sub);
        cc_sub_free(sub);
    }
    if (conn->kind == CC_CONN_SSE) {
        cc_hangup_unwatch(port, conn);
    }
    cc_access_release(port, conn);
    cc_grant_destroy(conn->grant);
    cc_conn_free(conn);
}

void cc_port_release_socket(cc_port_t *port, struct lws *wsi)
{
    cc_conn_t *conn = lws_get_opaque_user_data(wsi);
    if (conn) {
        lws_set_opaque_user_data(wsi, NULL);
        cc_port_release_conn(port, conn);
    }
}

int cc_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    cc_port_t *port = port_of(wsi);
    cc_conn_t *conn = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        /* Answers close their connection; should lws still bring another
         * request on it, the first one's state goes first. */
        cc_port_release_socket(port, wsi);
        if (!lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI)) {
            return cc_http_error(port, wsi, 405, "method_not_allowed",
                                 "the push port answers GET only");
        }
        return cc_http_serve(port, wsi, (const char *)in);
    case LWS_CALLBACK_HTTP_BODY:
        /* No endpoint takes a body; refusing it also keeps pipelined bodies
         * (which lws 4.1 mishandles) away. */
        return -1;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (!conn) {
            return 0;
        }
        if (conn->kind == CC_CONN_SSE) {
            return cc_sse_writable(conn);
        }
        if (conn->state == CC_CONN_ANSWERING) {
            cc_conn_write_answer(conn);
        }
        return -1; /* answered: the connection closes */
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        cc_port_release_socket(port, wsi);
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* A WebSocket upgrade without our subprotocol lands here. */
        return 1;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
