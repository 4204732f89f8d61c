/* SPDX-License-Identifier: Apache-2.0 */
/* permessage-deflate with zlib: raw DEFLATE (no zlib or gzip wrapper), a
 * 15-bit window, reset before every message. */
#include "deflate.h"

#include <bson/bson.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const uint8_t sync_tail[4] = {0x00, 0x00, 0xff, 0xff};

bool cc_deflate_init(cc_deflate_t *pmd)
{
    memset(pmd, 0, sizeof *pmd);
    if (deflateInit2(&pmd->compressor, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        return false;
    }
    if (inflateInit2(&pmd->decompressor, -MAX_WBITS) != Z_OK) {
        deflateEnd(&pmd->compressor);
        return false;
    }
    pmd->ready = true;
    return true;
}

void cc_deflate_cleanup(cc_deflate_t *pmd)
{
    if (pmd->ready) {
        deflateEnd(&pmd->compressor);
        inflateEnd(&pmd->decompressor);
        pmd->ready = false;
    }
    free(pmd->scratch);
    pmd->scratch = NULL;
    pmd->scratch_capacity = 0;
}

cc_buf_t *cc_deflate_compress(cc_deflate_t *pmd, const void *bytes, size_t len)
{
    z_stream *z = &pmd->compressor;
    if (!pmd->ready || len > UINT32_MAX || deflateReset(z) != Z_OK) {
        return NULL;
    }
    /* deflateBound leaves out the sync flush's empty block (5 bytes) and
     * the block boundary before it. */
    size_t bound = deflateBound(z, (uLong)len) + 16;
    if (bound > pmd->scratch_capacity) {
        uint8_t *grown = realloc(pmd->scratch, bound);
        if (!grown) {
            return NULL;
        }
        pmd->scratch = grown;
        pmd->scratch_capacity = bound;
    }
    z->next_in = (Bytef *)(uintptr_t)bytes;
    z->avail_in = (uInt)len;
    z->next_out = pmd->scratch;
    z->avail_out = (uInt)bound;
    if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in != 0 || z->avail_out == 0) {
        return NULL;
    }
    size_t out = bound - z->avail_out;
    if (out < sizeof sync_tail || memcmp(pmd->scratch + out - 4, sync_tail, 4) != 0) {
        return NULL;
    }
    return cc_buf_copy(pmd->scratch, out);
}

size_t cc_deflate_stored_header(uint8_t out[CC_DEFLATE_STORED_HEADER], size_t len)
{
    out[0] = 0x00; /* BFINAL 0, BTYPE 00, then padding to the byte */
    out[1] = (uint8_t)(len & 0xff);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)(~len & 0xff);
    out[4] = (uint8_t)((~len >> 8) & 0xff);
    return CC_DEFLATE_STORED_HEADER;
}

cc_inflate_result_t cc_deflate_inflate(cc_deflate_t *pmd, const uint8_t *in, size_t len, size_t max,
                                       uint8_t **out, size_t *out_len)
{
    z_stream *z = &pmd->decompressor;
    *out = NULL;
    *out_len = 0;
    if (!pmd->ready || len > UINT32_MAX || inflateReset(z) != Z_OK) {
        return CC_INFLATE_CORRUPT;
    }
    size_t capacity = len * 4 + 64 < max ? len * 4 + 64 : max;
    uint8_t *buffer = bson_malloc(capacity + 1);
    size_t produced = 0;
    cc_inflate_result_t result = CC_INFLATE_OK;
    /* The message, then the tail its sender left off (RFC 7692 7.2.2). */
    const struct {
        const uint8_t *bytes;
        size_t len;
    } parts[2] = {{in, len}, {sync_tail, sizeof sync_tail}};
    for (int part = 0; part < 2 && result == CC_INFLATE_OK; part++) {
        z->next_in = (Bytef *)(uintptr_t)parts[part].bytes;
        z->avail_in = (uInt)parts[part].len;
        while (z->avail_in > 0) {
            if (produced == capacity) {
                if (capacity == max) {
                    result = CC_INFLATE_TOO_BIG;
                    break;
                }
                capacity = capacity * 2 < max ? capacity * 2 : max;
                buffer = bson_realloc(buffer, capacity + 1);
            }
            z->next_out = buffer + produced;
            z->avail_out = (uInt)(capacity - produced);
            int status = inflate(z, Z_SYNC_FLUSH);
            produced = capacity - z->avail_out;
            if (status == Z_STREAM_END) {
                part = 2; /* a final block: what follows it is not part of the message */
                break;
            }
            if (status != Z_OK && !(status == Z_BUF_ERROR && z->avail_out == 0)) {
                result = CC_INFLATE_CORRUPT;
                break;
            }
        }
    }
    if (result != CC_INFLATE_OK) {
        bson_free(buffer);
        return result;
    }
    buffer[produced] = '\0';
    *out = buffer;
    *out_len = produced;
    return CC_INFLATE_OK;
}

