/* SPDX-License-Identifier: Apache-2.0 */
/* Write-to-delivery latency on real traffic: the operationTime of each
 * write reply that will produce a change someone may be subscribed to (an
 * exposed namespace, outside a transaction, something actually written) is
 * handed to the write clock when the reply is forwarded. Only write
 * commands are looked into; every other frame passes untouched. */
#include "wire_internal.h"

#include <event2/buffer.h>

#include <string.h>

static bool is_write_command(const char *name)
{
    static const char *const writes[] = {"insert", "update", "delete", "findAndModify",
                                         "findandmodify"};
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        if (strcmp(name, writes[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool exposed(const cc_expose_t *expose, const char *db, const char *coll)
{
    for (size_t i = 0; i < expose->count; i++) {
        if (cc_ns_pattern_matches(&expose->patterns[i], db, coll)) {
            return true;
        }
    }
    return false;
}

static bool body_of(const uint8_t *frame, size_t len, bson_t *body)
{
    cc_op_msg_t msg;
    bson_error_t error;
    return cc_msg_parse(frame, len, &msg, &error) && bson_init_static(body, msg.body, msg.body_len);
}

void cc_writes_note_request(cc_session_t *session, const cc_frame_header_t *header,
                            const char *name, struct evbuffer *input)
{
    cc_wire_t *wire = session->wire;
    if (!wire->options.write_clock || !is_write_command(name) ||
        session->pending_writes == CC_PENDING_WRITES) {
        return;
    }
    bson_t body;
    bson_iter_t iter;
    const uint8_t *frame = evbuffer_pullup(input, (ev_ssize_t)header->length);
    if (!frame || !body_of(frame, (size_t)header->length, &body) || !bson_iter_init(&iter, &body) ||
        !bson_iter_next(&iter) || !BSON_ITER_HOLDS_UTF8(&iter)) {
        return;
    }
    const char *coll = bson_iter_utf8(&iter, NULL);
    /* A transaction's statements change nothing until it commits. */
    if (bson_iter_init_find(&iter, &body, "autocommit") ||
        !bson_iter_init_find(&iter, &body, "$db") || !BSON_ITER_HOLDS_UTF8(&iter) ||
        !exposed(&wire->expose, bson_iter_utf8(&iter, NULL), coll)) {
        return;
    }
    session->pending_write_ids[session->pending_writes++] = header->request_id;
}

static int64_t count_at(const bson_t *reply, const char *path)
{
    bson_iter_t iter, found;
    if (bson_iter_init(&iter, reply) && bson_iter_find_descendant(&iter, path, &found) &&
        BSON_ITER_HOLDS_NUMBER(&found)) {
        return bson_iter_as_int64(&found);
    }
    return 0;
}

/* Whether the reply says something was written: n for insert and delete,
 * nModified or upserted for update, lastErrorObject.n for findAndModify. */
static bool wrote_something(const bson_t *reply)
{
    bson_iter_t iter;
    if (count_at(reply, "ok") != 1) {
        return false;
    }
    if (bson_iter_init_find(&iter, reply, "nModified")) {
        return count_at(reply, "nModified") > 0 ||
               (bson_iter_init_find(&iter, reply, "upserted") && BSON_ITER_HOLDS_ARRAY(&iter));
    }
    return count_at(reply, "n") > 0 || count_at(reply, "lastErrorObject.n") > 0;
}

void cc_writes_note_reply(cc_session_t *session, const cc_frame_header_t *header,
                          struct evbuffer *input)
{
    size_t i = 0;
    while (i < session->pending_writes && session->pending_write_ids[i] != header->response_to) {
        i++;
    }
    if (i == session->pending_writes) {
        return;
    }
    session->pending_write_ids[i] = session->pending_write_ids[--session->pending_writes];
    bson_t reply;
    bson_iter_t iter;
    const uint8_t *frame = evbuffer_pullup(input, (ev_ssize_t)header->length);
    if (header->opcode != CC_OPCODE_MSG || !frame ||
        !body_of(frame, (size_t)header->length, &reply) || !wrote_something(&reply) ||
        !bson_iter_init_find(&iter, &reply, "operationTime") || !BSON_ITER_HOLDS_TIMESTAMP(&iter)) {
        return;
    }
    uint32_t seconds, increment;
    bson_iter_timestamp(&iter, &seconds, &increment);
    cc_write_clock_record(session->wire->options.write_clock, seconds, increment,
                          bson_get_monotonic_time());
}
