/* SPDX-License-Identifier: Apache-2.0 */
/* Who gets in (docs/security.md): the token of a request (Authorization:
 * Bearer, the access_token parameter, the configured cookie) verified into
 * a grant by src/auth, the Origin allow-list that keeps other sites from
 * riding a browser's cookies, connection limits in total and per client
 * address, and the count of every refusal for /metrics. */
#include "changecast/log.h"
#include "push_internal.h"

#include <arpa/inet.h>
#include <string.h>
#include <time.h>

static const char *const refusal_names[CC_REFUSAL_COUNT] = {
    "token_missing",
    "token_invalid",
    "token_expired",
    "token_not_yet_valid",
    "claim_missing",
    "claim_invalid",
    "not_granted",
    "field_not_granted",
    "origin_not_allowed",
    "too_many_connections",
    "too_many_connections_per_ip",
    "filter_too_large",
    "filter_too_deep",
    "too_many_subscriptions",
    "message_too_large",
};

const char *cc_refusal_name(cc_refusal_t refusal)
{
    return refusal_names[refusal];
}

void cc_access_refused(struct cc_push *push, cc_refusal_t refusal)
{
    push->metrics.refusals[refusal]++;
}

cc_refusal_t cc_refusal_from_auth(const bson_error_t *error)
{
    switch ((cc_auth_code_t)error->code) {
    case CC_AUTH_TOKEN_MISSING:
        return CC_REFUSAL_TOKEN_MISSING;
    case CC_AUTH_TOKEN_EXPIRED:
        return CC_REFUSAL_TOKEN_EXPIRED;
    case CC_AUTH_TOKEN_NOT_YET_VALID:
        return CC_REFUSAL_TOKEN_NOT_YET_VALID;
    case CC_AUTH_CLAIM_MISSING:
        return CC_REFUSAL_CLAIM_MISSING;
    case CC_AUTH_CLAIM_INVALID:
        return CC_REFUSAL_CLAIM_INVALID;
    case CC_AUTH_NOT_GRANTED:
        return CC_REFUSAL_NOT_GRANTED;
    case CC_AUTH_FIELD_NOT_GRANTED:
        return CC_REFUSAL_FIELD_NOT_GRANTED;
    default:
        return CC_REFUSAL_TOKEN_INVALID;
    }
}

/* ---- origins ---- */

static void parse_origins(struct cc_push *push, const char *list)
{
    char *copy = bson_strdup(list ? list : ""), *save = NULL;
    for (char *item = strtok_r(copy, ", ", &save); item; item = strtok_r(NULL, ", ", &save)) {
        size_t len = strlen(item);
        while (len && item[len - 1] == '/') {
            item[--len] = '\0'; /* "https://a.example/" names the same origin */
        }
        if (strcmp(item, "*") == 0) {
            push->any_origin = true;
            continue;
        }
        push->origins = bson_realloc(push->origins, (push->origin_count + 1) * sizeof(char *));
        push->origins[push->origin_count++] = bson_strdup(item);
    }
    bson_free(copy);
}

/* The request's own origin: the scheme of this port and the Host asked
 * for. A page served by the push port (the demo) is same-origin. */
static bool is_own_origin(const struct cc_push *push, struct lws *wsi, const char *origin)
{
    char host[256];
    if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0) {
        return false;
    }
    const char *scheme = push->tls ? "https://" : "http://";
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