/* --- header values: tokens separated by ';' and optional spaces ---------- */

static const char *skip_spaces(const char *at, const char *end)
{
    while (at < end && (*at == ' ' || *at == '\t')) {
        at++;
    }
    return at;
}

/* The end of the token NAME (case-insensitive) at the start of [at, end),
 * spaces before it skipped; NULL when another token is there. */
static const char *token_named(const char *at, const char *end, const char *name)
{
    at = skip_spaces(at, end);
    const char *token_end = at;
    while (token_end < end && *token_end != ';' && *token_end != ' ' && *token_end != '\t') {
        token_end++;
    }
    size_t len = strlen(name);
    return (size_t)(token_end - at) == len && strncasecmp(at, name, len) == 0 ? token_end : NULL;
}

const uint8_t cc_gzip_header[CC_GZIP_HEADER_BYTES] = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03};

/* One coding of Accept-Encoding, [at, end): its q-value (1 when absent), or
 * -1 when it is not `name`. */
static double coding_quality(const char *at, const char *end, const char *name)
{
    const char *q = token_named(at, end, name);
    if (!q) {
        return -1;
    }
    while (q < end && *q != ';') {
        q++;
    }
    while (q < end && (*q == ';' || *q == ' ' || *q == '\t')) {
        q++;
    }
    if (q + 2 <= end && (q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
        return strtod(q + 2, NULL);
    }
    return 1;
}

bool cc_gzip_accepted(const char *accept_encoding)
{
    double gzip = -1, any = -1;
    const char *at = accept_encoding;
    while (at && *at) {
        const char *comma = strchr(at, ',');
        const char *end = comma ? comma : at + strlen(at);
        double q = coding_quality(at, end, "gzip");
        if (q >= 0) {
            gzip = q;
        }
        q = coding_quality(at, end, "*");
        if (q >= 0) {
            any = q;
        }
        at = comma ? comma + 1 : NULL;
    }
    return gzip >= 0 ? gzip > 0 : any > 0;
}

/* --- the offer ----------------------------------------------------------- */

/* A window size parameter's value: 8 to 15, bare or quoted; -1 if not. */
static int window_bits(const char *value, size_t len)
{
    if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
        value++;
        len -= 2;
    }
    if (len == 0 || len > 2) {
        return -1;
    }
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)value[i])) {
            return -1;
        }
        bits = bits * 10 + (value[i] - '0');
    }
    return bits >= 8 && bits <= 15 ? bits : -1;
}

/* One offer: `permessage-deflate` and its parameters, [at, end). */
static bool offer_acceptable(const char *at, const char *end)
{
    static const char *const params[] = {"server_no_context_takeover", "client_no_context_takeover",
                                         "server_max_window_bits", "client_max_window_bits"};
    const char *name_end = token_named(at, end, "permessage-deflate");
    if (!name_end) {
        return false;
    }
    unsigned seen = 0;
    at = skip_spaces(name_end, end);
    while (at < end) {
        if (*at != ';') {
            return false;
        }
        at = skip_spaces(at + 1, end);
        const char *param_end = at;
        while (param_end < end && *param_end != ';' && *param_end != '=' && *param_end != ' ' &&
               *param_end != '\t') {
            param_end++;
        }
        size_t param_len = (size_t)(param_end - at);
        const char *value = NULL, *value_end = NULL;
        const char *next = skip_spaces(param_end, end);
        if (next < end && *next == '=') {
            value = skip_spaces(next + 1, end);
            value_end = value;
            while (value_end < end && *value_end != ';' && *value_end != ' ' &&
                   *value_end != '\t') {
                value_end++;
            }
            next = skip_spaces(value_end, end);
        }
        int which = -1;
        for (int i = 0; i < 4; i++) {
            if (strlen(params[i]) == param_len && strncasecmp(at, params[i], param_len) == 0) {
                which = i;
            }
        }
        if (which < 0 || (seen & (1u << which))) {
            return false; /* unknown, or twice (RFC 7692 7: decline) */
        }
        seen |= 1u << which;
        size_t value_len = value ? (size_t)(value_end - value) : 0;
        switch (which) {
        case 0:
        case 1:
            if (value) {
                return false; /* these take no value */
            }
            break;
        case 2: /* the one compression serves every subscriber: 15 bits only */
            if (!value || window_bits(value, value_len) != 15) {
                return false;
            }
            break;
        default: /* client_max_window_bits: inflating with 15 reads any */
            if (value && window_bits(value, value_len) < 0) {
                return false;
            }
            break;
        }
        at = next;
    }
    return true;
}

bool cc_pmd_acceptable(const char *offers)
{
    const char *at = offers;
    while (at && *at) {
        const char *comma = at;
        bool quoted = false;
        while (*comma && (quoted || *comma != ',')) {
            quoted ^= *comma == '"';
            comma++;
        }
        if (offer_acceptable(at, comma)) {
            return true;
        }
        at = *comma ? comma + 1 : NULL;
    }
    return false;
}
