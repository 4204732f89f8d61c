/* SPDX-License-Identifier: Apache-2.0 */
/* push/deflate (pure layer): WebSocket permessage-deflate (RFC 7692) done
 * once per shared rendering, not once per subscriber. Every message is
 * compressed from a fresh compressor state (server_no_context_takeover), so
 * the compressed bytes of one rendering are the same for everyone who gets
 * it; with a sync flush they are byte-aligned and self-contained, and a
 * per-subscriber part goes ahead of them as one stored (uncompressed)
 * block. Client messages are inflated from a fresh state too
 * (client_no_context_takeover). One compressor and one decompressor serve
 * the push thread, reset between messages: no zlib state per connection.
 * Calls zlib, buf and libc. */
#ifndef CC_PUSH_DEFLATE_H
#define CC_PUSH_DEFLATE_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/* Renderings smaller than this go out uncompressed (RSV1 clear): below it
 * deflate's block overhead outweighs what it saves on change events
 * (docs/benchmarks.md, compression). */
#define CC_DEFLATE_MIN_BYTES 200

/* A stored block's header: BFINAL 0, BTYPE 00, LEN, NLEN. */
#define CC_DEFLATE_STORED_HEADER 5
#define CC_DEFLATE_STORED_MAX 65535

/* What the server answers to an offer it accepts. */
#define CC_PMD_RESPONSE "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

typedef struct cc_deflate {
    z_stream compressor;
    z_stream decompressor;
    bool ready;
    /* Compressed bytes land here before the shared buffer gets exactly
     * their size. */
    uint8_t *scratch;
    size_t scratch_capacity;
} cc_deflate_t;

bool cc_deflate_init(cc_deflate_t *pmd);
void cc_deflate_cleanup(cc_deflate_t *pmd);

/* `bytes` as raw DEFLATE blocks ending in a sync flush (the empty stored
 * block 00 00 ff ff, which a WebSocket message leaves off). NULL if zlib
 * fails. */
cc_buf_t *cc_deflate_compress(cc_deflate_t *pmd, const void *bytes, size_t len);

/* The header of a stored block of `len` bytes (at most
 * CC_DEFLATE_STORED_MAX) into out; returns its length. */
size_t cc_deflate_stored_header(uint8_t out[CC_DEFLATE_STORED_HEADER], size_t len);

typedef enum cc_inflate_result {
    CC_INFLATE_OK,
    CC_INFLATE_TOO_BIG, /* more than `max` bytes once inflated */
    CC_INFLATE_CORRUPT,
} cc_inflate_result_t;

/* One compressed message (its 00 00 ff ff tail restored) inflated into a
 * new bson_malloc'ed buffer, at most `max` bytes. */
cc_inflate_result_t cc_deflate_inflate(cc_deflate_t *pmd, const uint8_t *in, size_t len, size_t max,
                                       uint8_t **out, size_t *out_len);

/* The gzip member header (RFC 1952) an SSE response with Content-Encoding
 * gzip starts with: no name, no time, OS unix. What follows it are the
 * same raw DEFLATE blocks, each event's ending in a sync flush, so they
 * can be sent one after another as they come. */
#define CC_GZIP_HEADER_BYTES 10
extern const uint8_t cc_gzip_header[CC_GZIP_HEADER_BYTES];

/* Whether an Accept-Encoding request header accepts gzip (by name or *,
 * with a q-value above 0). */
bool cc_gzip_accepted(const char *accept_encoding);

/* Whether a Sec-WebSocket-Extensions request header holds a
 * permessage-deflate offer changecast can accept: its parameters known,
 * none twice, and the server's window not limited below 15 bits (the one
 * compression serves every subscriber). */
bool cc_pmd_acceptable(const char *offers);

#endif
