/* SPDX-License-Identifier: Apache-2.0 */
/* One table of keys serves the INI file, the flags and --help, so the three
 * cannot drift apart. inih does the INI syntax; this file only validates. */
#include "changecast/config.h"
#include "changecast/hostport.h"
#include "changecast/log.h"

#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum key_type {
    KEY_STRING,
    KEY_HOSTPORT,
    KEY_OPTIONAL_HOSTPORT, /* host:port, or empty for "off" */
    KEY_INT,
    KEY_BOOL, /* on/off, true/false, yes/no, 1/0 */
    KEY_LOG_LEVEL
} key_type_t;

typedef struct config_key {
    const char *section;
    const char *name;
    key_type_t type;
    size_t offset;
    const char *default_value;
    int64_t min, max;
    const char *help;
} config_key_t;

#define FIELD(f) offsetof(cc_config_t, f)

static const config_key_t config_keys[] = {
    {"wire", "listen", KEY_HOSTPORT, FIELD(wire.listen), "127.0.0.1:27018", 0, 0,
     "address applications connect to instead of MongoDB (port 0 picks a free one)"},
    {"wire", "upstream", KEY_STRING, FIELD(wire.upstream),
     "mongodb://127.0.0.1:27017/?replicaSet=rs0", 0, 0,
     "connection string of the real deployment; tls=true and tlsCAFile apply to it"},
    {"wire", "tls_cert_file", KEY_STRING, FIELD(wire.tls_cert_file), "", 0, 0,
     "PEM certificate chain for TLS to clients; empty = plain TCP"},
    {"wire", "tls_key_file", KEY_STRING, FIELD(wire.tls_key_file), "", 0, 0,
     "PEM private key for tls_cert_file"},
    {"wire", "tls_client_ca_file", KEY_STRING, FIELD(wire.tls_client_ca_file), "", 0, 0,
     "PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)"},
    {"wire", "max_connections", KEY_INT, FIELD(wire.max_connections), "10000", 1, 1000000,
     "client connections accepted at once; more are closed on accept"},
    {"wire", "max_connections_per_ip", KEY_INT, FIELD(wire.max_connections_per_ip), "1000", 1,
     1000000, "client connections accepted at once from one address; more are closed on accept"},
    {"wire", "handshake_timeout_ms", KEY_INT, FIELD(wire.handshake_timeout_ms), "5000", 100, 600000,
     "a new connection whose first message has not arrived whole by then is closed; no "
     "connection to MongoDB is opened before it has"},
    {"wire", "message_timeout_ms", KEY_INT, FIELD(wire.message_timeout_ms), "30000", 100, 3600000,
     "a message that has started arriving must be whole within this, or the connection is "
     "closed; idle time between messages is never limited"},
    {"wire", "primary_wait_ms", KEY_INT, FIELD(wire.primary_wait_ms), "5000", 0, 600000,
     "how long a message waits for a primary while none is reachable before it is answered with "
     "a retryable error (handshakes are answered at once)"},
    {"wire", "connect_timeout_ms", KEY_INT, FIELD(wire.connect_timeout_ms), "10000", 1, 600000,
     "limit for connecting (and TLS handshaking) to the primary"},
    {"wire", "drain_timeout_ms", KEY_INT, FIELD(wire.drain_timeout_ms), "10000", 0, 3600000,
     "on SIGTERM, how long in-flight requests may take before connections are cut"},
    {"changes", "expose", KEY_STRING, FIELD(changes.expose), "", 0, 0,
     "namespaces the push port may serve, e.g. \"shop.orders, chat.*\"; nothing else is streamed"},
    {"changes", "full_document", KEY_STRING, FIELD(changes.full_document), "updateLookup", 0, 0,
     "fullDocument of the change stream: default, updateLookup, whenAvailable or required"},
    {"changes", "full_document_before_change", KEY_STRING,
     FIELD(changes.full_document_before_change), "off", 0, 0,
     "fullDocumentBeforeChange: off, whenAvailable or required (MongoDB 6.0+ pre-images)"},
    {"changes", "token_file", KEY_STRING, FIELD(changes.token_file), "changecast.token", 0, 0,
     "where the capture stream's resume token is kept across restarts; empty = not kept"},
    {"changes", "token_save_ms", KEY_INT, FIELD(changes.token_save_ms), "1000", 0, 3600000,
     "at most one token write per this many milliseconds"},
    {"changes", "max_await_ms", KEY_INT, FIELD(changes.max_await_ms), "1000", 1, 60000,
     "maxAwaitTimeMS of the change stream's getMore: how often a quiet stream reports progress"},
    {"changes", "ring_events", KEY_INT, FIELD(changes.ring_events), "10000", 1, 100000000,
     "recent events kept in memory for reconnecting subscribers"},
    {"changes", "ring_bytes", KEY_INT, FIELD(changes.ring_bytes), "67108864", 1024,
     INT64_C(1099511627776), "bound on the bytes those events take"},
    {"push", "listen", KEY_OPTIONAL_HOSTPORT, FIELD(push.listen), "", 0, 0,
     "address of the push port (SSE and WebSocket), e.g. 127.0.0.1:8080; empty = no push port"},
    {"push", "flush_ms", KEY_INT, FIELD(push.flush_ms), "20", 0, 10000,
     "events for one connection leave together at most this long after the first; 0 = at once"},
    {"push", "max_flush_ms", KEY_INT, FIELD(push.max_flush_ms), "160", 0, 10000,
     "while the push thread is busy most of the time, the flush window doubles every quarter "
     "second up to this (more events per write, more latency), and halves back once it is not"},
    {"push", "heartbeat_ms", KEY_INT, FIELD(push.heartbeat_ms), "15000", 100, 3600000,
     "SSE heartbeat comment and WebSocket ping interval"},
    {"push", "idle_timeout_ms", KEY_INT, FIELD(push.idle_timeout_ms), "60000", 1000, 86400000,
     "a WebSocket that sends nothing (not even a pong) for this long is closed"},
    {"push", "max_queue_bytes", KEY_INT, FIELD(push.max_queue_bytes), "1048576", 1024,
     INT64_C(1073741824),
     "bytes waiting for one connection: past it, a client whose socket stopped taking bytes is "
     "dropped (slow_consumer); one that still reads is paused and fed from the ring"},
    {"push", "unsent_bytes", KEY_INT, FIELD(push.unsent_bytes), "65536", 0, INT64_C(1073741824),
     "bytes a push socket may hold that the network has not taken yet (TCP_NOTSENT_LOWAT): a "
     "client that stops reading fills its receive window and this, and its socket takes no more; "
     "0 = the kernel's own limit (megabytes per socket on a fast network)"},
    {"push", "healthz_max_lag_ms", KEY_INT, FIELD(push.healthz_max_lag_ms), "0", 0, 86400000,
     "/healthz answers 503 (status lagging) while capture is further behind the deployment than "
     "this, so a load balancer sends new clients to an instance that is not; 0 = lag never "
     "fails it"},
    {"push", "stall_timeout_ms", KEY_INT, FIELD(push.stall_timeout_ms), "30000", 100, 86400000,
     "a connection whose socket takes no bytes for this long is dropped (slow_consumer)"},
    {"push", "max_message_bytes", KEY_INT, FIELD(push.max_message_bytes), "65536", 256, 16777216,
     "largest WebSocket message or request accepted from a client"},
    {"push", "max_subscriptions", KEY_INT, FIELD(push.max_subscriptions), "100", 1, 100000,
     "subscriptions one WebSocket may hold"},
    {"push", "retry_ms", KEY_INT, FIELD(push.retry_ms), "2000", 0, 3600000,
     "the SSE retry: hint, how long EventSource waits before reconnecting"},
    {"push", "watermark_ms", KEY_INT, FIELD(push.watermark_ms), "1000", 0, 3600000,
     "how often each stream reports how far it has delivered (event: watermark); 0 = never"},
    {"push", "snapshot_max_docs", KEY_INT, FIELD(push.snapshot_max_docs), "10000", 1, 10000000,
     "a live query's snapshot with more matching documents is refused (snapshot_too_large)"},
    {"push", "snapshot_max_bytes", KEY_INT, FIELD(push.snapshot_max_bytes), "16777216", 1024,
     1073741824, "a live query's snapshot larger than this (as JSON) is refused"},
    {"push", "compression", KEY_BOOL, FIELD(push.compression), "on", 0, 0,
     "WebSocket permessage-deflate (plain TCP push ports): each event compressed once and the "
     "same bytes sent to every subscriber that agreed to it; off: never offered"},
    {"push", "demo", KEY_BOOL, FIELD(push.demo), "off", 0, 0,
     "serve the demo page at / (on for trying changecast out; off in production)"},
    {"push", "max_pending_docs", KEY_INT, FIELD(push.max_pending_docs), "10000", 1, 10000000,
     "format=docs: distinct documents waiting for a slow client before it gets reset"},
    {"push", "allowed_origins", KEY_STRING, FIELD(push.allowed_origins), "", 0, 0,
     "origins (scheme://host[:port], comma-separated, or *) allowed to use the push port "
     "cross-site; its own origin always is"},
    {"push", "max_connections", KEY_INT, FIELD(push.max_connections), "20000", 1, 10000000,
     "push connections (SSE and WebSocket) in total"},
    {"push", "max_connections_per_ip", KEY_INT, FIELD(push.max_connections_per_ip), "1000", 1,
     10000000, "push connections from one client address"},
    {"push", "max_filter_bytes", KEY_INT, FIELD(push.max_filter_bytes), "16384", 16, 1048576,
     "largest subscriber filter"},
    {"push", "max_filter_depth", KEY_INT, FIELD(push.max_filter_depth), "16", 1, 100,
     "deepest nesting of documents and arrays in a subscriber filter"},
    {"push", "tls_cert_file", KEY_STRING, FIELD(push.tls_cert_file), "", 0, 0,
     "PEM certificate (chain) of the push port; with tls_key_file the port speaks only TLS"},
    {"push", "tls_key_file", KEY_STRING, FIELD(push.tls_key_file), "", 0, 0,
     "PEM private key of the push port"},
    {"push", "tls_client_ca_file", KEY_STRING, FIELD(push.tls_client_ca_file), "", 0, 0,
     "CA bundle for client certificates on the push port; set = clients must present one"},
    {"auth", "mode", KEY_STRING, FIELD(auth.mode), "jwt", 0, 0,
     "jwt (every stream needs a token) or none (everything exposed is visible)"},
    {"auth", "allow_anonymous_public", KEY_BOOL, FIELD(auth.allow_anonymous_public), "off", 0, 0,
     "allow mode = none on a push port that is not on loopback"},
    {"auth", "jwt_secret_file", KEY_STRING, FIELD(auth.jwt_secret_file), "", 0, 0,
     "HS256 secret (at least 32 bytes)"},
    {"auth", "jwt_public_key_file", KEY_STRING, FIELD(auth.jwt_public_key_file), "", 0, 0,
     "PEM public key or certificate: RSA (RS256) or EC P-256 (ES256)"},
    {"auth", "jwks_file", KEY_STRING, FIELD(auth.jwks_file), "", 0, 0,
     "JWK Set (RFC 7517) of RS256/ES256 keys, chosen by the token's kid"},
    {"auth", "issuer", KEY_STRING, FIELD(auth.issuer), "", 0, 0, "required iss when set"},
    {"auth", "audience", KEY_STRING, FIELD(auth.audience), "", 0, 0, "required aud when set"},
    {"auth", "leeway_s", KEY_INT, FIELD(auth.leeway_s), "30", 0, 600,
     "clock skew allowed for exp and nbf"},
    {"auth", "cookie", KEY_STRING, FIELD(auth.cookie), "", 0, 0,
     "name of a cookie that carries the token (besides Authorization: Bearer and access_token)"},
    {"log", "level", KEY_LOG_LEVEL, FIELD(log.level), "info", 0, 0, "debug, info, warn or error"},
    {"log", "file", KEY_STRING, FIELD(log.file), "", 0, 0,
     "log file, reopened on SIGHUP; empty = standard error"},
    {"instance", "name", KEY_STRING, FIELD(instance.name), "", 0, 0,
     "this instance's name: in the appName of its connections to MongoDB "
     "(changecast-capture@NAME, changecast-monitor@NAME, changecast-worker@NAME) and in every "
     "log line (instance=NAME); empty = the host name"},
};

