/* SPDX-License-Identifier: Apache-2.0 */
/* push/emit (bottom of the rules layer): puts one subscription's messages
 * into its connection's queue, by reference. Changes, live-query states and
 * notices all leave through here, so a WebSocket message always carries its
 * subscription's head. Calls the pure layers and conn.h only. */
#ifndef CC_PUSH_EMIT_H
#define CC_PUSH_EMIT_H

#include "conn.h"
#include "sub.h"

#include <bson/bson.h>

/* Queues a rendered body for the subscription (a reference is taken). */
void cc_emit_body(cc_sub_t *sub, cc_buf_t *body);
/* A message that is not a change: on WebSocket {"id", "type", ...fields};
 * on SSE "event: type" with the fields as data, and an id line when sse_id. */
void cc_emit_notice(cc_sub_t *sub, const char *type, const char *sse_id, const bson_t *fields);
/* That notice's body for connections of `kind`, to share among many
 * subscriptions through cc_emit_body (the caller owns the reference). */
cc_buf_t *cc_emit_render_notice(cc_conn_kind_t kind, const char *type, const char *sse_id,
                                const bson_t *fields);
/* A reset notice; whatever states were waiting for the subscriber are void. */
void cc_emit_reset(cc_sub_t *sub, const char *reason, const char *message);

#endif
