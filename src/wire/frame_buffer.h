/* SPDX-License-Identifier: Apache-2.0 */
/* wire/frame_buffer: frame boundaries on a libevent evbuffer, for every
 * reader of the wire protocol (sessions, the benchmark upstream). */
#ifndef CC_WIRE_FRAME_BUFFER_H
#define CC_WIRE_FRAME_BUFFER_H

#include "frame.h"

#include <event2/buffer.h>

/* CC_FRAME_HEADER_OK only once all header->length bytes are in input;
 * CC_FRAME_INCOMPLETE until then; CC_FRAME_INVALID with error filled. */
cc_frame_status_t cc_frame_buffer_next(struct evbuffer *input, uint32_t max_bytes,
                                       cc_frame_origin_t origin, cc_frame_header_t *header,
                                       bson_error_t *error);

#endif