#define KEY_COUNT (sizeof config_keys / sizeof config_keys[0])

static const config_key_t *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (strcmp(config_keys[i].section, section) == 0 &&
            strcmp(config_keys[i].name, name) == 0) {
            return &config_keys[i];
        }
    }
    return NULL;
}

static bool set_key(cc_config_t *config, const config_key_t *key, const char *value,
                    bson_error_t *error)
{
    void *field = (char *)config + key->offset;
    bson_error_t detail;

    switch (key->type) {
    case KEY_OPTIONAL_HOSTPORT:
    case KEY_HOSTPORT: {
        cc_hostport_t hp;
        if ((key->type == KEY_HOSTPORT || *value) && !cc_hostport_parse(value, &hp, &detail)) {
            bson_set_error(error, 0, 0, "%s.%s: %s", key->section, key->name, detail.message);
            return false;
        }
        break;
    }
    case KEY_LOG_LEVEL: {
        cc_log_level_t level;
        if (!cc_log_level_parse(value, &level)) {
            bson_set_error(error, 0, 0, "%s.%s: \"%s\" is not one of debug, info, warn, error",
                           key->section, key->name, value);
            return false;
        }
        break;
    }
    case KEY_INT: {
        char *end;
        errno = 0;
        long long number = strtoll(value, &end, 10);
        if (*value == '\0' || *end != '\0' || errno || number < key->min || number > key->max) {
            bson_set_error(error, 0, 0, "%s.%s: \"%s\" is not an integer from %lld to %lld",
                           key->section, key->name, value, (long long)key->min,
                           (long long)key->max);
            return false;
        }
        *(int64_t *)field = number;
        return true;
    }
    case KEY_BOOL: {
        static const char *const yes[] = {"on", "true", "yes", "1"}, *const no[] = {"off", "false",
                                                                                    "no", "0"};
        for (size_t i = 0; i < 4; i++) {
            if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
                *(bool *)field = strcmp(value, yes[i]) == 0;
                return true;
            }
        }
        bson_set_error(error, 0, 0, "%s.%s: \"%s\" is not on or off", key->section, key->name,
                       value);
        return false;
    }
    case KEY_STRING:
        break;
    }
    char **text = field;
    bson_free(*text);
    *text = bson_strdup(value);
    return true;
}

