/* SPDX-License-Identifier: Apache-2.0 */
/* push/sub (pure layer): a subscription, what it asked for checked against
 * what is exposed, and the index that keeps an event from visiting the
 * subscriptions that cannot match it. No lws, no I/O. subscription.c. */
#ifndef CC_PUSH_SUB_H
#define CC_PUSH_SUB_H

#include "buf.h"
#include "pending.h"

#include "changecast/auth.h"
#include "changecast/event.h"
#include "changecast/expose.h"
#include "changecast/filter.h"
#include "changecast/push.h"

#include <stdbool.h>
#include <sys/queue.h>

/* Namespaces one subscription may name (each is an index entry). */
#define CC_MAX_NAMESPACES_PER_SUB 64

enum {
    CC_OP_INSERT = 1 << 0,
    CC_OP_UPDATE = 1 << 1,
    CC_OP_REPLACE = 1 << 2,
    CC_OP_DELETE = 1 << 3,
    CC_OP_DROP = 1 << 4,
    CC_OP_RENAME = 1 << 5,
    CC_OP_DROP_DATABASE = 1 << 6,
    CC_OP_INVALIDATE = 1 << 7,
    CC_OP_OTHER = 1 << 8,
    CC_OP_ALL = 0x1ff,
};

typedef enum cc_sub_state {
    CC_SUB_LIVE,           /* receives events as capture posts them */
    CC_SUB_REPLAYING,      /* reading the ring, a queue's worth per write */
    CC_SUB_CATCHING_UP,    /* reading its own upstream stream */
    CC_SUB_CATCHUP_PAUSED, /* its client is behind: the stream waits for it */
    CC_SUB_SNAPSHOT,       /* waiting for its snapshot read */
} cc_sub_state_t;

typedef enum cc_sub_format {
    CC_FORMAT_CHANGES, /* change events as MongoDB gives them */
    CC_FORMAT_DOCS,    /* upsert/delete of document states, conflated */
} cc_sub_format_t;

/* Where a subscription is in the stream: the last event it examined (a
 * reference, never a copy of its token), or a token that names no event
 * we hold (a client's, a snapshot's, a high-water mark). */
typedef struct cc_mark {
    cc_event_t *event;
    char *token;
} cc_mark_t;

const char *cc_mark_token(const cc_mark_t *mark); /* NULL: from now */
void cc_mark_set_event(cc_mark_t *mark, cc_event_t *event);
void cc_mark_set_token(cc_mark_t *mark, const char *token);
void cc_mark_clear(cc_mark_t *mark);

struct cc_conn;

/* What only a live query holds (docs/live-queries.md), apart so that a
 * change subscription, the common case, does not carry it. */
typedef struct cc_live {
    bson_t *sort;
    int64_t limit;
    bson_t *view_query;      /* its filter with the token's rows; NULL: query */
    char **filter_fields;    /* top-level fields the filter reads */
    cc_pending_t *pending;   /* format=docs: newest state per _id not yet written */
    char *snapshot_position; /* where its snapshot was read: its changes start after */
    uint32_t filter_field_count;
    bool row_filtered; /* its token has a row filter */
} cc_live_t;

typedef struct cc_sub {
    struct cc_conn *conn;
    cc_buf_t *head; /* WebSocket: `{"id":"<id>",`, the head of its messages */
    /* one_namespace while there is one, which is the common case: an idle
     * subscriber is counted in bytes (see docs/benchmarks.md, Idle cost) */
    cc_ns_pattern_t *namespaces;
    cc_ns_pattern_t one_namespace;
    cc_filter_t *filter;
    bson_t *query;             /* the filter as given */
    cc_live_t *live;           /* a live query's (snapshot or format=docs); NULL for changes */
    cc_mark_t position;        /* the last event examined */
    uint64_t watermark_number; /* the fanout's watermark it last got (0: none) */
    uint64_t seen_sequence;    /* dispatch number of the last event offered */
    /* What the connection's token grants for this subscription's exact
     * namespace (NULL: look it up per event, or no restriction). */
    const cc_scope_t *scope;
    uint16_t ops;            /* CC_OP_* bits */
    uint8_t namespace_count; /* at most CC_MAX_NAMESPACES_PER_SUB */
    uint8_t state;           /* cc_sub_state_t */
    uint8_t format;          /* cc_sub_format_t */
    bool ops_given;
    bool full_document_default; /* strip fullDocument from updates */
    bool fell_behind;           /* paused while live because the server lagged */
    bool want_snapshot;
    uint64_t catchup_id;  /* the worker request (catch-up or snapshot) it waits on */
    cc_buf_t **txn_parts; /* its part of the transaction being dispatched */
    uint32_t txn_count, txn_capacity;
    TAILQ_ENTRY(cc_sub) conn_link;
    TAILQ_ENTRY(cc_sub) catchup_link; /* in the catch-up list while CATCHING_UP or SNAPSHOT */
    char id[];                        /* the client's name for it (WebSocket); empty for SSE */
} cc_sub_t;

/* id: NULL for SSE */
cc_sub_t *cc_sub_new(struct cc_conn *conn, const char *id);
void cc_sub_free(cc_sub_t *sub);
bool cc_sub_add_namespace(const cc_expose_t *expose, cc_sub_t *sub, const char *text,
                          const char **code, bson_error_t *error);
bool cc_sub_set_ops(cc_sub_t *sub, const char *comma_separated, bson_error_t *error);
bool cc_sub_set_full_document(const cc_push_options_t *options, cc_sub_t *sub, const char *mode,
                              bson_error_t *error);
bool cc_sub_set_filter_json(cc_sub_t *sub, const char *json, size_t len, bson_error_t *error);
bool cc_sub_set_format(cc_sub_t *sub, const char *format, bson_error_t *error);
bool cc_sub_set_sort_json(cc_sub_t *sub, const char *json, bson_error_t *error);
void cc_sub_set_sort(cc_sub_t *sub, const bson_t *sort);
bool cc_sub_set_limit(cc_sub_t *sub, int64_t limit, bson_error_t *error);
/* Its live-query state, made on first use by the request's parsers. */
cc_live_t *cc_sub_live(cc_sub_t *sub);
/* Checks a live query's request once it is complete (snapshot, format,
 * sort, limit); *code names the error for the client. After it, live is
 * set exactly for a live query. */
bool cc_sub_prepare_live_query(const cc_push_options_t *options, cc_sub_t *sub, const char **code,
                               bson_error_t *error);
uint32_t cc_op_bit(const char *operation);
bool cc_sub_namespace_matches(const cc_sub_t *sub, const cc_event_t *event);
/* format=docs: document states waiting to be written. */
size_t cc_sub_states_waiting(const cc_sub_t *sub);
/* A live query's rows under its token (its view query) as JSON, to
 * compare across a token change; NULL: no row filter. bson_free it. */
char *cc_sub_rows_json(const cc_sub_t *sub);
/* Whether the filter reads this top-level field (live queries). */
bool cc_sub_reads_field(const cc_sub_t *sub, const char *path);

typedef struct cc_index cc_index_t;
cc_index_t *cc_index_new(void);
void cc_index_free(cc_index_t *index);
void cc_index_add(cc_index_t *index, cc_sub_t *sub);
void cc_index_remove(cc_index_t *index, cc_sub_t *sub);
/* Calls fn for each subscription whose namespaces may match; fn may not
 * add or remove subscriptions. */
void cc_index_visit(cc_index_t *index, const cc_event_t *event,
                    void (*fn)(cc_sub_t *sub, void *arg), void *arg);

#endif
