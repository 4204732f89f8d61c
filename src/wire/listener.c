/* SPDX-License-Identifier: Apache-2.0 */
/* The wire subsystem's front door: binds the client port, accepts within
 * max_connections, hands each socket to a new session, and drains on
 * shutdown. */
#include "changecast/log.h"
#include "wire_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

static void maybe_finish_drain(struct cc_wire *wire)
{
    if (wire->draining && wire->session_count == 0 && wire->drained) {
        void (*done)(void *) = wire->drained;
        wire->drained = NULL;
        cc_info("event=drained");
        done(wire->drained_arg);
    }
}

void cc_wire_session_gone(struct cc_wire *wire)
{
    wire->session_count--;
    maybe_finish_drain(wire);
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *peer,
                      int peer_len, void *arg)
{
    (void)listener;
    (void)peer_len;
    struct cc_wire *wire = arg;
    char ip[INET6_ADDRSTRLEN];
    cc_sockaddr_ip(peer, ip, sizeof ip);
    if (wire->session_count >= (size_t)wire->options.max_connections) {
        wire->stats.refused_max_connections++;
        cc_warn("event=connection_refused reason=max_connections peer=%s limit=%lld", ip,
                (long long)wire->options.max_connections);
        evutil_closesocket(fd);
        return;
    }
    if (!cc_peers_admit(wire->peers, ip, wire->options.max_connections_per_ip)) {
        /* One line per refusal would let a flood fill the log: every
         * hundredth, with the count. */
        if (wire->stats.refused_max_connections_per_ip++ % 100 == 0) {
            cc_warn("event=connection_refused reason=max_connections_per_ip peer=%s limit=%lld "
                    "refused_total=%llu",
                    ip, (long long)wire->options.max_connections_per_ip,
                    (unsigned long long)wire->stats.refused_max_connections_per_ip);
        }
        evutil_closesocket(fd);
        return;
    }
    cc_session_open(wire, fd, peer, ip);
}