void cc_config_init(cc_config_t *config)
{
    memset(config, 0, sizeof *config);
    for (size_t i = 0; i < KEY_COUNT; i++) {
        bson_error_t error;
        bool ok = set_key(config, &config_keys[i], config_keys[i].default_value, &error);
        BSON_ASSERT(ok); /* defaults are ours: a failure is a bug in the table */
    }
}

void cc_config_destroy(cc_config_t *config)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (config_keys[i].type != KEY_INT && config_keys[i].type != KEY_BOOL) {
            char **text = (void *)((char *)config + config_keys[i].offset);
            bson_free(*text);
            *text = NULL;
        }
    }
}

bool cc_config_set(cc_config_t *config, const char *section, const char *key, const char *value,
                   bson_error_t *error)
{
    const config_key_t *entry = find_key(section, key);
    if (!entry) {
        bson_set_error(error, 0, 0, "%s.%s: no such key (see --help)", section, key);
        return false;
    }
    return set_key(config, entry, value, error);
}

typedef struct file_parse {
    cc_config_t *config;
    bson_error_t *error;
    bool failed;
} file_parse_t;

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    file_parse_t *parse = user;
    if (parse->failed) {
        return 0;
    }
    if (!cc_config_set(parse->config, section, name, value, parse->error)) {
        parse->failed = true;
        return 0;
    }
    return 1;
}

