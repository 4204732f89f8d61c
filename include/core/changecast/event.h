/* SPDX-License-Identifier: Apache-2.0 */
/* core/event: one captured change event, parsed once and serialized once,
 * shared by reference between the ring and every subscriber that receives
 * it. Created on the capture thread, released by whichever thread drops the
 * last reference. Calls libbson only. */
#ifndef CHANGECAST_EVENT_H
#define CHANGECAST_EVENT_H

#include <bson/bson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cc_event {
    atomic_int refs;
    char *token;     /* _id._data, upper-case hex: compares in stream order */
    char *db;        /* ns.db */
    char *coll;      /* ns.coll; NULL for dropDatabase */
    char *operation; /* operationType */
    uint32_t cluster_seconds;
    uint32_t cluster_increment;
    bson_t document; /* the whole change event, for subscriber filters */
    char *json;      /* the event as one line of relaxed Extended JSON */
    size_t json_len;
    /* The second output form, made on first use by the push thread only:
     * an update event without fullDocument, as fullDocument "default"
     * streams give it. NULL until asked for. */
    char *json_default;
    size_t json_default_len;
    /* For live queries in format=docs, also made on first use by the push
     * thread: documentKey._id and fullDocument, each as relaxed JSON. */
    char *json_id;
    size_t json_id_len;
    char *json_post_image;
    size_t json_post_image_len;
    /* What the push thread rendered of the event for its subscribers (one
     * buffer per wire form), released with the event. */
    void *renderings;
    void (*free_renderings)(void *renderings);
} cc_event_t;

/* Takes the fields it needs from an upstream change event; NULL when the
 * event lacks a resume token or namespace. */
cc_event_t *cc_event_new(const bson_t *change, bson_error_t *error);
cc_event_t *cc_event_ref(cc_event_t *event);
void cc_event_unref(cc_event_t *event);

/* The JSON for a subscriber that asked fullDocument "default": the same
 * bytes as event->json except for update events. Push thread only. */
const char *cc_event_json_default(cc_event_t *event, size_t *len);

/* A change event without fullDocument, as relaxed JSON (owned; NULL when a
 * string is not UTF-8): how fullDocument "default" streams give updates. */
char *cc_change_json_without_post_image(const bson_t *change, size_t *len);

/* documentKey._id as relaxed Extended JSON ("null" when absent). Push
 * thread only. */
const char *cc_event_json_id(cc_event_t *event, size_t *len);

/* fullDocument as relaxed Extended JSON ("null" when absent). Push thread
 * only. */
const char *cc_event_json_post_image(cc_event_t *event, size_t *len);

/* Bytes the event holds, for ring and queue accounting. */
size_t cc_event_size(const cc_event_t *event);

/* Resume tokens of one deployment order as their upper-cased hex strings
 * (MongoDB's KeyString encoding is built to compare bytewise). */
int cc_token_compare(const char *a, const char *b);

/* Copies a client-supplied token into out (upper case); false unless it is
 * 2 to CC_MAX_RESUME_TOKEN hex digits. A token holds its event's document
 * key, so a long string _id makes a long token. */
#define CC_MAX_RESUME_TOKEN 8192
bool cc_token_normalize(const char *text, char *out, size_t out_size);

/* The cluster time a token starts with: MongoDB resume tokens are
 * KeyStrings whose first value is the event's clusterTime (type byte 0x82,
 * then seconds and increment as big-endian 32-bit integers). */
bool cc_token_cluster_time(const char *token, uint32_t *seconds, uint32_t *increment);

/* What a resume token marks. MongoDB 6.0+ (version 2) tokens continue
 * after the cluster time with the version (KeyString 2B04) and the token
 * type: 0 (29) for a high-water mark, "every event before this time was
 * seen", or 128 (2C0100) for an event. Other layouts are UNKNOWN. */
typedef enum cc_token_kind {
    CC_TOKEN_UNKNOWN,
    CC_TOKEN_EVENT,
    CC_TOKEN_HIGH_WATER_MARK,
} cc_token_kind_t;
cc_token_kind_t cc_token_kind(const char *token);

/* A version-2 high-water-mark token at (seconds, increment), as MongoDB
 * writes them in postBatchResumeToken: "every event before this time was
 * seen", and nothing about any document. out needs 33 bytes. */
#define CC_HIGH_WATER_MARK_LEN 32
void cc_token_high_water_mark(uint32_t seconds, uint32_t increment,
                              char out[CC_HIGH_WATER_MARK_LEN + 1]);

#endif
