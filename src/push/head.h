/* SPDX-License-Identifier: Apache-2.0 */
/* push/head (pure layer): the head of an HTTP request (request line and
 * header fields), judged from the bytes that have arrived before lws reads
 * any. lws 4.1 cuts a request whose head does not fit the space it keeps
 * for it without answering, and a browser's EventSource cannot tell that
 * from a network failure (it retries for ever); judged here, the client
 * gets 414, 431 or 400 instead (gate.c answers). No lws, no I/O. */
#ifndef CC_PUSH_HEAD_H
#define CC_PUSH_HEAD_H

#include <stdbool.h>
#include <stddef.h>

/* What lws can hold: the head's bytes (its header space), the request
 * line's, and its fragments (each header field and each query argument
 * takes one of lws's 95). */
#define CC_HEAD_MAX_BYTES 8192
#define CC_HEAD_MAX_REQUEST_LINE 6144
#define CC_HEAD_MAX_FIELDS 64
#define CC_HEAD_MAX_FRAGMENTS 90

typedef enum cc_head_verdict {
    CC_HEAD_INCOMPLETE,       /* no end of the head yet, and room for it: read on */
    CC_HEAD_OK,               /* whole and within every limit: lws may read it */
    CC_HEAD_URI_TOO_LONG,     /* 414 */
    CC_HEAD_FIELDS_TOO_LARGE, /* 431 */
    /* 400: a body (Transfer-Encoding, or a Content-Length above 0), which no
     * endpoint takes and which lws 4.1 mishandles when pipelined; this also
     * refuses both framings at once (request smuggling) */
    CC_HEAD_BODY,
} cc_head_verdict_t;

/* `bytes` are the first `len` bytes of the connection (at most
 * CC_HEAD_MAX_BYTES + 1 are ever needed). */
cc_head_verdict_t cc_head_check(const char *bytes, size_t len);

/* The value of the first header field `name` (case-insensitive), if the
 * bytes hold it whole and it fits `size`; surrounding blanks trimmed. */
bool cc_head_field(const char *bytes, size_t len, const char *name, char *out, size_t size);

#endif