bool cc_config_load_file(cc_config_t *config, const char *path, bson_error_t *error)
{
    file_parse_t parse = {config, error, false};
    int rc = ini_parse(path, on_ini_entry, &parse);
    if (rc == -1) {
        bson_set_error(error, 0, 0, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    if (parse.failed) {
        char detail[sizeof error->message];
        bson_strncpy(detail, error->message, sizeof detail);
        bson_set_error(error, 0, 0, "%s line %d: %s", path, rc, detail);
        return false;
    }
    if (rc != 0) {
        bson_set_error(error, 0, 0, "%s line %d: not \"key = value\" or \"[section]\"", path, rc);
        return false;
    }
    return true;
}

/* Splits "--section.key[=value]" into its parts; value NULL when not inline. */
static bool split_flag(const char *arg, char *section, size_t section_size, char *key,
                       size_t key_size, const char **value)
{
    const char *name = arg + 2;
    const char *dot = strchr(name, '.');
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    if (!dot || dot > name + name_len || (size_t)(dot - name) >= section_size ||
        name_len - (size_t)(dot - name) - 1 >= key_size) {
        return false;
    }
    memcpy(section, name, (size_t)(dot - name));
    section[dot - name] = '\0';
    memcpy(key, dot + 1, name_len - (size_t)(dot - name) - 1);
    key[name_len - (size_t)(dot - name) - 1] = '\0';
    *value = eq ? eq + 1 : NULL;
    return true;
}

bool cc_config_from_args(cc_config_t *config, int argc, char **argv, cc_cli_action_t *action,
                         bson_error_t *error)
{
    *action = CC_CLI_RUN;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *action = CC_CLI_HELP;
            return true;
        }
        if (strcmp(arg, "--version") == 0) {
            *action = CC_CLI_VERSION;
            return true;
        }
        if (strcmp(arg, "--check-config") == 0) {
            *action = CC_CLI_CHECK_CONFIG;
        } else if (strcmp(arg, "--config") == 0 || strncmp(arg, "--config=", 9) == 0) {
            const char *path = arg[8] == '=' ? arg + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (!path) {
                bson_set_error(error, 0, 0, "--config needs a file");
                return false;
            }
            if (!cc_config_load_file(config, path, error)) {
                return false;
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--check-config") == 0) {
            continue;
        }
        if (strcmp(arg, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(arg, "--config=", 9) == 0) {
            continue;
        }
        char section[32], key[64];
        const char *value;
        if (strncmp(arg, "--", 2) != 0 ||
            !split_flag(arg, section, sizeof section, key, sizeof key, &value)) {
            bson_set_error(error, 0, 0, "%s: not a flag; flags look like --wire.listen=HOST:PORT",
                           arg);
            return false;
        }
        if (!value) {
            if (i + 1 >= argc) {
                bson_set_error(error, 0, 0, "%s needs a value", arg);
                return false;
            }
            value = argv[++i];
        }
        if (!cc_config_set(config, section, key, value, error)) {
            return false;
        }
    }
    return true;
}

void cc_config_print_help(FILE *out, const char *program)
{
    fprintf(out,
            "usage: %s [--config FILE] [--SECTION.KEY VALUE ...] [--check-config]\n"
            "       %s --help | --version\n"
            "       %s token --secret-file F --ns DB.COLL [--filter JSON] [--fields A,B] --ttl 1h\n"
            "             (a development JWT for the push port: %s token --help)\n\n"
            "Every key of the config file is also a flag; flags override the file.\n\n",
            program, program, program, program);
    const char *section = "";
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const config_key_t *key = &config_keys[i];
        if (strcmp(section, key->section) != 0) {
            section = key->section;
            fprintf(out, "[%s]\n", section);
        }
        fprintf(out, "  --%s.%s (default \"%s\")\n      %s\n", key->section, key->name,
                key->default_value, key->help);
    }
}
