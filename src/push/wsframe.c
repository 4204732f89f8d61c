/* SPDX-License-Identifier: Apache-2.0 */
/* Client WebSocket frame headers (wsframe.h), RFC 6455 section 5.2:
 *   byte 0: FIN, RSV1-3, opcode; byte 1: MASK, 7-bit length (126: a 16-bit
 *   length follows, 127: a 64-bit one); then the 4-byte masking key. */
#include "wsframe.h"

#include <bson/bson.h>
#include <string.h>

enum {
    CLOSE_PROTOCOL_ERROR = 1002,
    CLOSE_INVALID_PAYLOAD = 1007,
    CLOSE_MESSAGE_TOO_BIG = 1009,
};

static cc_ws_frame_status_t refuse(uint16_t code, const char *reason, uint16_t *close_code,
                                   const char **why)
{
    *close_code = code;
    *why = reason;
    return CC_WS_FRAME_REFUSED;
}

static bool known_opcode(uint8_t opcode)
{
    return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xa);
}

cc_ws_frame_status_t cc_ws_frame_parse(const uint8_t *bytes, size_t len, uint64_t max_payload,
                                       bool deflate_agreed, cc_ws_frame_t *frame,
                                       uint16_t *close_code, const char **why)
{
    if (len < 2) {
        return CC_WS_FRAME_INCOMPLETE;
    }
    frame->fin = bytes[0] & 0x80;
    frame->opcode = bytes[0] & 0x0f;
    bool control = frame->opcode & 0x8;
    frame->compressed = bytes[0] & 0x40;
    if (bytes[0] & 0x30) {
        return refuse(CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension uses them)",
                      close_code, why);
    }
    /* RSV1 marks a compressed message on its first frame only (RFC 7692
     * 6.1), and only once permessage-deflate was agreed. */
    if (frame->compressed && (!deflate_agreed || control || frame->opcode == 0x0)) {
        return refuse(CLOSE_PROTOCOL_ERROR,
                      deflate_agreed ? "RSV1 on a control or continuation frame"
                                     : "reserved bits set (no extension was agreed)",
                      close_code, why);
    }
    if (!known_opcode(frame->opcode)) {
        return refuse(CLOSE_PROTOCOL_ERROR, "unknown opcode", close_code, why);
    }
    if (!(bytes[1] & 0x80)) {
        return refuse(CLOSE_PROTOCOL_ERROR, "a client's frames must be masked", close_code, why);
    }
    uint8_t short_len = bytes[1] & 0x7f;
    size_t length_bytes = short_len == 126 ? 2 : short_len == 127 ? 8 : 0;
    if (control && (short_len > 125 || !frame->fin)) {
        return refuse(CLOSE_PROTOCOL_ERROR,
                      short_len > 125 ? "a control frame carries at most 125 bytes"
                                      : "a control frame may not be fragmented",
                      close_code, why);
    }
    if (len < 2 + length_bytes) {
        return CC_WS_FRAME_INCOMPLETE;
    }
    uint64_t payload = short_len;
    if (length_bytes) {
        payload = 0;
        for (size_t i = 0; i < length_bytes; i++) {
            payload = (payload << 8) | bytes[2 + i];
        }
    }
    /* Refused from the length alone, before any payload arrives: 2^63 - 1
     * and 2^64 - 1 included. */
    if (!control && payload > max_payload) {
        return refuse(CLOSE_MESSAGE_TOO_BIG, "message too large", close_code, why);
    }
    if (len < 2 + length_bytes + 4) {
        return CC_WS_FRAME_INCOMPLETE;
    }
    memcpy(frame->mask, bytes + 2 + length_bytes, 4);
    frame->header_len = 2 + length_bytes + 4;
    frame->payload_len = payload;
    return CC_WS_FRAME_OK;
}

void cc_ws_unmask(uint8_t *payload, size_t len, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++) {
        payload[i] ^= mask[(offset + i) & 3];
    }
}

/* Codes a peer may send (7.4.1, 7.4.2): 1000-1003, 1007-1011 and the
 * registered 1012-1014, and 3000-4999; never 1004-1006, 1015 or 0-999. */
static bool sendable_code(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

uint16_t cc_ws_close_payload_check(const uint8_t *payload, size_t len)
{
    if (len == 0) {
        return 0;
    }
    if (len == 1 || !sendable_code((unsigned)(payload[0] << 8 | payload[1]))) {
        return CLOSE_PROTOCOL_ERROR;
    }
    if (!bson_utf8_validate((const char *)payload + 2, len - 2, true)) {
        return CLOSE_INVALID_PAYLOAD;
    }
    return 0;
}
