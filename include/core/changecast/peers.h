/* SPDX-License-Identifier: Apache-2.0 */
/* core/peers: open connections per client address, for the per-address
 * limits of both ports (wire.max_connections_per_ip,
 * push.max_connections_per_ip). One thread per table. Calls libbson only. */
#ifndef CHANGECAST_PEERS_H
#define CHANGECAST_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cc_peers cc_peers_t;

cc_peers_t *cc_peers_new(void);
void cc_peers_free(cc_peers_t *peers);
/* Counts one more connection from `ip` unless it already has `limit`.
 * Returns the table's own copy of `ip`, valid until that connection is
 * released (a connection may keep it instead of a copy), or NULL. */
const char *cc_peers_admit(cc_peers_t *peers, const char *ip, int64_t limit);
/* One connection from `ip` has gone (admitted before). */
void cc_peers_release(cc_peers_t *peers, const char *ip);
/* Connections counted for `ip` now. */
size_t cc_peers_count(const cc_peers_t *peers, const char *ip);

#endif
