/* SPDX-License-Identifier: Apache-2.0 */
/* Connections per client address (peers.h): a chained hash table whose
 * entries exist only while their address has a connection, so a scan of
 * many addresses leaves nothing behind. */
#include "changecast/peers.h"

#include <bson/bson.h>
#include <string.h>

#define PEER_BUCKETS 1024

typedef struct peer {
    char ip[64];
    size_t count;
    struct peer *next;
} peer_t;

struct cc_peers {
    peer_t *buckets[PEER_BUCKETS];
};

cc_peers_t *cc_peers_new(void)
{
    return bson_malloc0(sizeof(cc_peers_t));
}

void cc_peers_free(cc_peers_t *peers)
{
    if (!peers) {
        return;
    }
    for (size_t i = 0; i < PEER_BUCKETS; i++) {
        while (peers->buckets[i]) {
            peer_t *next = peers->buckets[i]->next;
            bson_free(peers->buckets[i]);
            peers->buckets[i] = next;
        }
    }
    bson_free(peers);
}

static peer_t **find(const cc_peers_t *peers, const char *ip)
{
    size_t hash = 5381;
    for (const char *p = ip; *p; p++) {
        hash = hash * 33 + (unsigned char)*p;
    }
    peer_t **slot = (peer_t **)&peers->buckets[hash % PEER_BUCKETS];
    while (*slot && strcmp((*slot)->ip, ip) != 0) {
        slot = &(*slot)->next;
    }
    return slot;
}

const char *cc_peers_admit(cc_peers_t *peers, const char *ip, int64_t limit)
{
    peer_t **slot = find(peers, ip);
    if (*slot && (int64_t)(*slot)->count >= limit) {
        return NULL;
    }
    if (!*slot) {
        *slot = bson_malloc0(sizeof **slot);
        bson_strncpy((*slot)->ip, ip, sizeof(*slot)->ip);
    }
    (*slot)->count++;
    return (*slot)->ip;
}

void cc_peers_release(cc_peers_t *peers, const char *ip)
{
    peer_t **slot = find(peers, ip);
    if (*slot && --(*slot)->count == 0) {
        peer_t *gone = *slot;
        *slot = gone->next;
        bson_free(gone);
    }
}

size_t cc_peers_count(const cc_peers_t *peers, const char *ip)
{
    peer_t **slot = find(peers, ip);
    return *slot ? (*slot)->count : 0;
}
