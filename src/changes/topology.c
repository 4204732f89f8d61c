/* SPDX-License-Identifier: Apache-2.0 */
/* The driver's pooled monitoring already does what the proxy needs: it
 * discovers the members, follows elections over the streaming hello
 * protocol, and reports every change through the SDAM "topology changed"
 * event. This file turns those events into cc_primary_publish() calls. A
 * thread of ours only asks for server selection while no primary is known,
 * which makes the driver rescan every 500 ms instead of every
 * heartbeatFrequencyMS. */
#include "changecast/log.h"
#include "changecast/topology.h"

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

struct cc_topology {
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    cc_primary_t *primary;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool stopping;
    bool primary_known;
    int64_t quiet_us; /* no primary for this long before it is logged */
};

/* Server types that accept writes (SDAM spec "ServerType"). */
static bool accepts_writes(const char *type)
{
    return strcmp(type, "RSPrimary") == 0 || strcmp(type, "Standalone") == 0 ||
           strcmp(type, "Mongos") == 0 || strcmp(type, "LoadBalancer") == 0;
}

static mongoc_server_description_t *find_writable(mongoc_server_description_t **servers,
                                                  size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (accepts_writes(mongoc_server_description_type(servers[i]))) {
            return servers[i];
        }
    }
    return NULL;
}

static const char *type_of(mongoc_server_description_t **servers, size_t count,
                           const mongoc_host_list_t *host)
{
    for (size_t i = 0; i < count; i++) {
        const mongoc_host_list_t *candidate = mongoc_server_description_host(servers[i]);
        if (strcmp(candidate->host_and_port, host->host_and_port) == 0) {
            return mongoc_server_description_type(servers[i]);
        }
    }
    return "Unknown";
}

static void on_topology_changed(const mongoc_apm_topology_changed_t *event)
{
    cc_topology_t *topology = mongoc_apm_topology_changed_get_context(event);
    const mongoc_topology_description_t *before =
        mongoc_apm_topology_changed_get_previous_description(event);
    const mongoc_topology_description_t *after =
        mongoc_apm_topology_changed_get_new_description(event);
    size_t before_count, after_count;
    mongoc_server_description_t **before_servers =
        mongoc_topology_description_get_servers(before, &before_count);
    mongoc_server_description_t **after_servers =
        mongoc_topology_description_get_servers(after, &after_count);

    mongoc_server_description_t *old_primary = find_writable(before_servers, before_count);
    mongoc_server_description_t *new_primary = find_writable(after_servers, after_count);
    cc_hostport_t address;
    bool demoted = false;
    if (new_primary) {
        const mongoc_host_list_t *host = mongoc_server_description_host(new_primary);
        bson_strncpy(address.host, host->host, sizeof address.host);
        address.port = host->port;
    }
    if (old_primary) {
        /* Reachable but no longer primary (stepped down): its connections
         * must go. Merely unreachable: they fail by themselves. */
        const char *now =
            type_of(after_servers, after_count, mongoc_server_description_host(old_primary));
        demoted = strcmp(now, "Unknown") != 0 && !accepts_writes(now);
    }
    if (!old_primary != !new_primary || demoted ||
        (old_primary && new_primary &&
         strcmp(mongoc_server_description_host(old_primary)->host_and_port,
                mongoc_server_description_host(new_primary)->host_and_port) != 0)) {
        cc_info("event=topology_changed type=%s primary=%s demoted=%s",
                mongoc_topology_description_type(after),
                new_primary ? mongoc_server_description_host(new_primary)->host_and_port : "none",
                demoted ? "true" : "false");
    }
    cc_primary_publish(topology->primary, new_primary ? &address : NULL, demoted);

    pthread_mutex_lock(&topology->lock);
    topology->primary_known = new_primary != NULL;
    pthread_cond_signal(&topology->changed);
    pthread_mutex_unlock(&topology->lock);

    mongoc_server_descriptions_destroy_all(before_servers, before_count);
    mongoc_server_descriptions_destroy_all(after_servers, after_count);
}