static void on_accept_error(struct evconnlistener *listener, void *arg)
{
    (void)listener;
    (void)arg;
    /* EMFILE and friends: keep listening; the next accept may succeed once
     * connections close. */
    cc_error("event=accept_failed error=\"%s\"",
             evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static bool bind_listener(struct cc_wire *wire, bson_error_t *error)
{
    cc_hostport_t hp;
    if (!cc_hostport_parse(wire->options.listen, &hp, error)) {
        return false;
    }
    struct sockaddr_storage address;
    memset(&address, 0, sizeof address);
    int address_len;
    const char *host = strcmp(hp.host, "localhost") == 0 ? "127.0.0.1" : hp.host;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&address;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(hp.port);
        address_len = sizeof *in4;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(hp.port);
        address_len = sizeof *in6;
    } else {
        /* Resolving a name here would block the loop; listen addresses are IPs. */
        bson_set_error(error, 0, 0, "wire.listen: \"%s\" is not an IP address and port",
                       wire->options.listen);
        return false;
    }
    wire->listener =
        evconnlistener_new_bind(wire->base, on_accept, wire,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                1024, (struct sockaddr *)&address, address_len);
    if (!wire->listener) {
        bson_set_error(error, 0, 0, "wire.listen: cannot listen on %s: %s", wire->options.listen,
                       strerror(errno));
        return false;
    }
    evconnlistener_set_error_cb(wire->listener, on_accept_error);

    socklen_t bound_len = sizeof address;
    getsockname(evconnlistener_get_fd(wire->listener), (struct sockaddr *)&address, &bound_len);
    cc_sockaddr_format((struct sockaddr *)&address, wire->address, sizeof wire->address);
    return true;
}

static const char *keep(struct cc_wire *wire, size_t slot, const char *text)
{
    wire->strings[slot] = bson_strdup(text ? text : "");
    return wire->strings[slot];
}

static bool client_tls_enabled(const cc_wire_options_t *options)
{
    return options->tls_cert_file && *options->tls_cert_file;
}

cc_wire_t *cc_wire_new(struct event_base *base, const cc_wire_options_t *options,
                       cc_primary_t *primary, bson_error_t *error)
{
    struct cc_wire *wire = bson_malloc0(sizeof *wire);
    wire->base = base;
    wire->primary = primary;
    wire->options = *options;
    wire->options.listen = keep(wire, 0, options->listen);
    wire->options.tls_cert_file = keep(wire, 1, options->tls_cert_file);
    wire->options.tls_key_file = keep(wire, 2, options->tls_key_file);
    wire->options.tls_client_ca_file = keep(wire, 3, options->tls_client_ca_file);
    wire->options.upstream_tls_ca_file = keep(wire, 4, options->upstream_tls_ca_file);
    wire->options.upstream_tls_cert_key_file = keep(wire, 5, options->upstream_tls_cert_key_file);
    TAILQ_INIT(&wire->sessions);
    wire->up = (cc_session_up_t){.connect = cc_upstream_connect,
                                 .serve_waiting = cc_waiting_serve,
                                 .session_freed = cc_wire_session_gone};
    wire->peers = cc_peers_new();
    struct timeval handshake = cc_timeval_from_ms(options->handshake_timeout_ms);
    struct timeval message = cc_timeval_from_ms(options->message_timeout_ms);
    wire->handshake_timeout = event_base_init_common_timeout(base, &handshake);
    wire->message_timeout = event_base_init_common_timeout(base, &message);
    /* serviceId: one per instance, so drivers in load-balanced mode see
     * every connection to this changecast as the same service. */
    bson_oid_init(&wire->service_id, NULL);

    if (wire->options.write_clock && options->expose &&
        !cc_expose_parse(options->expose, &wire->expose, error)) {
        goto fail;
    }
    wire->options.expose = NULL; /* parsed; the text is not kept */
    if (client_tls_enabled(&wire->options) && !cc_wire_reload_tls(wire, error)) {
        goto fail;
    }
    if (!cc_upstream_init(wire, error) || !bind_listener(wire, error)) {
        goto fail;
    }
    return wire;
fail:
    cc_wire_free(wire);
    return NULL;
}

void cc_wire_stats(const cc_wire_t *wire, cc_wire_stats_t *out)
{
    *out = wire->stats;
    out->connections = (int64_t)wire->session_count;
}

const char *cc_wire_address(const cc_wire_t *wire)
{
    return wire->address;
}

bool cc_wire_reload_tls(cc_wire_t *wire, bson_error_t *error)
{
    if (!client_tls_enabled(&wire->options)) {
        return true;
    }
    SSL_CTX *context =
        cc_tls_server_context(wire->options.tls_cert_file, wire->options.tls_key_file,
                              wire->options.tls_client_ca_file, error);
    if (!context) {
        return false;
    }
    /* Sessions hold their own reference to the context they started with. */
    if (wire->client_tls) {
        SSL_CTX_free(wire->client_tls);
    }
    wire->client_tls = context;
    return true;
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cc_wire *wire = arg;
    cc_session_t *session, *next;
    cc_warn("event=drain_timeout sessions=%zu", wire->session_count);
    for (session = TAILQ_FIRST(&wire->sessions); session; session = next) {
        next = TAILQ_NEXT(session, link);
        cc_session_close(session, "drain_timeout", NULL);
    }
}

void cc_wire_drain(cc_wire_t *wire, int64_t timeout_ms, void (*done)(void *arg), void *arg)
{
    wire->draining = true;
    wire->drained = done;
    wire->drained_arg = arg;
    if (wire->listener) {
        evconnlistener_disable(wire->listener);
    }
    cc_info("event=draining sessions=%zu timeout_ms=%lld", wire->session_count,
            (long long)timeout_ms);
    cc_session_t *session, *next;
    for (session = TAILQ_FIRST(&wire->sessions); session; session = next) {
        next = TAILQ_NEXT(session, link);
        if (session->state == CC_SESSION_WAITING_PRIMARY || cc_session_idle(session)) {
            cc_session_close(session, "draining", NULL);
        }
    }
    wire->drain_timer = evtimer_new(wire->base, on_drain_timeout, wire);
    struct timeval timeout = cc_timeval_from_ms(timeout_ms);
    evtimer_add(wire->drain_timer, &timeout);
    maybe_finish_drain(wire);
}

void cc_wire_free(cc_wire_t *wire)
{
    if (!wire) {
        return;
    }
    cc_session_t *session, *next;
    for (session = TAILQ_FIRST(&wire->sessions); session; session = next) {
        next = TAILQ_NEXT(session, link);
        cc_session_close(session, "shutdown", NULL);
    }
    /* Let the deferred frees of closed sessions run. */
    wire->drained = NULL;
    event_base_loop(wire->base, EVLOOP_NONBLOCK);
    if (wire->listener) {
        evconnlistener_free(wire->listener);
    }
    if (wire->drain_timer) {
        event_free(wire->drain_timer);
    }
    cc_upstream_cleanup(wire);
    if (wire->client_tls) {
        SSL_CTX_free(wire->client_tls);
    }
    for (size_t i = 0; i < sizeof wire->strings / sizeof wire->strings[0]; i++) {
        bson_free(wire->strings[i]);
    }
    cc_expose_destroy(&wire->expose);
    cc_peers_free(wire->peers);
    if (wire->known_hello) {
        bson_destroy(wire->known_hello);
    }
    bson_free(wire);
}
