/* SPDX-License-Identifier: Apache-2.0 */
/* auth/util: error codes and their HTTP statuses, base64url (RFC 4648 section 5, as JWS and
 * JWK use it: no padding), and a bounded file reader for key files. */
#include "auth_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *cc_auth_code_name(cc_auth_code_t code)
{
    switch (code) {
    case CC_AUTH_OK:
        return "ok";
    case CC_AUTH_CONFIG:
        return "auth_config";
    case CC_AUTH_TOKEN_MISSING:
        return "token_missing";
    case CC_AUTH_TOKEN_INVALID:
        return "token_invalid";
    case CC_AUTH_TOKEN_EXPIRED:
        return "token_expired";
    case CC_AUTH_TOKEN_NOT_YET_VALID:
        return "token_not_yet_valid";
    case CC_AUTH_CLAIM_MISSING:
        return "claim_missing";
    case CC_AUTH_CLAIM_INVALID:
        return "claim_invalid";
    case CC_AUTH_NOT_GRANTED:
        return "not_granted";
    case CC_AUTH_FIELD_NOT_GRANTED:
        return "field_not_granted";
    }
    return "auth_config";
}

int cc_auth_code_http_status(cc_auth_code_t code)
{
    switch (code) {
    case CC_AUTH_TOKEN_MISSING:
    case CC_AUTH_TOKEN_INVALID:
    case CC_AUTH_TOKEN_EXPIRED:
    case CC_AUTH_TOKEN_NOT_YET_VALID:
        return 401;
    case CC_AUTH_CLAIM_MISSING:
    case CC_AUTH_CLAIM_INVALID:
    case CC_AUTH_NOT_GRANTED:
    case CC_AUTH_FIELD_NOT_GRANTED:
        return 403;
    case CC_AUTH_OK:
    case CC_AUTH_CONFIG:
        break;
    }
    return 500;
}

void cc_auth_set_error(bson_error_t *error, cc_auth_code_t code, const char *format, ...)
{
    if (!error) {
        return;
    }
    va_list args;
    va_start(args, format);
    vsnprintf(error->message, sizeof error->message, format, args);
    va_end(args);
    error->domain = CC_AUTH_ERROR_DOMAIN;
    error->code = (uint32_t)code;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

bool cc_b64url_decode(const char *in, size_t len, uint8_t **out, size_t *out_len)
{
    /* A lone trailing character cannot encode a byte: 4n+1 lengths are malformed. */
    if (len % 4 == 1) {
        return false;
    }
    uint8_t *bytes = bson_malloc(len / 4 * 3 + 3);
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) {
            bson_free(bytes);
            return false;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero, or two encodings would decode alike (RFC 4648 section 3.5). */
    if (acc != 0) {
        bson_free(bytes);
        return false;
    }
    bytes[n] = '\0';
    *out = bytes;
    *out_len = n;
    return true;
}

bool cc_auth_read_file(const char *path, size_t max_bytes, char **data, size_t *len,
                       bson_error_t *error)
{
    FILE *file = fopen(path, "rb");
    if (!file) {
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: %s", path, strerror(errno));
        return false;
    }
    char *buf = bson_malloc(max_bytes + 2);
    size_t n = fread(buf, 1, max_bytes + 1, file);
    bool failed = ferror(file) != 0;
    fclose(file);
    if (failed) {
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: read error", path);
    } else if (n > max_bytes) {
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: larger than %zu bytes", path, max_bytes);
        failed = true;
    }
    if (failed) {
        bson_free(buf);
        return false;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return true;
}
