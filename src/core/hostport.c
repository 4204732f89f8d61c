/* SPDX-License-Identifier: Apache-2.0 */
/* Listen-address parsing, and socket addresses as text. Pure; used by config
 * validation, the listeners and the logs of both ports. */
#include "changecast/hostport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cc_hostport_parse(const char *text, cc_hostport_t *out, bson_error_t *error)
{
    const char *host = text;
    size_t host_len;
    const char *colon;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            bson_set_error(error, 0, 0, "\"%s\" is not [ipv6]:port", text);
            return false;
        }
        host = text + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon) {
            bson_set_error(error, 0, 0, "\"%s\" has no port: use host:port", text);
            return false;
        }
        host_len = (size_t)(colon - text);
    }
    if (host_len == 0 || host_len >= sizeof out->host) {
        bson_set_error(error, 0, 0, "\"%s\" has an empty or over-long host", text);
        return false;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535) {
        bson_set_error(error, 0, 0, "\"%s\" has no valid port (0-65535)", text);
        return false;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (uint16_t)port;
    return true;
}

bool cc_hostport_is_loopback(const cc_hostport_t *hp)
{
    return strncmp(hp->host, "127.", 4) == 0 || strcmp(hp->host, "::1") == 0 ||
           strcmp(hp->host, "localhost") == 0;
}

void cc_sockaddr_ip(const struct sockaddr *address, char *out, size_t size)
{
    bson_strncpy(out, "unix", size);
    if (address->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)address)->sin_addr, out, (socklen_t)size);
    } else if (address->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)address)->sin6_addr, out,
                  (socklen_t)size);
    }
}

void cc_sockaddr_format(const struct sockaddr *address, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    cc_sockaddr_ip(address, host, sizeof host);
    if (address->sa_family == AF_INET) {
        snprintf(out, size, "%s:%u", host, ntohs(((const struct sockaddr_in *)address)->sin_port));
    } else if (address->sa_family == AF_INET6) {
        snprintf(out, size, "[%s]:%u", host,
                 ntohs(((const struct sockaddr_in6 *)address)->sin6_port));
    } else {
        snprintf(out, size, "%s", host);
    }
}