static void *monitor_thread(void *arg)
{
    cc_topology_t *topology = arg;
    mongoc_client_t *client = mongoc_client_pool_pop(topology->pool);
    int64_t last_warning_us = 0;
    int64_t unknown_since_us = bson_get_monotonic_time();

    pthread_mutex_lock(&topology->lock);
    while (!topology->stopping) {
        if (!topology->primary_known) {
            pthread_mutex_unlock(&topology->lock);
            bson_error_t error;
            mongoc_server_description_t *server =
                mongoc_client_select_server(client, true, NULL, &error);
            int64_t now = bson_get_monotonic_time();
            /* Selection rounds stay short (shutdown stays prompt); a slow
             * deployment is not reported until it has been without a
             * primary for as long as applications are told to wait. */
            if (server) {
                mongoc_server_description_destroy(server);
            } else if (now - unknown_since_us >= topology->quiet_us &&
                       now - last_warning_us > 10 * 1000 * 1000) {
                last_warning_us = now;
                cc_warn("event=no_primary for_ms=%lld error=\"%s\"",
                        (long long)((now - unknown_since_us) / 1000), error.message);
            }
            pthread_mutex_lock(&topology->lock);
            continue;
        }
        unknown_since_us = 0;
        pthread_cond_wait(&topology->changed, &topology->lock);
        if (!topology->primary_known) {
            unknown_since_us = bson_get_monotonic_time();
        }
    }
    pthread_mutex_unlock(&topology->lock);
    mongoc_client_pool_push(topology->pool, client);
    return NULL;
}

/* The driver logs through us, as logfmt, so the log stays one format. Its
 * debug and trace chatter (a line per failed heartbeat) shows only at debug. */
static void on_driver_log(mongoc_log_level_t level, const char *domain, const char *message,
                          void *arg)
{
    (void)arg;
    cc_log_level_t ours = level <= MONGOC_LOG_LEVEL_WARNING ? CC_LOG_WARN
                          : level <= MONGOC_LOG_LEVEL_INFO  ? CC_LOG_INFO
                                                            : CC_LOG_DEBUG;
    if (level <= MONGOC_LOG_LEVEL_CRITICAL) {
        ours = CC_LOG_ERROR;
    }
    if (cc_log_enabled(ours)) {
        cc_log(ours, "event=driver_log domain=%s message=\"%s\"", domain, message);
    }
}

cc_topology_t *cc_topology_start(const char *uri_string, const char *instance, int64_t quiet_ms,
                                 cc_primary_t *primary, bson_error_t *error)
{
    mongoc_log_set_handler(on_driver_log, NULL);
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_string, error);
    if (!uri) {
        return NULL;
    }
    /* Short selection rounds keep shutdown prompt; applications keep their
     * own serverSelectionTimeoutMS, this one is only the monitor's. */
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000);
    char app_name[128];
    snprintf(app_name, sizeof app_name, "changecast-monitor@%s", instance);
    mongoc_uri_set_appname(uri, app_name);

    cc_topology_t *topology = bson_malloc0(sizeof *topology);
    topology->quiet_us = quiet_ms * 1000;
    topology->uri = uri;
    topology->primary = primary;
    pthread_mutex_init(&topology->lock, NULL);
    pthread_cond_init(&topology->changed, NULL);
    topology->pool = mongoc_client_pool_new_with_error(uri, error);
    if (!topology->pool) {
        goto fail;
    }
    mongoc_client_pool_set_error_api(topology->pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_apm_callbacks_t *callbacks = mongoc_apm_callbacks_new();
    mongoc_apm_set_topology_changed_cb(callbacks, on_topology_changed);
    mongoc_client_pool_set_apm_callbacks(topology->pool, callbacks, topology);
    mongoc_apm_callbacks_destroy(callbacks);
    if (pthread_create(&topology->thread, NULL, monitor_thread, topology) != 0) {
        bson_set_error(error, 0, 0, "cannot start the topology monitor thread");
        goto fail;
    }
    return topology;
fail:
    if (topology->pool) {
        mongoc_client_pool_destroy(topology->pool);
    }
    mongoc_uri_destroy(uri);
    pthread_mutex_destroy(&topology->lock);
    pthread_cond_destroy(&topology->changed);
    bson_free(topology);
    return NULL;
}

void cc_topology_stop(cc_topology_t *topology)
{
    if (!topology) {
        return;
    }
    pthread_mutex_lock(&topology->lock);
    topology->stopping = true;
    pthread_cond_signal(&topology->changed);
    pthread_mutex_unlock(&topology->lock);
    pthread_join(topology->thread, NULL);
    /* Destroying the pool stops its monitors; no callback runs after it. */
    mongoc_client_pool_destroy(topology->pool);
    mongoc_uri_destroy(topology->uri);
    pthread_mutex_destroy(&topology->lock);
    pthread_cond_destroy(&topology->changed);
    bson_free(topology);
}
