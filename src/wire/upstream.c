/* SPDX-License-Identifier: Apache-2.0 */
/* Connects sessions to the current primary and follows it when it moves.
 * Name resolution goes through evdns and the TLS handshake through
 * bufferevent_openssl, so nothing here waits on the network. A session
 * without a primary to connect to is served by no_primary.c meanwhile. */
#include "changecast/log.h"
#include "frame.h"
#include "wire_internal.h"

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <string.h>

static void wait_for_primary(cc_session_t *session)
{
    session->state = CC_SESSION_WAITING_PRIMARY;
    cc_debug("conn=%llu event=waiting_primary", (unsigned long long)session->id);
    cc_waiting_serve(session);
}

static bool is_ip_literal(const char *host)
{
    struct in6_addr addr;
    return inet_pton(AF_INET, host, &addr) == 1 || inet_pton(AF_INET6, host, &addr) == 1;
}

void cc_upstream_connect(cc_session_t *session)
{
    struct cc_wire *wire = session->wire;
    if (!cc_primary_get(wire->primary, &session->upstream_address, &session->epoch)) {
        wait_for_primary(session);
        return;
    }
    const char *host = session->upstream_address.host;
    struct bufferevent *upstream;
    if (wire->upstream_tls) {
        SSL *ssl =
            cc_tls_client_session(wire->upstream_tls, host,
                                  !wire->options.upstream_tls_allow_invalid_hostnames &&
                                      !wire->options.upstream_tls_allow_invalid_certificates);
        if (!is_ip_literal(host)) {
            SSL_set_tlsext_host_name(ssl, host); /* SNI */
        }
        upstream = bufferevent_openssl_socket_new(wire->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                  BEV_OPT_CLOSE_ON_FREE);
    } else {
        upstream = bufferevent_socket_new(wire->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!upstream) {
        cc_session_close(session, "upstream_connect_failed", "cannot create bufferevent");
        return;
    }
    if (!cc_session_start_upstream(session, upstream)) {
        return;
    }
    struct timeval timeout = cc_timeval_from_ms(wire->options.connect_timeout_ms);
    bufferevent_set_timeouts(upstream, &timeout, &timeout);
    /* What the client sent waits in its input until the connection is up
     * (cc_session_process_client in PROXYING). */
    if (bufferevent_socket_connect_hostname(upstream, wire->dns, AF_UNSPEC, host,
                                            session->upstream_address.port) != 0) {
        cc_session_close(session, "upstream_connect_failed", "connect could not start");
    }
}

static void on_primary_changed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cc_wire *wire = arg;
    cc_hostport_t address;
    uint64_t epoch;
    bool known = cc_primary_get(wire->primary, &address, &epoch);
    if (known) {
        cc_info("event=primary_known primary=%s:%u epoch=%llu", address.host, address.port,
                (unsigned long long)epoch);
    } else {
        cc_warn("event=primary_unknown epoch=%llu", (unsigned long long)epoch);
    }
    cc_session_t *session, *next;
    for (session = TAILQ_FIRST(&wire->sessions); session; session = next) {
        next = TAILQ_NEXT(session, link);
        if (session->state == CC_SESSION_WAITING_PRIMARY) {
            if (known && !wire->draining) {
                cc_upstream_connect(session);
            }
        } else if (session->state != CC_SESSION_AWAITING_CLIENT &&
                   session->state != CC_SESSION_RELEASED && session->epoch < epoch &&
                   !cc_session_release_upstream(session, "primary_changed")) {
            /* Drivers ignore ismaster:false from a router and keep writing,
             * so connections to a former primary must not carry their next
             * request there: one between requests lets its upstream go;
             * one with a request in flight is cut, and drivers retry on a
             * fresh connection, which goes to the new primary. */
            cc_session_close(session, "primary_changed", NULL);
        }
    }
}

/* Called by the topology monitor on its own thread. */
static void notify_wire(void *arg)
{
    struct cc_wire *wire = arg;
    event_active(wire->primary_changed, EV_READ, 0);
}

bool cc_upstream_init(struct cc_wire *wire, bson_error_t *error)
{
    wire->dns = evdns_base_new(wire->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!wire->dns) {
        /* No resolv.conf: IP literals still work, names will fail per connect. */
        wire->dns = evdns_base_new(wire->base, 0);
    }
    wire->primary_changed = event_new(wire->base, -1, 0, on_primary_changed, wire);
    if (!wire->dns || !wire->primary_changed) {
        bson_set_error(error, 0, 0, "cannot set up name resolution or primary notifications");
        return false;
    }
    if (wire->options.upstream_tls) {
        wire->upstream_tls = cc_tls_client_context(
            wire->options.upstream_tls_ca_file, wire->options.upstream_tls_cert_key_file,
            wire->options.upstream_tls_allow_invalid_certificates, error);
        if (!wire->upstream_tls) {
            return false;
        }
    }
    cc_primary_on_change(wire->primary, notify_wire, wire);
    return true;
}

void cc_upstream_cleanup(struct cc_wire *wire)
{
    cc_primary_on_change(wire->primary, NULL, NULL);
    if (wire->primary_changed) {
        event_free(wire->primary_changed);
    }
    if (wire->dns) {
        evdns_base_free(wire->dns, 0);
    }
    if (wire->upstream_tls) {
        SSL_CTX_free(wire->upstream_tls);
    }
}
