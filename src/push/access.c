/* SPDX-License-Identifier: Apache-2.0 */
/* Who gets in (docs/security.md): the token of a request (Authorization:
 * Bearer, the access_token parameter, the configured cookie) verified into
 * a grant by src/auth, the Origin allow-list that keeps other sites from
 * riding a browser's cookies, connection limits in total and per client
 * address, and the count of every refusal for /metrics. */
#include "changecast/log.h"
#include "port.h"

#include <arpa/inet.h>
#include <string.h>
#include <time.h>

/* ---- origins ---- */

static void parse_origins(cc_port_t *port, const char *list)
{
    char *copy = bson_strdup(list ? list : ""), *save = NULL;
    for (char *item = strtok_r(copy, ", ", &save); item; item = strtok_r(NULL, ", ", &save)) {
        size_t len = strlen(item);
        while (len && item[len - 1] == '/') {
            item[--len] = '\0'; /* "https://a.example/" names the same origin */
        }
        if (strcmp(item, "*") == 0) {
            port->any_origin = true;
            continue;
        }
        port->origins = bson_realloc(port->origins, (port->origin_count + 1) * sizeof(char *));
        port->origins[port->origin_count++] = bson_strdup(item);
    }
    bson_free(copy);
}

/* The request's own origin: the scheme of this port and the Host asked
 * for. A page served by the push port (the demo) is same-origin. */
static bool is_own_origin(const cc_port_t *port, struct lws *wsi, const char *origin)
{
    char host[256];
    if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0) {
        return false;
    }
    const char *scheme = port->tls ? "https://" : "http://";
    size_t scheme_len = strlen(scheme);
    return strncmp(origin, scheme, scheme_len) == 0 && strcmp(origin + scheme_len, host) == 0;
}

