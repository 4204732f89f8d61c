/* SPDX-License-Identifier: Apache-2.0 */
/* wire/handshake: how the proxy presents itself. Pure functions from
 * documents to documents; the session decides when to call them. Calls
 * libbson only. See docs/wire-proxy.md for the why. */
#ifndef CC_WIRE_HANDSHAKE_H
#define CC_WIRE_HANDSHAKE_H

#include <bson/bson.h>
#include <stdbool.h>

/* hello, isMaster or ismaster: the three spellings drivers and shells send. */
bool cc_handshake_is_hello(const char *command_name);

/* The command forwarded upstream for a client's hello: unchanged but for
 * loadBalanced and compression (which concern only the proxy, see .c), and
 * client metadata on any handshake after the first of the connection, which
 * MongoDB refuses with code 186. Reports whether the client asked for the
 * load-balancer form. */
void cc_handshake_rewrite_request(const bson_t *command, bool first_on_connection, bson_t *out,
                                  bool *load_balanced);

/* The reply the client sees: an allow-list of the upstream's reply, plus
 * msg:"isdbgrid" and, in load-balanced mode, serviceId. */
void cc_handshake_rewrite_reply(const bson_t *upstream_reply, bool load_balanced,
                                const bson_oid_t *service_id, bson_t *out);

/* Whether an upstream hello reply succeeded and comes from a primary (the
 * reply worth keeping for answering handshakes while none is known). */
bool cc_handshake_from_primary(const bson_t *reply);

/* A handshake changecast can answer itself while no primary is known (a
 * mongos answers its handshakes whether or not its shards are reachable):
 * one that does not authenticate (no saslSupportedMechs, no
 * speculativeAuthenticate, whose answers belong to MongoDB). */
bool cc_handshake_answerable(const bson_t *command);

/* A command that authenticates the connection it is sent on. */
bool cc_handshake_is_auth(const char *command_name);

/* That answer: the router reply of `known` (the last successful upstream
 * reply) with what belongs to this request and this connection: the role
 * field the command's spelling asks for (isWritablePrimary for hello,
 * ismaster for the legacy names), helloOk when asked, localTime now,
 * connectionId changecast's own. */
void cc_handshake_local_reply(const bson_t *command, const bson_t *known, bool load_balanced,
                              const bson_oid_t *service_id, int64_t connection_id, bson_t *out);

/* Legacy OP_QUERY handshakes may wrap the command as {$query: {...}, ...} or
 * {query: {...}, ...}. Finds the command inside; wrapper_key is NULL when the
 * document is the command itself. */
bool cc_handshake_unwrap_query(const bson_t *query_doc, bson_t *command, const char **wrapper_key);

/* Puts a rewritten command back in place of the wrapped one. */
void cc_handshake_rewrap_query(const bson_t *query_doc, const char *wrapper_key,
                               const bson_t *command, bson_t *out);

#endif