cc_origin_t cc_access_origin(const struct cc_push *push, struct lws *wsi, char *origin, size_t size)
{
    /* Without tokens, the loopback port is the only protection: a page that
     * rebinds its own name to 127.0.0.1 must not be served (DNS
     * rebinding), so the request must name a loopback host. */
    char host[256];
    if (cc_auth_mode(push->auth) == CC_AUTH_MODE_NONE && !push->options.auth_public &&
        (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0 || !loopback_host(host))) {
        origin[0] = '\0';
        return CC_ORIGIN_REFUSED;
    }
    if (lws_hdr_copy(wsi, origin, (int)size, WSI_TOKEN_ORIGIN) <= 0) {
        origin[0] = '\0';
        return CC_ORIGIN_NONE; /* not a browser, or same-origin GET */
    }
    if (is_own_origin(push, wsi, origin)) {
        return CC_ORIGIN_SAME;
    }
    if (push->any_origin) {
        return CC_ORIGIN_ALLOWED;
    }
    for (size_t i = 0; i < push->origin_count; i++) {
        if (strcmp(push->origins[i], origin) == 0) {
            return CC_ORIGIN_ALLOWED;
        }
    }
    return CC_ORIGIN_REFUSED;
}

/* ---- tokens ---- */

bool cc_access_token(const struct cc_push *push, struct lws *wsi, char *out, size_t size)
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
    const char *cookie = cc_auth_cookie_name(push->auth);
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

cc_grant_t *cc_access_verify(struct cc_push *push, const char *token, bson_error_t *error)
{
    cc_grant_t *grant = NULL;
    if (!cc_auth_verify(push->auth, token, (int64_t)time(NULL), &grant, error)) {
        cc_access_refused(push, cc_refusal_from_auth(error));
        return NULL;
    }
    return grant;
}

/* ---- connections per client address ---- */

typedef struct peer_count {
    char ip[64];
    size_t count;
    struct peer_count *next;
} peer_count_t;

static size_t peer_bucket(const char *ip)
{
    size_t hash = 5381;
    for (const char *p = ip; *p; p++) {
        hash = hash * 33 + (unsigned char)*p;
    }
    return hash % CC_PEER_BUCKETS;
}

static peer_count_t **find_peer(struct cc_push *push, const char *ip)
{
    peer_count_t **slot = &push->peers[peer_bucket(ip)];
    while (*slot && strcmp((*slot)->ip, ip) != 0) {
        slot = &(*slot)->next;
    }
    return slot;
}

bool cc_access_admit(struct cc_push *push, const char *ip, cc_refusal_t *refusal)
{
    if (push->sse_count + push->ws_count >= (size_t)push->options.max_connections) {
        *refusal = CC_REFUSAL_TOO_MANY_CONNECTIONS;
        cc_access_refused(push, *refusal);
        return false;
    }
    peer_count_t **slot = find_peer(push, ip);
    if (*slot && (*slot)->count >= (size_t)push->options.max_connections_per_ip) {
        *refusal = CC_REFUSAL_TOO_MANY_CONNECTIONS_PER_IP;
        cc_access_refused(push, *refusal);
        return false;
    }
    if (!*slot) {
        *slot = bson_malloc0(sizeof **slot);
        bson_strncpy((*slot)->ip, ip, sizeof(*slot)->ip);
    }
    (*slot)->count++;
    return true;
}

void cc_access_release(struct cc_push *push, cc_conn_t *conn)
{
    if (conn->admitted) {
        conn->admitted = false;
        cc_access_release_ip(push, conn->peer_ip);
    }
}

void cc_access_release_ip(struct cc_push *push, const char *ip)
{
    peer_count_t **slot = find_peer(push, ip);
    if (*slot && --(*slot)->count == 0) {
        peer_count_t *gone = *slot;
        *slot = gone->next;
        bson_free(gone);
    }
}

/* ---- life cycle ---- */

bool cc_access_init(struct cc_push *push, bson_error_t *error)
{
    push->auth = cc_auth_new(&push->options.auth, error);
    if (!push->auth) {
        return false;
    }
    parse_origins(push, push->options.allowed_origins);
    return true;
}

void cc_access_cleanup(struct cc_push *push)
{
    cc_auth_destroy(push->auth);
    push->auth = NULL;
    for (size_t i = 0; i < push->origin_count; i++) {
        bson_free(push->origins[i]);
    }
    bson_free(push->origins);
    push->origins = NULL;
    push->origin_count = 0;
    for (size_t i = 0; i < CC_PEER_BUCKETS; i++) {
        while (push->peers[i]) {
            peer_count_t *next = push->peers[i]->next;
            bson_free(push->peers[i]);
            push->peers[i] = next;
        }
    }
}

