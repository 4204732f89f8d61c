/* SPDX-License-Identifier: Apache-2.0 */
/* push/wsframe (pure layer): a client's WebSocket frame header checked
 * against RFC 6455 section 5 before any of its payload is taken: masked
 * (5.1), no reserved bits or opcodes (5.2; RSV1 once permessage-deflate is
 * agreed, RFC 7692), control frames whole and at
 * most 125 bytes (5.5), a payload no larger than the message limit. What
 * breaks a rule names the close code it earns. No lws, no I/O. */
#ifndef CC_PUSH_WSFRAME_H
#define CC_PUSH_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cc_ws_frame {
    bool fin;
    bool compressed; /* RSV1: the first frame of a permessage-deflate message */
    uint8_t opcode;
    uint8_t mask[4];
    size_t header_len; /* bytes before the payload, mask key included */
    uint64_t payload_len;
} cc_ws_frame_t;

typedef enum cc_ws_frame_status {
    CC_WS_FRAME_INCOMPLETE, /* the header has not all arrived */
    CC_WS_FRAME_OK,
    CC_WS_FRAME_REFUSED, /* *close_code and *why say why */
} cc_ws_frame_status_t;

/* The header at the start of `bytes`; a data frame's payload may not pass
 * max_payload (1009 when it does); a control frame's is at most 125. RSV1
 * is accepted on a message's first frame when permessage-deflate was
 * agreed. */
cc_ws_frame_status_t cc_ws_frame_parse(const uint8_t *bytes, size_t len, uint64_t max_payload,
                                       bool deflate_agreed, cc_ws_frame_t *frame,
                                       uint16_t *close_code, const char **why);

/* Unmasks `len` payload bytes in place, the first being the payload's
 * byte number `offset`. */
void cc_ws_unmask(uint8_t *payload, size_t len, const uint8_t mask[4], uint64_t offset);

/* A close frame's payload from a client (5.5.1, 7.4): empty, or a code a
 * client may send followed by UTF-8. 0 when it is acceptable, else the
 * code to close with. */
uint16_t cc_ws_close_payload_check(const uint8_t *payload, size_t len);

#endif