/* "localhost", "127.x.y.z" or "[::1]", with or without a port. */
static bool loopback_host(const char *host)
{
    if (strncmp(host, "localhost", 9) == 0 && (host[9] == '\0' || host[9] == ':')) {
        return true;
    }
    if (strncmp(host, "[::1]", 5) == 0 && (host[5] == '\0' || host[5] == ':')) {
        return true;
    }
    char address[64];
    bson_strncpy(address, host, sizeof address);
    address[strcspn(address, ":")] = '\0';
    struct in_addr v4;
    return inet_pton(AF_INET, address, &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

cc_origin_t cc_access_origin(const cc_port_t *port, struct lws *wsi, char *origin, size_t size)
{
    /* Without tokens, the loopback port is the only protection: a page that
     * rebinds its own name to 127.0.0.1 must not be served (DNS
     * rebinding), so the request must name a loopback host. */
    char host[256];
    if (cc_auth_mode(port->auth) == CC_AUTH_MODE_NONE && !port->options.auth_public &&
        (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0 || !loopback_host(host))) {
        origin[0] = '\0';
        return CC_ORIGIN_REFUSED;
    }
    if (lws_hdr_copy(wsi, origin, (int)size, WSI_TOKEN_ORIGIN) <= 0) {
        origin[0] = '\0';
        return CC_ORIGIN_NONE; /* not a browser, or same-origin GET */
    }
    if (is_own_origin(port, wsi, origin)) {
        return CC_ORIGIN_SAME;
    }
    return cc_access_origin_listed(port, origin) ? CC_ORIGIN_ALLOWED : CC_ORIGIN_REFUSED;
}

bool cc_access_origin_listed(const cc_port_t *port, const char *origin)
{
    if (port->any_origin) {
        return true;
    }
    for (size_t i = 0; i < port->origin_count; i++) {
        if (strcmp(port->origins[i], origin) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- tokens ---- */

bool cc_access_token(const cc_port_t *port, struct lws *wsi, char *out, size_t size)
{
    char header[CC_MAX_TOKEN_BYTES + 64];
    const char *token;
    size_t len;
    out[0] = '\0';
    if (lws_hdr_copy(wsi, header, sizeof header, WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
        cc_auth_bearer_token(header, &token, &len) && len < size) {
        memcpy(out, token, len);
        out[len] = '\0';
        return true;
    }
    /* lws copies "access_token=value" and points at the value. */
    const char *value = lws_get_urlarg_by_name(wsi, "access_token=", out, (int)size);
    if (value && *value) {
        memmove(out, value, strlen(value) + 1);
        return true;
    }
    out[0] = '\0';
    const char *cookie = cc_auth_cookie_name(port->auth);
    char cookies[8192];
    if (cookie && *cookie &&
        lws_hdr_copy(wsi, cookies, sizeof cookies, WSI_TOKEN_HTTP_COOKIE) > 0 &&
        cc_auth_cookie_find(cookies, cookie, &token, &len) && len < size) {
        memcpy(out, token, len);
        out[len] = '\0';
        return true;
    }
    return false;
}

cc_grant_t *cc_access_verify(cc_port_t *port, const char *token, bson_error_t *error)
{
    cc_grant_t *grant = NULL;
    if (!cc_auth_verify(port->auth, token, (int64_t)time(NULL), &grant, error)) {
        cc_refusal_count(&port->metrics, cc_refusal_from_auth(error));
        return NULL;
    }
    return grant;
}

/* ---- connections per client address ---- */

const char *cc_access_admit(cc_port_t *port, const char *ip, cc_refusal_t *refusal)
{
    if (port->conns.count[CC_CONN_SSE] + port->conns.count[CC_CONN_WS] >=
        (size_t)port->options.max_connections) {
        *refusal = CC_REFUSAL_TOO_MANY_CONNECTIONS;
        cc_refusal_count(&port->metrics, *refusal);
        return NULL;
    }
    const char *admitted = cc_peers_admit(port->peers, ip, port->options.max_connections_per_ip);
    if (!admitted) {
        *refusal = CC_REFUSAL_TOO_MANY_CONNECTIONS_PER_IP;
        cc_refusal_count(&port->metrics, *refusal);
    }
    return admitted;
}

void cc_access_release(cc_port_t *port, cc_conn_t *conn)
{
    if (conn->peer_ip) {
        const char *ip = conn->peer_ip;
        conn->peer_ip = NULL;
        cc_access_release_ip(port, ip);
    }
}

void cc_access_release_ip(cc_port_t *port, const char *ip)
{
    cc_peers_release(port->peers, ip);
}

/* ---- life cycle ---- */

bool cc_access_init(cc_port_t *port, bson_error_t *error)
{
    port->peers = cc_peers_new();
    port->auth = cc_auth_new(&port->options.auth, error);
    if (!port->auth) {
        return false;
    }
    parse_origins(port, port->options.allowed_origins);
    return true;
}

void cc_access_cleanup(cc_port_t *port)
{
    cc_auth_destroy(port->auth);
    port->auth = NULL;
    for (size_t i = 0; i < port->origin_count; i++) {
        bson_free(port->origins[i]);
    }
    bson_free(port->origins);
    port->origins = NULL;
    port->origin_count = 0;
    cc_peers_free(port->peers);
    port->peers = NULL;
}

/* Streams end when their token does: SSE with event: error, WebSocket with
 * close code 4001, unless a fresh token came first. */
/* How long a WebSocket may stay without a token: it holds a connection
 * slot, so it must authenticate soon or go. */
#define CC_AUTH_DEADLINE_US (10 * 1000 * 1000)

void cc_access_expire(cc_port_t *port)
{
    int64_t now = (int64_t)time(NULL), now_us = bson_get_monotonic_time();
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &port->conns.all, link)
    {
        if (conn->state == CC_CONN_CLOSING) {
            continue;
        }
        if (conn->kind == CC_CONN_WS && !conn->grant &&
            now_us - conn->opened_us > CC_AUTH_DEADLINE_US) {
            cc_refusal_count(&port->metrics, CC_REFUSAL_TOKEN_MISSING);
            cc_conn_close(conn, 4001, "token_missing");
            continue;
        }
        int64_t expires = conn->grant ? cc_grant_expires_at(conn->grant) : 0;
        if (expires) {
            expires += port->options.auth.leeway_s; /* as verification allows */
        }
        if (conn->state != CC_CONN_STREAMING || expires == 0 || now < expires) {
            continue; /* (a stream still waiting for its snapshot ends once it has it) */
        }
        cc_info("push_conn=%llu event=token_expired", (unsigned long long)conn->id);
        port->metrics.expired_streams++;
        if (conn->kind == CC_CONN_SSE) {
            static const char text[] = "event: error\ndata: {\"code\":\"token_expired\","
                                       "\"message\":\"the token expired: reconnect with a fresh "
                                       "one\"}\n\n";
            cc_conn_push(conn, NULL, cc_buf_copy(text, sizeof text - 1), 0);
            cc_conn_close(conn, 0, "token_expired");
        } else {
            cc_conn_close(conn, 4001, "token_expired");
        }
    }
}
