/* SPDX-License-Identifier: Apache-2.0 */
/* core/hostport: "host:port" and "[v6]:port" parsing for listen addresses,
 * and a socket address as text for logs and per-address limits. */
#ifndef CHANGECAST_HOSTPORT_H
#define CHANGECAST_HOSTPORT_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct cc_hostport {
    char host[256];
    uint16_t port;
} cc_hostport_t;

bool cc_hostport_parse(const char *text, cc_hostport_t *out, bson_error_t *error);

/* True when host names a loopback interface (127.0.0.0/8, ::1, localhost). */
bool cc_hostport_is_loopback(const cc_hostport_t *hp);

struct sockaddr;
/* The address alone ("unix" for a socket without one). */
void cc_sockaddr_ip(const struct sockaddr *address, char *out, size_t size);
/* "ip:port", "[ipv6]:port". */
void cc_sockaddr_format(const struct sockaddr *address, char *out, size_t size);

#endif
