/* SPDX-License-Identifier: Apache-2.0 */
/* push/buf (pure layer): immutable, reference-counted bytes. An event is
 * rendered once per wire form into one of these and every subscriber's
 * queue holds a reference, never a copy; the last cc_buf_unref() frees it.
 * Calls libc only. Counts are atomic because an event (and the renderings
 * cached on it) may be released by the capture thread. */
#ifndef CC_PUSH_BUF_H
#define CC_PUSH_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cc_buf {
    atomic_uint refs;
    uint32_t len;
    /* The same bytes compressed once for permessage-deflate (deflate.h),
     * made on the push thread by the first subscriber that needs them;
     * NULL until then. Released with the buffer. */
    struct cc_buf *deflated;
    char data[]; /* len bytes, then a NUL so text renderings can be read as strings */
} cc_buf_t;

/* len bytes to be written by the caller before the buffer is shared. */
cc_buf_t *cc_buf_new(size_t len);
cc_buf_t *cc_buf_copy(const void *bytes, size_t len);
cc_buf_t *cc_buf_ref(cc_buf_t *buf);
void cc_buf_unref(cc_buf_t *buf);

#endif
