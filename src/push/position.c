/* SPDX-License-Identifier: Apache-2.0 */
/* How far capture has read (position.h). */
#include "position.h"

#include <string.h>

/* A high-water mark says only that every event before its time was seen;
 * anything else (an event, a layout we cannot read) is taken to cover its
 * whole time: a snapshot there may then repeat a change, never miss one. */
void cc_position_set(cc_capture_position_t *position, const char *token)
{
    char *copy = token ? bson_strdup(token) : NULL;
    bson_free(position->token);
    position->token = copy;
    position->is_event = !token || cc_token_kind(token) != CC_TOKEN_HIGH_WATER_MARK;
}

void cc_position_clear(cc_capture_position_t *position)
{
    cc_position_set(position, NULL);
}

bool cc_position_read_through(const cc_capture_position_t *position, uint32_t *seconds,
                              uint32_t *increment)
{
    if (!position->token || !cc_token_cluster_time(position->token, seconds, increment)) {
        return false;
    }
    if (!position->is_event) {
        /* A high-water mark at T says every event before T was seen;
         * events of T itself may still come after it. */
        if (*increment > 0) {
            (*increment)--;
        } else {
            (*seconds)--;
            *increment = UINT32_MAX;
        }
    }
    return true;
}

bool cc_position_public(const cc_capture_position_t *position, char *out, size_t size)
{
    uint32_t seconds, increment;
    if (!cc_position_read_through(position, &seconds, &increment)) {
        return false;
    }
    cc_token_kind_t kind = cc_token_kind(position->token);
    if (kind == CC_TOKEN_HIGH_WATER_MARK) {
        bson_strncpy(out, position->token, size);
        return strlen(position->token) < size;
    }
    if (kind != CC_TOKEN_EVENT || size <= CC_HIGH_WATER_MARK_LEN) {
        return false; /* a layout we cannot rebuild: no token rather than a revealing one */
    }
    /* An event's own token carries its collection and document key: what
     * is shown instead is the high-water mark just after its time. */
    if (increment == UINT32_MAX) {
        cc_token_high_water_mark(seconds + 1, 0, out);
    } else {
        cc_token_high_water_mark(seconds, increment + 1, out);
    }
    return true;
}
