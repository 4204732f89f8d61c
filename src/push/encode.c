/* SPDX-License-Identifier: Apache-2.0 */
/* Framing in one place, so the rules of both wire formats are checked
 * once (see encode.h). Sizes are computed first and each buffer is
 * written once, with no intermediate copies. */
#include "changecast/json.h"
#include "encode.h"

#include <string.h>

cc_span_t cc_span_str(const char *text)
{
    return (cc_span_t){text, strlen(text)};
}

static size_t total(const cc_span_t *parts, size_t count)
{
    size_t len = 0;
    for (size_t i = 0; i < count; i++) {
        len += parts[i].len;
    }
    return len;
}

static char *put(char *at, const void *bytes, size_t len)
{
    memcpy(at, bytes, len);
    return at + len;
}

static char *put_spans(char *at, const cc_span_t *parts, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        at = put(at, parts[i].data, parts[i].len);
    }
    return at;
}

size_t cc_encode_ws_header(uint8_t out[CC_WS_HEADER_MAX], uint8_t opcode, uint64_t payload)
{
    out[0] = (uint8_t)(0x80 | opcode); /* FIN: we never fragment */
    if (payload < 126) {
        out[1] = (uint8_t)payload;
        return 2;
    }
    if (payload <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(payload >> 8);
        out[3] = (uint8_t)payload;
        return 4;
    }
    out[1] = 127; /* the most significant bit stays 0 (section 5.2) */
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)(payload >> (56 - 8 * i));
    }
    return 10;
}

cc_buf_t *cc_encode_ws_text(const cc_span_t *parts, size_t count)
{
    uint8_t header[CC_WS_HEADER_MAX];
    size_t payload = total(parts, count);
    size_t header_len = cc_encode_ws_header(header, CC_WS_OP_TEXT, payload);
    cc_buf_t *buf = cc_buf_new(header_len + payload);
    put_spans(put(buf->data, header, header_len), parts, count);
    return buf;
}

cc_buf_t *cc_encode_concat(const cc_span_t *parts, size_t count)
{
    cc_buf_t *buf = cc_buf_new(total(parts, count));
    put_spans(buf->data, parts, count);
    return buf;
}

/* Writes (or, with out NULL, measures) the data field: the bytes, with a line break (CR, LF or
 * CRLF, the parser's own rule, also across spans) reported once as '\n'. */
static size_t walk_data(const cc_span_t *parts, size_t count, char *out)
{
    static const char field[] = "data: ";
    size_t len = 0;
    bool after_cr = false;
    if (out) {
        memcpy(out, field, 6);
    }
    len += 6;
    for (size_t i = 0; i < count; i++) {
        for (size_t j = 0; j < parts[i].len; j++) {
            char c = parts[i].data[j];
            if (c == '\n' && after_cr) {
                after_cr = false;
                continue; /* the LF of a CRLF: the break was written at the CR */
            }
            after_cr = c == '\r';
            if (c == '\r' || c == '\n') {
                if (out) {
                    memcpy(out + len, "\ndata: ", 7);
                }
                len += 7;
            } else {
                if (out) {
                    out[len] = c;
                }
                len++;
            }
        }
    }
    if (out) {
        out[len] = '\n';
    }
    return len + 1;
}

cc_buf_t *cc_encode_sse(const char *id, const char *type, const cc_span_t *parts, size_t count)
{
    size_t id_len = id ? strlen(id) : 0, type_len = strlen(type);
    size_t len = (id ? 4 + id_len + 1 : 0) + 7 + type_len + 1 + walk_data(parts, count, NULL) + 1;
    cc_buf_t *buf = cc_buf_new(len);
    char *at = buf->data;
    if (id) {
        at = put(put(put(at, "id: ", 4), id, id_len), "\n", 1);
    }
    at = put(put(put(at, "event: ", 7), type, type_len), "\n", 1);
    at += walk_data(parts, count, at);
    *at++ = '\n';
    BSON_ASSERT(at == buf->data + len);
    return buf;
}

cc_buf_t *cc_encode_sse_comment(const char *text)
{
    size_t len = strlen(text);
    cc_buf_t *buf = cc_buf_new(2 + len + 2);
    put(put(put(buf->data, ": ", 2), text, len), "\n\n", 2);
    return buf;
}

cc_buf_t *cc_encode_ws_head(const char *sub_id)
{
    cc_span_t parts[] = {CC_SPAN_LIT("{\"id\":\""), cc_span_str(sub_id), CC_SPAN_LIT("\",")};
    return cc_encode_concat(parts, 3);
}

char *cc_json_or_placeholder(const bson_t *doc, size_t *len)
{
    char *json = cc_json_document(doc, len);
    if (json) {
        return json;
    }
    /* No JSON is written for a string that is not UTF-8, which a client
     * can smuggle into an error message as a JSON escape of a lone
     * surrogate ("\udc00"). */
    static const char placeholder[] =
        "{\"type\":\"error\",\"id\":null,\"code\":\"bad_message\","
        "\"message\":\"the reply would quote text that is not UTF-8\"}";
    if (len) {
        *len = sizeof placeholder - 1;
    }
    return bson_strdup(placeholder);
}

cc_buf_t *cc_encode_sse_notice(const char *type, const char *sse_id, const bson_t *fields)
{
    size_t len;
    char *json = cc_json_or_placeholder(fields, &len);
    cc_span_t data = {json, len};
    cc_buf_t *buf = cc_encode_sse(sse_id, type, &data, 1);
    bson_free(json);
    return buf;
}

cc_buf_t *cc_encode_ws_notice_body(const char *type, const bson_t *fields)
{
    size_t len;
    char *json = cc_json_or_placeholder(fields, &len);
    /* `{"a":1}` continues after the type as `"a":1}`; no fields, `}`. */
    cc_span_t parts[] = {CC_SPAN_LIT("\"type\":\""), cc_span_str(type),
                         bson_empty(fields) ? CC_SPAN_LIT("\"}") : CC_SPAN_LIT("\","),
                         bson_empty(fields) ? (cc_span_t){"", 0} : (cc_span_t){json + 1, len - 1}};
    cc_buf_t *buf = cc_encode_concat(parts, 4);
    bson_free(json);
    return buf;
}

cc_buf_t *cc_encode_ws_json(const bson_t *message)
{
    size_t len;
    char *json = cc_json_or_placeholder(message, &len);
    cc_span_t part = {json, len};
    cc_buf_t *buf = cc_encode_ws_text(&part, 1);
    bson_free(json);
    return buf;
}
