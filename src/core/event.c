/* SPDX-License-Identifier: Apache-2.0 */
/* Serialization happens here, once per event, on the capture thread: the
 * push thread renders and shares (docs/architecture.md). */
#include "changecast/json.h"
#include "changecast/event.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_upper(const char *text)
{
    char *out = bson_strdup(text);
    for (char *p = out; *p; p++) {
        *p = (char)toupper((unsigned char)*p);
    }
    return out;
}

static const char *utf8_at(const bson_t *doc, const char *path)
{
    bson_iter_t iter, found;
    if (bson_iter_init(&iter, doc) && bson_iter_find_descendant(&iter, path, &found) &&
        BSON_ITER_HOLDS_UTF8(&found)) {
        return bson_iter_utf8(&found, NULL);
    }
    return NULL;
}

cc_event_t *cc_event_new(const bson_t *change, bson_error_t *error)
{
    const char *token = utf8_at(change, "_id._data");
    const char *db = utf8_at(change, "ns.db");
    const char *operation = utf8_at(change, "operationType");
    if (!token || !operation) {
        bson_set_error(error, 0, 0, "change event without _id._data or operationType");
        return NULL;
    }
    /* bson_t asks for 128-byte alignment, which malloc does not give. */
    void *memory = NULL;
    if (posix_memalign(&memory, BSON_ALIGNOF(bson_t), sizeof(cc_event_t)) != 0) {
        bson_set_error(error, 0, 0, "out of memory");
        return NULL;
    }
    cc_event_t *event = memset(memory, 0, sizeof(cc_event_t));
    atomic_init(&event->refs, 1);
    event->token = dup_upper(token);
    event->operation = bson_strdup(operation);
    /* invalidate events carry no ns; they still travel so streams end cleanly */
    event->db = bson_strdup(db ? db : "");
    const char *coll = utf8_at(change, "ns.coll");
    event->coll = coll ? bson_strdup(coll) : NULL;
    bson_iter_t iter;
    if (bson_iter_init_find(&iter, change, "clusterTime") && BSON_ITER_HOLDS_TIMESTAMP(&iter)) {
        bson_iter_timestamp(&iter, &event->cluster_seconds, &event->cluster_increment);
    }
    bson_copy_to(change, &event->document);
    event->json = cc_json_document(change, &event->json_len);
    if (!event->json) {
        /* Fix (found by fuzz_core_event): libbson writes no JSON for a string
         * that is not UTF-8, and MongoDB stores strings as drivers send
         * them. Such an event cannot be delivered; refuse it here instead of
         * handing subscribers a NULL json. */
        bson_set_error(error, 0, 0, "change event has a string that is not valid UTF-8");
        cc_event_unref(event);
        return NULL;
    }
    return event;
}

cc_event_t *cc_event_ref(cc_event_t *event)
{
    atomic_fetch_add_explicit(&event->refs, 1, memory_order_relaxed);
    return event;
}

void cc_event_unref(cc_event_t *event)
{
    if (!event || atomic_fetch_sub_explicit(&event->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    bson_free(event->token);
    bson_free(event->db);
    bson_free(event->coll);
    bson_free(event->operation);
    bson_destroy(&event->document);
    bson_free(event->json);
    bson_free(event->json_default);
    bson_free(event->json_id);
    bson_free(event->json_post_image);
    if (event->renderings) {
        event->free_renderings(event->renderings);
    }
    free(event);
}

char *cc_change_json_without_post_image(const bson_t *change, size_t *len)
{
    bson_t without = BSON_INITIALIZER;
    bson_copy_to_excluding_noinit(change, &without, "fullDocument", NULL);
    char *json = cc_json_document(&without, len);
    bson_destroy(&without);
    return json;
}

const char *cc_event_json_default(cc_event_t *event, size_t *len)
{
    if (strcmp(event->operation, "update") != 0) {
        *len = event->json_len;
        return event->json;
    }
    if (!event->json_default) {
        event->json_default =
            cc_change_json_without_post_image(&event->document, &event->json_default_len);
    }
    *len = event->json_default_len;
    return event->json_default;
}

/* The value at `path` as JSON; null when it is missing (or, which
 * cc_event_new refuses already, not UTF-8). */
static char *value_json(const bson_t *doc, const char *path, size_t *len)
{
    bson_iter_t iter, found;
    char *json = NULL;
    if (bson_iter_init(&iter, doc) && bson_iter_find_descendant(&iter, path, &found)) {
        json = cc_json_value(&found, len);
    }
    if (!json) {
        *len = 4;
        json = bson_strdup("null");
    }
    return json;
}

const char *cc_event_json_id(cc_event_t *event, size_t *len)
{
    if (!event->json_id) {
        event->json_id = value_json(&event->document, "documentKey._id", &event->json_id_len);
    }
    *len = event->json_id_len;
    return event->json_id;
}

const char *cc_event_json_post_image(cc_event_t *event, size_t *len)
{
    if (!event->json_post_image) {
        event->json_post_image =
            value_json(&event->document, "fullDocument", &event->json_post_image_len);
    }
    *len = event->json_post_image_len;
    return event->json_post_image;
}

size_t cc_event_size(const cc_event_t *event)
{
    return sizeof *event + event->document.len + event->json_len + strlen(event->token);
}

int cc_token_compare(const char *a, const char *b)
{
    return strcmp(a, b);
}

bool cc_token_normalize(const char *text, char *out, size_t out_size)
{
    size_t len = strlen(text);
    if (len < 2 || len > CC_MAX_RESUME_TOKEN || len >= out_size) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit((unsigned char)text[i])) {
            return false;
        }
        out[i] = (char)toupper((unsigned char)text[i]);
    }
    out[len] = '\0';
    return true;
}

bool cc_token_cluster_time(const char *token, uint32_t *seconds, uint32_t *increment)
{
    if (strlen(token) < 18 || strncmp(token, "82", 2) != 0) {
        return false;
    }
    char part[9] = {0};
    memcpy(part, token + 2, 8);
    *seconds = (uint32_t)strtoul(part, NULL, 16);
    memcpy(part, token + 10, 8);
    *increment = (uint32_t)strtoul(part, NULL, 16);
    return true;
}

cc_token_kind_t cc_token_kind(const char *token)
{
    if (strlen(token) < 24 || strncmp(token, "82", 2) != 0 || strncmp(token + 18, "2B04", 4) != 0) {
        return CC_TOKEN_UNKNOWN;
    }
    if (strncmp(token + 22, "29", 2) == 0) {
        return CC_TOKEN_HIGH_WATER_MARK;
    }
    return strncmp(token + 22, "2C0100", 6) == 0 ? CC_TOKEN_EVENT : CC_TOKEN_UNKNOWN;
}

void cc_token_high_water_mark(uint32_t seconds, uint32_t increment,
                              char out[CC_HIGH_WATER_MARK_LEN + 1])
{
    /* 82 timestamp, 2B04 version 2, 29 token type 0, 29 txnOpIndex 0,
     * 6E fromInvalidate false, 14 04 end of the key string. */
    snprintf(out, CC_HIGH_WATER_MARK_LEN + 1, "82%08X%08X2B0429296E1404", seconds, increment);
}
