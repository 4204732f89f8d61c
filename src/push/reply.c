/* SPDX-License-Identifier: Apache-2.0 */
/* Plain HTTP replies of the push port (port.h): a whole body with its
 * headers (CORS, no-store, Bearer on 401), and the JSON error every
 * refusal answers with. Headers go out at once; the body at the next
 * writable callback, as libwebsockets wants. Below http.c and sse.c. */
#include "encode.h"
#include "port.h"

#include <string.h>

int cc_http_add_cors(cc_port_t *port, struct lws *wsi, unsigned char **p, unsigned char *end)
{
    char origin[256];
    if (cc_access_origin(port, wsi, origin, sizeof origin) != CC_ORIGIN_ALLOWED) {
        return 0;
    }
    return lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                       (const unsigned char *)origin, (int)strlen(origin), p,
                                       end) ||
           lws_add_http_header_by_name(wsi,
                                       (const unsigned char *)"access-control-allow-credentials:",
                                       (const unsigned char *)"true", 4, p, end) ||
           lws_add_http_header_by_name(
               wsi, (const unsigned char *)"vary:", (const unsigned char *)"Origin", 6, p, end);
}

int cc_http_reply_bytes(cc_port_t *port, struct lws *wsi, unsigned status, const char *content_type,
                        const char *body, size_t len)
{
    uint8_t buffer[LWS_PRE + 1024];
    uint8_t *start = buffer + LWS_PRE, *p = start, *end = buffer + sizeof buffer - 1;
    if (lws_add_http_common_headers(wsi, status, content_type, len, &p, end) ||
        cc_http_add_cors(port, wsi, &p, end) ||
        (status == 401 &&
         lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
                                     (const unsigned char *)"Bearer", 6, &p, end)) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        return -1;
    }
    cc_conn_t *conn = cc_conn_new(&port->conns, wsi, CC_CONN_HTTP, NULL, CC_CONN_ANSWERING);
    lws_set_opaque_user_data(wsi, conn);
    conn->answer = cc_buf_copy(body, len);
    lws_callback_on_writable(wsi);
    return 0;
}

int cc_http_reply(cc_port_t *port, struct lws *wsi, unsigned status, const char *content_type,
                  const char *body)
{
    return cc_http_reply_bytes(port, wsi, status, content_type, body, strlen(body));
}

cc_buf_t *cc_http_error_body(cc_port_t *port, const char *code, const char *message)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "error", code);
    BSON_APPEND_UTF8(&doc, "message", message);
    size_t len;
    char *json = cc_json_or_placeholder(&doc, &len);
    cc_buf_t *body = cc_buf_copy(json, len);
    bson_free(json);
    bson_destroy(&doc);
    port->metrics.requests_rejected++;
    return body;
}

int cc_http_error(cc_port_t *port, struct lws *wsi, unsigned status, const char *code,
                  const char *message)
{
    cc_buf_t *body = cc_http_error_body(port, code, message);
    int rc = cc_http_reply_bytes(port, wsi, status, "application/json", body->data, body->len);
    cc_buf_unref(body);
    return rc;
}
