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
static int reply_json(cc_port_t *port, struct lws *wsi, cc_conn_t **slot, unsigned status,
                      bson_t *doc)
{
    char *json = cc_json_or_placeholder(doc, NULL);
    int rc = cc_http_reply(port, wsi, slot, status, "application/json", json);
    bson_free(json);
    bson_destroy(doc);
    return rc;
}

static int serve_health(cc_port_t *port, struct lws *wsi, cc_conn_t **slot)
{
    if (port->fanout.capture_state == CC_CAPTURE_LIVE) {
        return cc_http_reply(port, wsi, slot, 200, "application/json", "{\"status\":\"ok\"}");
    }
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "status", "unavailable");
    BSON_APPEND_UTF8(&doc, "reason",
                     port->fanout.capture_state == CC_CAPTURE_STARTING
                         ? "the capture stream is starting"
                         : port->fanout.capture_reason);
    return reply_json(port, wsi, slot, 503, &doc);
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
            total += sub->pending ? cc_pending_count(sub->pending) : 0;
        }
    }
    return total;
}

/* Prometheus text exposition format 0.0.4. */
static int serve_metrics(cc_port_t *port, struct lws *wsi, cc_conn_t **slot)
{
    const cc_metrics_t *m = &port->metrics;
    double lag = 0;
    if (m->last_cluster_time > 0) {
        lag = (double)time(NULL) - m->last_cluster_time;
    }
    char body[12288];
    snprintf(
        body, sizeof body,
        "# HELP changecast_subscribers Open subscriber connections.\n"
        "# TYPE changecast_subscribers gauge\n"
        "changecast_subscribers{transport=\"sse\"} %zu\n"
        "changecast_subscribers{transport=\"ws\"} %zu\n"
        "# HELP changecast_events_captured_total Change events read from MongoDB.\n"
        "# TYPE changecast_events_captured_total counter\n"
        "changecast_events_captured_total %llu\n"
        "# HELP changecast_events_delivered_total Change events queued to subscribers.\n"
        "# TYPE changecast_events_delivered_total counter\n"
        "changecast_events_delivered_total %llu\n"
        "# HELP changecast_drops_total Subscriber connections dropped.\n"
        "# TYPE changecast_drops_total counter\n"
        "changecast_drops_total{reason=\"slow_consumer\"} %llu\n"
        "# HELP changecast_paused_total Live subscriptions paused because changecast fell behind "
        "while their socket still drained (they continue from the ring).\n"
        "# TYPE changecast_paused_total counter\n"
        "changecast_paused_total{reason=\"server_behind\"} %llu\n"
        "# HELP changecast_output_queues Connections holding an output queue now (idle ones "
        "hold none).\n"
        "# TYPE changecast_output_queues gauge\n"
        "changecast_output_queues %zu\n"
        "# HELP changecast_socket_writes_total Writes to subscriber sockets, and those the "
        "socket did not take whole.\n"
        "# TYPE changecast_socket_writes_total counter\n"
        "changecast_socket_writes_total{result=\"whole\"} %llu\n"
        "changecast_socket_writes_total{result=\"partial\"} %llu\n"
        "# HELP changecast_resets_total Resets sent to subscribers.\n"
        "# TYPE changecast_resets_total counter\n"
        "changecast_resets_total{reason=\"history_lost\"} %llu\n"
        "changecast_resets_total{reason=\"capture_restarted\"} %llu\n"
        "changecast_resets_total{reason=\"too_many_pending\"} %llu\n"
        "changecast_resets_total{reason=\"server_behind\"} %llu\n"
        "# HELP changecast_snapshots_total Live-query snapshots sent or refused.\n"
        "# TYPE changecast_snapshots_total counter\n"
        "changecast_snapshots_total{result=\"served\"} %llu\n"
        "changecast_snapshots_total{result=\"refused\"} %llu\n"
        "# HELP changecast_pending_docs Document states waiting for format=docs clients.\n"
        "# TYPE changecast_pending_docs gauge\n"
        "changecast_pending_docs %zu\n"
        "# HELP changecast_transactions_total Transactions delivered as one piece.\n"
        "# TYPE changecast_transactions_total counter\n"
        "changecast_transactions_total %llu\n"
        "# HELP changecast_catchups_total Private catch-up streams opened.\n"
        "# TYPE changecast_catchups_total counter\n"
        "changecast_catchups_total %llu\n"
        "# HELP changecast_subscription_checks_total Live events offered to subscriptions "
        "(candidates from the namespace and _id index).\n"
        "# TYPE changecast_subscription_checks_total counter\n"
        "changecast_subscription_checks_total %llu\n"
        "# HELP changecast_requests_rejected_total Push requests answered with an error.\n"
        "# TYPE changecast_requests_rejected_total counter\n"
        "changecast_requests_rejected_total %llu\n"
        "# HELP changecast_ring_events Events held for reconnecting subscribers.\n"
        "# TYPE changecast_ring_events gauge\n"
        "changecast_ring_events %zu\n"
        "# HELP changecast_ring_bytes Bytes those events take.\n"
        "# TYPE changecast_ring_bytes gauge\n"
        "changecast_ring_bytes %zu\n"
        "# HELP changecast_capture_lag_seconds Now minus the clusterTime of the last event.\n"
        "# TYPE changecast_capture_lag_seconds gauge\n"
        "changecast_capture_lag_seconds %.0f\n"
        "# HELP changecast_capture_up Whether the capture stream is live.\n"
        "# TYPE changecast_capture_up gauge\n"
        "changecast_capture_up %d\n"
        "# HELP changecast_wire_connections Application connections to the wire proxy.\n"
        "# TYPE changecast_wire_connections gauge\n"
        "changecast_wire_connections %lld\n"
        "# HELP changecast_wire_bytes_forwarded_total Bytes the wire proxy forwarded.\n"
        "# TYPE changecast_wire_bytes_forwarded_total counter\n"
        "changecast_wire_bytes_forwarded_total{direction=\"upstream\"} %llu\n"
        "changecast_wire_bytes_forwarded_total{direction=\"client\"} %llu\n",
        port->conns.count[CC_CONN_SSE], port->conns.count[CC_CONN_WS],
        (unsigned long long)m->events_captured, (unsigned long long)m->events_delivered,
        (unsigned long long)m->drops_slow_consumer, (unsigned long long)m->paused_server_behind,
        port->conns.queues, (unsigned long long)(m->writes - m->partial_writes),
        (unsigned long long)m->partial_writes, (unsigned long long)m->resets_history_lost,
        (unsigned long long)m->resets_capture_restarted,
        (unsigned long long)m->resets_too_many_pending, (unsigned long long)m->resets_server_behind,
        (unsigned long long)m->snapshots_served, (unsigned long long)m->snapshots_refused,
        pending_docs(port), (unsigned long long)m->transactions_grouped,
        (unsigned long long)m->catchups_started, (unsigned long long)m->subscription_checks,
        (unsigned long long)m->requests_rejected, cc_ring_count(port->fanout.ring),
        cc_ring_bytes(port->fanout.ring), lag, port->fanout.capture_state == CC_CAPTURE_LIVE,
        (long long)atomic_load(&port->wire_connections),
        (unsigned long long)atomic_load(&port->wire_bytes_to_upstream),
        (unsigned long long)atomic_load(&port->wire_bytes_to_clients));
    size_t used = strlen(body);
    used += (size_t)snprintf(body + used, sizeof body - used,
                             "# HELP changecast_refusals_total Requests, subscriptions and "
                             "messages refused, by reason.\n"
                             "# TYPE changecast_refusals_total counter\n");
    for (size_t i = 0; i < CC_REFUSAL_COUNT && used < sizeof body; i++) {
        used += (size_t)snprintf(
            body + used, sizeof body - used, "changecast_refusals_total{reason=\"%s\"} %llu\n",
            cc_refusal_name((cc_refusal_t)i), (unsigned long long)m->refusals[i]);
    }
    if (used < sizeof body) {
        used += (size_t)snprintf(body + used, sizeof body - used,
                                 "# HELP changecast_expired_streams_total Streams ended because "
                                 "their token expired.\n"
                                 "# TYPE changecast_expired_streams_total counter\n"
                                 "changecast_expired_streams_total %llu\n",
                                 (unsigned long long)m->expired_streams);
    }
    used += (size_t)snprintf(body + used, sizeof body - used,
                             "# HELP changecast_write_to_delivery_seconds From the wire proxy "
                             "forwarding a write's reply to its change being queued for "
                             "subscribers.\n"
                             "# TYPE changecast_write_to_delivery_seconds histogram\n");
    for (size_t i = 0; i < CC_WRITE_LATENCY_BUCKETS && used < sizeof body; i++) {
        used += (size_t)snprintf(body + used, sizeof body - used,
                                 "changecast_write_to_delivery_seconds_bucket{le=\"%g\"} %llu\n",
                                 cc_write_latency_bounds_ms[i] / 1000.0,
                                 (unsigned long long)m->write_latency_buckets[i]);
    }
    if (used < sizeof body) {
        snprintf(body + used, sizeof body - used,
                 "changecast_write_to_delivery_seconds_bucket{le=\"+Inf\"} %llu\n"
                 "changecast_write_to_delivery_seconds_sum %.6f\n"
                 "changecast_write_to_delivery_seconds_count %llu\n",
                 (unsigned long long)m->write_latency_count, m->write_latency_sum_s,
                 (unsigned long long)m->write_latency_count);
    }
    return cc_http_reply(port, wsi, slot, 200, "text/plain; version=0.0.4", body);
}

