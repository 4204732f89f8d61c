/* SPDX-License-Identifier: Apache-2.0 */
/* Start-up, threads and signals. The main thread runs the wire proxy's
 * event loop; mongo-c-driver's monitors run on threads of their own and
 * tell the wire loop where the primary is. */
#include "changecast/auth.h"
#include "changecast/capture.h"
#include "changecast/config.h"
#include "changecast/hostport.h"
#include "changecast/log.h"
#include "changecast/push.h"
#include "changecast/topology.h"
#include "changecast/wire.h"

#include <arpa/inet.h>
#include <event2/thread.h>
#include <mongoc/mongoc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { EXIT_CONFIG = 2 };

typedef struct daemon {
    cc_config_t config;
    struct event_base *base;
    cc_wire_t *wire;
    cc_push_t *push;
    cc_write_clock_t *write_clock; /* shared by wire and push while push is on */
    bool stopping;
} daemon_t;

/* The upstream's TLS settings come from its connection string, as for any
 * driver: tls=true, tlsCAFile, tlsCertificateKeyFile, tlsAllow*. */
static bool upstream_tls_options(const char *uri_string, cc_wire_options_t *options,
                                 mongoc_uri_t **uri, bson_error_t *error)
{
    *uri = mongoc_uri_new_with_error(uri_string, error);
    if (!*uri) {
        char detail[sizeof error->message];
        bson_strncpy(detail, error->message, sizeof detail);
        bson_set_error(error, 0, 0, "wire.upstream: %s", detail);
        return false;
    }
    bool insecure = mongoc_uri_get_option_as_bool(*uri, MONGOC_URI_TLSINSECURE, false);
    options->upstream_tls = mongoc_uri_get_tls(*uri);
    options->upstream_tls_ca_file = mongoc_uri_get_option_as_utf8(*uri, MONGOC_URI_TLSCAFILE, "");
    options->upstream_tls_cert_key_file =
        mongoc_uri_get_option_as_utf8(*uri, MONGOC_URI_TLSCERTIFICATEKEYFILE, "");
    options->upstream_tls_allow_invalid_hostnames =
        insecure || mongoc_uri_get_option_as_bool(*uri, MONGOC_URI_TLSALLOWINVALIDHOSTNAMES, false);
    options->upstream_tls_allow_invalid_certificates =
        insecure ||
        mongoc_uri_get_option_as_bool(*uri, MONGOC_URI_TLSALLOWINVALIDCERTIFICATES, false);
    return true;
}

static void wire_options_from_config(const cc_config_t *config, cc_wire_options_t *options)
{
    options->listen = config->wire.listen;
    options->tls_cert_file = config->wire.tls_cert_file;
    options->tls_key_file = config->wire.tls_key_file;
    options->tls_client_ca_file = config->wire.tls_client_ca_file;
    options->max_connections = config->wire.max_connections;
    options->max_connections_per_ip = config->wire.max_connections_per_ip;
    options->handshake_timeout_ms = config->wire.handshake_timeout_ms;
    options->message_timeout_ms = config->wire.message_timeout_ms;
    options->primary_wait_ms = config->wire.primary_wait_ms;
    options->connect_timeout_ms = config->wire.connect_timeout_ms;
}

static void auth_options_from_config(const cc_config_t *config, cc_auth_options_t *options)
{
    cc_auth_options_init(options);
    options->mode = strcmp(config->auth.mode, "none") == 0 ? CC_AUTH_MODE_NONE : CC_AUTH_MODE_JWT;
    options->secret_file = config->auth.jwt_secret_file;
    options->public_key_file = config->auth.jwt_public_key_file;
    options->jwks_file = config->auth.jwks_file;
    options->issuer = config->auth.issuer;
    options->audience = config->auth.audience;
    options->leeway_s = config->auth.leeway_s;
    options->cookie_name = config->auth.cookie;
}

