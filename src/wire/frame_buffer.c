/* SPDX-License-Identifier: Apache-2.0 */
/* Copies out only the 16 header bytes: the frame itself stays where it is
 * until the caller moves or parses it. */
#include "frame_buffer.h"

cc_frame_status_t cc_frame_buffer_next(struct evbuffer *input, uint32_t max_bytes,
                                       cc_frame_origin_t origin, cc_frame_header_t *header,
                                       bson_error_t *error)
{
    uint8_t bytes[CC_FRAME_HEADER_BYTES];
    size_t available = evbuffer_get_length(input);
    evbuffer_copyout(input, bytes, available < sizeof bytes ? available : sizeof bytes);
    cc_frame_status_t status =
        cc_frame_header_check(bytes, available, max_bytes, origin, header, error);
    if (status == CC_FRAME_HEADER_OK && available < (size_t)header->length) {
        return CC_FRAME_INCOMPLETE;
    }
    return status;
}