/* The exposed namespaces, for pickers such as the demo page's. */
static int serve_namespaces(cc_port_t *port, struct lws *wsi, cc_conn_t **slot)
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
    return reply_json(port, wsi, slot, 200, &doc);
}

/* Embedded files; the demo page's only with push.demo = on. */
static int serve_asset(cc_port_t *port, struct lws *wsi, const char *path, cc_conn_t **slot)
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
        return cc_http_reply_bytes(port, wsi, slot, 200, type, (const char *)asset->data,
                                   asset->len);
    }
    return cc_http_error(port, wsi, slot, 404, "not_found", "no such endpoint");
}

static int cc_http_serve(cc_port_t *port, struct lws *wsi, const char *path, cc_conn_t **slot)
{
    if (strcmp(path, "/healthz") == 0) {
        return serve_health(port, wsi, slot);
    }
    if (strcmp(path, "/metrics") == 0) {
        return serve_metrics(port, wsi, slot);
    }
    if (strcmp(path, "/v1/events") == 0) {
        return cc_sse_open(port, wsi, slot);
    }
    if (strcmp(path, "/v1/namespaces") == 0) {
        return serve_namespaces(port, wsi, slot);
    }
    return serve_asset(port, wsi, path, slot);
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

int cc_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    cc_port_t *port = port_of(wsi);
    cc_conn_t **slot = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (slot && *slot) {
            /* Answers close their connection; should lws still bring another
             * request on it, the first one's state goes first. */
            cc_port_release_conn(port, *slot);
            *slot = NULL;
        }
        if (!lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI)) {
            return cc_http_error(port, wsi, slot, 405, "method_not_allowed",
                                 "the push port answers GET only");
        }
        return cc_http_serve(port, wsi, (const char *)in, slot);
    case LWS_CALLBACK_HTTP_BODY:
        /* No endpoint takes a body; refusing it also keeps pipelined bodies
         * (which lws 4.1 mishandles) away. */
        return -1;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        cc_conn_t *conn = *slot;
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
        if (slot && *slot) {
            cc_port_release_conn(port, *slot);
            *slot = NULL;
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* A WebSocket upgrade without our subprotocol lands here. */
        return 1;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