/* Whether host:port names a loopback address (or localhost). */
static bool listens_on_loopback(const char *hostport)
{
    cc_hostport_t hp;
    bson_error_t error;
    struct in_addr v4;
    struct in6_addr v6;
    if (!cc_hostport_parse(hostport, &hp, &error)) {
        return false;
    }
    if (strcmp(hp.host, "localhost") == 0) {
        return true;
    }
    if (inet_pton(AF_INET, hp.host, &v4) == 1) {
        return (ntohl(v4.s_addr) >> 24) == 127;
    }
    return inet_pton(AF_INET6, hp.host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

/* The push port's authorization settings, checked as at start-up (the
 * keys are loaded), so --check-config catches them too. */
static bool check_auth(const cc_config_t *config, bson_error_t *error)
{
    if (strcmp(config->auth.mode, "jwt") != 0 && strcmp(config->auth.mode, "none") != 0) {
        bson_set_error(error, 0, 0, "auth.mode: \"%s\" is not jwt or none", config->auth.mode);
        return false;
    }
    if (strcmp(config->auth.mode, "none") == 0 && !config->auth.allow_anonymous_public &&
        !listens_on_loopback(config->push.listen)) {
        bson_set_error(error, 0, 0,
                       "auth.mode = none on a push port that is not on loopback (push.listen = "
                       "%s) would show every exposed change to anyone: configure auth.mode = "
                       "jwt, or set auth.allow_anonymous_public = on if that is intended",
                       config->push.listen);
        return false;
    }
    cc_auth_options_t options;
    auth_options_from_config(config, &options);
    cc_auth_t *auth = cc_auth_new(&options, error);
    cc_auth_destroy(auth);
    return auth != NULL;
}

static bool check_config(const cc_config_t *config, bson_error_t *error)
{
    bool has_cert = *config->wire.tls_cert_file != '\0';
    bool has_key = *config->wire.tls_key_file != '\0';
    if (has_cert != has_key) {
        bson_set_error(error, 0, 0, "wire.tls_cert_file and wire.tls_key_file go together");
        return false;
    }
    if (*config->wire.tls_client_ca_file && !has_cert) {
        bson_set_error(error, 0, 0, "wire.tls_client_ca_file needs wire.tls_cert_file");
        return false;
    }
    if (*config->push.listen && !*config->changes.expose) {
        bson_set_error(error, 0, 0,
                       "changes.expose: the push port needs at least one exposed namespace "
                       "(e.g. shop.orders or shop.*)");
        return false;
    }
    if ((*config->push.tls_cert_file != '\0') != (*config->push.tls_key_file != '\0')) {
        bson_set_error(error, 0, 0, "push.tls_cert_file and push.tls_key_file go together");
        return false;
    }
    if (*config->push.tls_client_ca_file && !*config->push.tls_cert_file) {
        bson_set_error(error, 0, 0, "push.tls_client_ca_file needs push.tls_cert_file");
        return false;
    }
    return !*config->push.listen || check_auth(config, error);
}

static void on_drained(void *arg)
{
    daemon_t *daemon = arg;
    event_base_loopexit(daemon->base, NULL);
}

static void on_signal(evutil_socket_t signal_number, short what, void *arg)
{
    (void)what;
    daemon_t *daemon = arg;
    if (signal_number == SIGHUP) {
        bson_error_t error;
        cc_log_open(daemon->config.log.file);
        if (daemon->push) {
            cc_push_reload(daemon->push); /* logs its own outcome */
        }
        if (cc_wire_reload_tls(daemon->wire, &error)) {
            cc_info("event=reloaded what=\"log file, TLS certificates\"");
        } else {
            cc_error("event=reload_failed error=\"%s\"", error.message);
        }
        return;
    }
    if (daemon->stopping) {
        cc_warn("event=stop_forced signal=%d", (int)signal_number);
        event_base_loopexit(daemon->base, NULL);
        return;
    }
    daemon->stopping = true;
    cc_info("event=stopping signal=%d", (int)signal_number);
    cc_wire_drain(daemon->wire, daemon->config.wire.drain_timeout_ms, on_drained, daemon);
}

static bool start_push(daemon_t *daemon, cc_channel_t *channel, cc_capture_t **capture,
                       bson_error_t *error)
{
    const cc_config_t *c = &daemon->config;
    cc_push_options_t push = {
        .listen = c->push.listen,
        .expose = c->changes.expose,
        .full_document = c->changes.full_document,
        .ring_events = c->changes.ring_events,
        .ring_bytes = c->changes.ring_bytes,
        .flush_ms = c->push.flush_ms,
        .max_flush_ms = c->push.max_flush_ms,
        .heartbeat_ms = c->push.heartbeat_ms,
        .idle_timeout_ms = c->push.idle_timeout_ms,
        .max_queue_bytes = c->push.max_queue_bytes,
        .unsent_bytes = c->push.unsent_bytes,
        .stall_timeout_ms = c->push.stall_timeout_ms,
        .healthz_max_lag_ms = c->push.healthz_max_lag_ms,
        .max_message_bytes = c->push.max_message_bytes,
        .max_subscriptions = c->push.max_subscriptions,
        .retry_ms = c->push.retry_ms,
        .watermark_ms = c->push.watermark_ms,
        .snapshot_max_docs = c->push.snapshot_max_docs,
        .snapshot_max_bytes = c->push.snapshot_max_bytes,
        .max_pending_docs = c->push.max_pending_docs,
        .demo = c->push.demo,
        .compression = c->push.compression,
        .write_clock = daemon->write_clock,
        .allowed_origins = c->push.allowed_origins,
        .auth_public = c->auth.allow_anonymous_public,
        .max_connections = c->push.max_connections,
        .max_connections_per_ip = c->push.max_connections_per_ip,
        .max_filter_bytes = c->push.max_filter_bytes,
        .max_filter_depth = c->push.max_filter_depth,
        .tls_cert_file = c->push.tls_cert_file,
        .tls_key_file = c->push.tls_key_file,
        .tls_client_ca_file = c->push.tls_client_ca_file,
    };
    auth_options_from_config(c, &push.auth);
    daemon->push = cc_push_start(&push, channel, error);
    if (!daemon->push) {
        return false;
    }
    cc_capture_options_t options = {
        .uri = c->wire.upstream,
        .expose = c->changes.expose,
        .full_document = c->changes.full_document,
        .full_document_before_change = c->changes.full_document_before_change,
        .token_file = c->changes.token_file,
        .token_save_ms = c->changes.token_save_ms,
        .max_await_ms = c->changes.max_await_ms,
        .instance = cc_log_instance(),
    };
    *capture = cc_capture_start(&options, channel, error);
    return *capture != NULL;
}

static void on_metrics_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    daemon_t *daemon = arg;
    cc_wire_stats_t stats;
    cc_wire_stats(daemon->wire, &stats);
    cc_push_set_wire_stats(daemon->push, &stats);
}

/* instance.name, or the host name: in every log line and in the appName of
 * every connection changecast makes to MongoDB. */
static void set_instance_name(const cc_config_t *config)
{
    char host[256] = "changecast";
    if (!*config->instance.name && gethostname(host, sizeof host - 1) == 0) {
        host[sizeof host - 1] = '\0';
    }
    cc_log_set_instance(*config->instance.name ? config->instance.name : host);
}

static int run(daemon_t *daemon, bool check_only)
{
    bson_error_t error;
    cc_wire_options_t options = {0};
    mongoc_uri_t *uri = NULL;
    cc_log_level_t level;

    cc_log_level_parse(daemon->config.log.level, &level);
    cc_log_set_level(level);
    wire_options_from_config(&daemon->config, &options);
    if (!check_config(&daemon->config, &error) ||
        !upstream_tls_options(daemon->config.wire.upstream, &options, &uri, &error)) {
        fprintf(stderr, "changecast: %s\n", error.message);
        mongoc_uri_destroy(uri);
        return EXIT_CONFIG;
    }
    if (check_only) {
        printf("changecast: configuration is valid\n");
        mongoc_uri_destroy(uri);
        return EXIT_SUCCESS;
    }
    if (!cc_log_open(daemon->config.log.file)) {
        mongoc_uri_destroy(uri);
        return EXIT_CONFIG;
    }
    set_instance_name(&daemon->config);

    evthread_use_pthreads();
    daemon->base = event_base_new();
    cc_primary_t *primary = cc_primary_new();
    cc_topology_t *topology = NULL;
    int status = EXIT_FAILURE;
    struct event *signals[3] = {0};
    struct event *metrics_timer = NULL;
    cc_channel_t *channel = NULL;
    cc_capture_t *capture = NULL;
    const int signal_numbers[3] = {SIGTERM, SIGINT, SIGHUP};

    if (*daemon->config.push.listen) {
        daemon->write_clock = cc_write_clock_new(4096);
        options.write_clock = daemon->write_clock;
        options.expose = daemon->config.changes.expose;
    }
    daemon->wire = cc_wire_new(daemon->base, &options, primary, &error);
    if (!daemon->wire) {
        fprintf(stderr, "changecast: %s\n", error.message);
        status = EXIT_CONFIG;
        goto done;
    }
    topology = cc_topology_start(daemon->config.wire.upstream, cc_log_instance(),
                                 daemon->config.wire.primary_wait_ms, primary, &error);
    if (!topology) {
        fprintf(stderr, "changecast: wire.upstream: %s\n", error.message);
        status = EXIT_CONFIG;
        goto done;
    }
    if (*daemon->config.push.listen) {
        channel = cc_channel_new();
        if (!start_push(daemon, channel, &capture, &error)) {
            fprintf(stderr, "changecast: %s\n", error.message);
            status = EXIT_CONFIG;
            goto done;
        }
        metrics_timer = event_new(daemon->base, -1, EV_PERSIST, on_metrics_timer, daemon);
        struct timeval second = {1, 0};
        event_add(metrics_timer, &second);
    }
    for (size_t i = 0; i < 3; i++) {
        signals[i] = evsignal_new(daemon->base, signal_numbers[i], on_signal, daemon);
        evsignal_add(signals[i], NULL);
    }
    const mongoc_host_list_t *hosts = mongoc_uri_get_hosts(uri);
    cc_info("event=ready version=%s wire=%s wire_tls=%s upstream=%s upstream_tls=%s push=%s",
            CC_VERSION, cc_wire_address(daemon->wire), *options.tls_cert_file ? "true" : "false",
            hosts ? hosts->host_and_port : "srv", options.upstream_tls ? "true" : "false",
            daemon->push ? cc_push_address(daemon->push) : "off");
    event_base_dispatch(daemon->base);
    status = EXIT_SUCCESS;
    cc_info("event=stopped");

done:
    if (metrics_timer) {
        event_free(metrics_timer);
    }
    /* Default dispositions again: should the threads below be slow to stop,
     * a second SIGTERM ends the process at once. */
    for (size_t i = 0; i < 3; i++) {
        if (signals[i]) {
            event_free(signals[i]);
            signals[i] = NULL;
        }
    }
    cc_capture_stop(capture);
    cc_push_stop(daemon->push);
    cc_channel_free(channel);
    cc_topology_stop(topology);
    cc_wire_free(daemon->wire);
    cc_write_clock_free(daemon->write_clock);
    for (size_t i = 0; i < 3; i++) {
        if (signals[i]) {
            event_free(signals[i]);
        }
    }
    event_base_free(daemon->base);
    cc_primary_free(primary);
    mongoc_uri_destroy(uri);
    return status;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "token") == 0) {
        return cc_auth_mint_main(argc - 1, argv + 1); /* changecast token: a development JWT */
    }
    daemon_t daemon = {0};
    cc_cli_action_t action;
    bson_error_t error;

    signal(SIGPIPE, SIG_IGN);
    mongoc_init();
    cc_config_init(&daemon.config);
    int status;
    if (!cc_config_from_args(&daemon.config, argc, argv, &action, &error)) {
        fprintf(stderr, "changecast: %s\n", error.message);
        status = EXIT_CONFIG;
    } else if (action == CC_CLI_HELP) {
        cc_config_print_help(stdout, "changecast");
        status = EXIT_SUCCESS;
    } else if (action == CC_CLI_VERSION) {
        printf("changecast %s\n", CC_VERSION);
        status = EXIT_SUCCESS;
    } else {
        status = run(&daemon, action == CC_CLI_CHECK_CONFIG);
    }
    cc_config_destroy(&daemon.config);
    mongoc_cleanup();
    return status;
}
