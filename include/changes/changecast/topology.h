/* SPDX-License-Identifier: Apache-2.0 */
/* changes/topology: follows the upstream deployment with mongo-c-driver's
 * own monitoring (server-discovery-and-monitoring spec) on background
 * threads, and publishes the primary's address to core/primary. */
#ifndef CHANGECAST_TOPOLOGY_H
#define CHANGECAST_TOPOLOGY_H

#include "changecast/primary.h"

#include <bson/bson.h>

typedef struct cc_topology cc_topology_t;

/* uri is the upstream connection string; monitoring connections carry the
 * appName "changecast-monitor@<instance>". A deployment without a primary
 * is logged (no_primary) once it has had none for quiet_ms. */
cc_topology_t *cc_topology_start(const char *uri, const char *instance, int64_t quiet_ms,
                                 cc_primary_t *primary, bson_error_t *error);
void cc_topology_stop(cc_topology_t *topology);

#endif