/* Streams end when their token does: SSE with event: error, WebSocket with
 * close code 4001, unless a fresh token came first. */
/* How long a WebSocket may stay without a token: it holds a connection
 * slot, so it must authenticate soon or go. */
#define CC_AUTH_DEADLINE_US (10 * 1000 * 1000)

void cc_access_expire(struct cc_push *push)
{
    int64_t now = (int64_t)time(NULL), now_us = bson_get_monotonic_time();
    cc_conn_t *conn;
    TAILQ_FOREACH(conn, &push->conns, link)
    {
        if (conn->kind == CC_CONN_WS && !conn->grant && !conn->closing &&
            now_us - conn->opened_us > CC_AUTH_DEADLINE_US) {
            cc_access_refused(push, CC_REFUSAL_TOKEN_MISSING);
            cc_conn_drop(conn, 4001, "token_missing");
            continue;
        }
        int64_t expires = conn->grant ? cc_grant_expires_at(conn->grant) : 0;
        if (expires) {
            expires += push->options.auth.leeway_s; /* as verification allows */
        }
        if (conn->closing || conn->status_pending || expires == 0 || now < expires) {
            continue; /* (a stream still waiting for its snapshot ends once it has it) */
        }
        cc_info("push_conn=%llu event=token_expired", (unsigned long long)conn->id);
        push->metrics.expired_streams++;
        if (conn->kind == CC_CONN_SSE) {
            static const char text[] = "event: error\ndata: {\"code\":\"token_expired\","
                                       "\"message\":\"the token expired: reconnect with a fresh "
                                       "one\"}\n\n";
            cc_conn_append(conn, text, sizeof text - 1);
            cc_conn_drop(conn, 0, "token_expired");
        } else {
            cc_conn_drop(conn, 4001, "token_expired");
        }
    }
}

/* ---- subscriptions ---- */

static size_t depth_of(const bson_t *doc, size_t limit)
{
    bson_iter_t iter;
    size_t deepest = 0;
    if (limit == 0 || !bson_iter_init(&iter, doc)) {
        return 1;
    }
    while (bson_iter_next(&iter)) {
        if (BSON_ITER_HOLDS_DOCUMENT(&iter) || BSON_ITER_HOLDS_ARRAY(&iter)) {
            uint32_t len;
            const uint8_t *data;
            bson_t child;
            if (BSON_ITER_HOLDS_DOCUMENT(&iter)) {
                bson_iter_document(&iter, &len, &data);
            } else {
                bson_iter_array(&iter, &len, &data);
            }
            if (bson_init_static(&child, data, len)) {
                size_t depth = depth_of(&child, limit - 1);
                deepest = depth > deepest ? depth : deepest;
            }
        }
    }
    return deepest + 1;
}

bool cc_access_check_filter_shape(struct cc_push *push, const bson_t *filter, size_t sent_bytes,
                                  cc_refusal_t *refusal, bson_error_t *error)
{
    if (sent_bytes > (size_t)push->options.max_filter_bytes) {
        *refusal = CC_REFUSAL_FILTER_TOO_LARGE;
        bson_set_error(error, 0, 0,
                       "the filter is %zu bytes, more than push.max_filter_bytes (%lld)",
                       sent_bytes, (long long)push->options.max_filter_bytes);
    } else if (filter && depth_of(filter, (size_t)push->options.max_filter_depth + 1) >
                             (size_t)push->options.max_filter_depth) {
        *refusal = CC_REFUSAL_FILTER_TOO_DEEP;
        bson_set_error(error, 0, 0, "the filter nests deeper than push.max_filter_depth (%lld)",
                       (long long)push->options.max_filter_depth);
    } else {
        return true;
    }
    cc_access_refused(push, *refusal);
    return false;
}

