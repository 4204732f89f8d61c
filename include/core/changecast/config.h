/* SPDX-License-Identifier: Apache-2.0 */
/* core/config: the INI file (parsed by inih) and the command line, one key
 * table for both. Every key "key" of section "[s]" is also the flag --s.key.
 * Flags override the file. Calls nothing of ours but hostport and log. */
#ifndef CHANGECAST_CONFIG_H
#define CHANGECAST_CONFIG_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cc_config {
    struct {
        char *listen;
        char *upstream;
        char *tls_cert_file;
        char *tls_key_file;
        char *tls_client_ca_file;
        int64_t max_connections;
        int64_t max_connections_per_ip;
        int64_t handshake_timeout_ms;
        int64_t message_timeout_ms;
        int64_t primary_wait_ms;
        int64_t connect_timeout_ms;
        int64_t drain_timeout_ms;
    } wire;
    struct {
        char *expose;
        char *full_document;
        char *full_document_before_change;
        char *token_file;
        int64_t token_save_ms;
        int64_t max_await_ms;
        int64_t ring_events;
        int64_t ring_bytes;
    } changes;
    struct {
        char *listen; /* empty: no push port */
        int64_t flush_ms;
        int64_t max_flush_ms;
        int64_t heartbeat_ms;
        int64_t idle_timeout_ms;
        int64_t max_queue_bytes;
        int64_t unsent_bytes;
        int64_t stall_timeout_ms;
        int64_t healthz_max_lag_ms;
        int64_t max_message_bytes;
        int64_t max_subscriptions;
        int64_t retry_ms;
        int64_t watermark_ms;
        int64_t snapshot_max_docs;
        int64_t snapshot_max_bytes;
        int64_t max_pending_docs;
        bool compression;
        bool demo;
        char *allowed_origins;
        int64_t max_connections;
        int64_t max_connections_per_ip;
        int64_t max_filter_bytes;
        int64_t max_filter_depth;
        char *tls_cert_file;
        char *tls_key_file;
        char *tls_client_ca_file;
    } push;
    struct {
        char *mode;
        bool allow_anonymous_public;
        char *jwt_secret_file;
        char *jwt_public_key_file;
        char *jwks_file;
        char *issuer;
        char *audience;
        int64_t leeway_s;
        char *cookie;
    } auth;
    struct {
        char *level;
        char *file;
    } log;
    struct {
        char *name;
    } instance;
} cc_config_t;

typedef enum cc_cli_action {
    CC_CLI_RUN,
    CC_CLI_HELP,
    CC_CLI_VERSION,
    CC_CLI_CHECK_CONFIG,
} cc_cli_action_t;

void cc_config_init(cc_config_t *config);
void cc_config_destroy(cc_config_t *config);

/* Sets one key from text; the error names the key and says what is accepted. */
bool cc_config_set(cc_config_t *config, const char *section, const char *key, const char *value,
                   bson_error_t *error);

bool cc_config_load_file(cc_config_t *config, const char *path, bson_error_t *error);

/* Reads --config FILE, then the file, then every other flag on top. */
bool cc_config_from_args(cc_config_t *config, int argc, char **argv, cc_cli_action_t *action,
                         bson_error_t *error);

void cc_config_print_help(FILE *out, const char *program);

#endif
