/* SPDX-License-Identifier: Apache-2.0 */
#include "buf.h"

#include <bson/bson.h>
#include <string.h>

cc_buf_t *cc_buf_new(size_t len)
{
    BSON_ASSERT(len < UINT32_MAX);
    cc_buf_t *buf = bson_malloc(sizeof *buf + len + 1);
    atomic_init(&buf->refs, 1);
    buf->len = (uint32_t)len;
    buf->deflated = NULL;
    buf->data[len] = '\0';
    return buf;
}

cc_buf_t *cc_buf_copy(const void *bytes, size_t len)
{
    cc_buf_t *buf = cc_buf_new(len);
    memcpy(buf->data, bytes, len);
    return buf;
}

cc_buf_t *cc_buf_ref(cc_buf_t *buf)
{
    atomic_fetch_add_explicit(&buf->refs, 1, memory_order_relaxed);
    return buf;
}

void cc_buf_unref(cc_buf_t *buf)
{
    if (buf && atomic_fetch_sub_explicit(&buf->refs, 1, memory_order_acq_rel) == 1) {
        cc_buf_unref(buf->deflated);
        bson_free(buf);
    }
}