static bool refuse(struct cc_push *push, cc_refusal_t why, cc_refusal_t *refusal)
{
    *refusal = why;
    cc_access_refused(push, why);
    return false;
}

int cc_refusal_status(cc_refusal_t refusal)
{
    switch (refusal) {
    case CC_REFUSAL_TOKEN_MISSING:
    case CC_REFUSAL_TOKEN_INVALID:
    case CC_REFUSAL_TOKEN_EXPIRED:
    case CC_REFUSAL_TOKEN_NOT_YET_VALID:
        return 401;
    case CC_REFUSAL_TOO_MANY_CONNECTIONS:
    case CC_REFUSAL_TOO_MANY_CONNECTIONS_PER_IP:
        return 429;
    case CC_REFUSAL_FILTER_TOO_LARGE:
    case CC_REFUSAL_FILTER_TOO_DEEP:
    case CC_REFUSAL_TOO_MANY_SUBSCRIPTIONS:
    case CC_REFUSAL_MESSAGE_TOO_LARGE:
        return 400;
    default:
        return 403;
    }
}

bool cc_access_check_sub(struct cc_push *push, const cc_grant_t *grant, cc_sub_t *sub,
                         cc_refusal_t *refusal, bson_error_t *error)
{
    if (!grant) {
        bson_set_error(error, 0, 0,
                       "no token: send {\"type\": \"auth\", \"token\": ...} first, or connect "
                       "with one");
        return refuse(push, CC_REFUSAL_TOKEN_MISSING, refusal);
    }
    for (size_t i = 0; i < sub->namespace_count; i++) {
        const cc_ns_pattern_t *ns = &sub->namespaces[i];
        if (!cc_grant_covers(grant, ns)) {
            bson_set_error(error, 0, 0, "the token does not grant %s.%s", ns->db,
                           ns->coll ? ns->coll : "*");
            return refuse(push, CC_REFUSAL_NOT_GRANTED, refusal);
        }
        /* Raw filters run on the projected event anyway; this says plainly
         * why a filter on a hidden field could never match. */
        const cc_scope_t *scope = cc_grant_scope(grant, ns->db, ns->coll);
        if (sub->query && !cc_scope_check_filter(scope, sub->query, !sub->live_query, error)) {
            return refuse(push, CC_REFUSAL_FIELD_NOT_GRANTED, refusal);
        }
        bson_iter_t key;
        if (sub->sort && bson_iter_init(&key, sub->sort)) {
            while (bson_iter_next(&key)) {
                if (!cc_scope_shows_path(scope, bson_iter_key(&key))) {
                    bson_set_error(error, 0, 0, "sort: the token does not show %s",
                                   bson_iter_key(&key));
                    return refuse(push, CC_REFUSAL_FIELD_NOT_GRANTED, refusal);
                }
            }
        }
    }
    if (sub->namespace_count == 1 && sub->namespaces[0].coll) {
        sub->scope = cc_grant_scope(grant, sub->namespaces[0].db, sub->namespaces[0].coll);
    }
    bson_destroy(sub->view_query);
    sub->view_query = NULL;
    sub->row_filtered = false;
    if (sub->live_query && cc_scope_row_filter(sub->scope)) {
        /* A live query's filter runs on whole documents: the claim's rows
         * are part of it, so no clause of the subscriber's can reach past. */
        bson_t combined;
        bson_error_t detail;
        cc_scope_combine_filter(sub->scope, sub->query, NULL, &combined);
        cc_filter_t *filter = cc_filter_compile(&combined, &detail);
        if (!filter) {
            bson_destroy(&combined);
            bson_set_error(error, 0, 0, "filter: %s", detail.message);
            return refuse(push, CC_REFUSAL_FIELD_NOT_GRANTED, refusal);
        }
        if (sub->filter) {
            cc_filter_destroy(sub->filter);
        }
        sub->filter = filter;
        bson_destroy(sub->view_query);
        sub->view_query = bson_copy(&combined);
        bson_destroy(&combined);
        sub->row_filtered = true;
    }
    return true;
}
