/* SPDX-License-Identifier: Apache-2.0 */
/* push/encode (pure layer): every byte changecast writes on a push stream
 * is framed here, and only here: Server-Sent Events (WHATWG HTML, "Server-
 * sent events", the event stream format) and WebSocket frames (RFC 6455
 * section 5.2; a server's frames are never masked). No lws, no sockets:
 * functions from text to cc_buf_t, unit-tested in tests/unit/test_encode.c.
 * Calls buf.h and libbson. */
#ifndef CC_PUSH_ENCODE_H
#define CC_PUSH_ENCODE_H

#include "buf.h"

#include <bson/bson.h>
#include <stdbool.h>

/* A piece of text to be concatenated into a frame. */
typedef struct cc_span {
    const char *data;
    size_t len;
} cc_span_t;
#define CC_SPAN_LIT(text) ((cc_span_t){(text), sizeof(text) - 1})
cc_span_t cc_span_str(const char *text);

enum {
    CC_WS_OP_TEXT = 0x1,
    CC_WS_OP_CLOSE = 0x8,
    CC_WS_OP_PING = 0x9,
    CC_WS_OP_PONG = 0xa,
};
#define CC_WS_HEADER_MAX 10
/* RSV1 on a message's first frame: permessage-deflate compressed it. */
#define CC_WS_RSV1 0x40

/* The header of a final, unmasked frame carrying `payload` bytes: 2, 4 or
 * 10 bytes (7-bit, 16-bit or 64-bit length, RFC 6455 section 5.2). */
size_t cc_encode_ws_header(uint8_t out[CC_WS_HEADER_MAX], uint8_t opcode, uint64_t payload);

/* One complete text frame whose payload is the spans, concatenated. */
cc_buf_t *cc_encode_ws_text(const cc_span_t *parts, size_t count);

/* One event: "id: <id>" (when id is not NULL), "event: <type>", the data
 * (the spans concatenated; one "data:" line per line of it, so a line
 * break inside can never end the event early), then the blank line. */
cc_buf_t *cc_encode_sse(const char *id, const char *type, const cc_span_t *parts, size_t count);

/* An SSE comment (": text"), which clients ignore: the heartbeat. */
cc_buf_t *cc_encode_sse_comment(const char *text);

/* The spans concatenated, unframed: a WebSocket message body that a
 * per-subscription head completes (cc_encode_ws_head). */
cc_buf_t *cc_encode_concat(const cc_span_t *parts, size_t count);

/* The part of a WebSocket message that names one subscription:
 * `{"id":"<id>",`. Ids are checked to a safe alphabet before they get
 * here (ws.c), so they are written as they are. A message to a
 * subscription is this head, then a body that starts with `"type":`. */
cc_buf_t *cc_encode_ws_head(const char *sub_id);

/* A document as relaxed Extended JSON, or when that is impossible (a
 * string that is not UTF-8) a fixed error object; never NULL. */
char *cc_json_or_placeholder(const bson_t *doc, size_t *len);

/* A notice (a message that is not a change: reset, watermark, snapshot
 * markers, errors) from its fields. On SSE: "event: <type>", id line when
 * sse_id, data = the fields as JSON. On WebSocket: the body after a head,
 * `"type":"<type>",<fields>}`. */
cc_buf_t *cc_encode_sse_notice(const char *type, const char *sse_id, const bson_t *fields);
cc_buf_t *cc_encode_ws_notice_body(const char *type, const bson_t *fields);

/* A whole WebSocket text frame carrying `message` as JSON (replies that
 * name no subscription: pong, authenticated, errors without an id). */
cc_buf_t *cc_encode_ws_json(const bson_t *message);

#endif
