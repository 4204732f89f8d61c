/* SPDX-License-Identifier: Apache-2.0 */
/* Whole transactions. The operations of one multi-document transaction
 * share lsid, txnNumber and clusterTime in their change events; they are
 * held until the stream moves past them (the next event, or an empty
 * batch), then dispatched together, and each subscription's part leaves
 * in one piece: one WebSocket message, or on SSE a txn marker and the
 * events in the same write. */
#include "changecast/json.h"
#include "txn.h"
#include "encode.h"

#include <string.h>

/* {txnNumber, lsid} of a transaction's event as JSON, for its marker. */
static char *txn_header(const cc_event_t *event)
{
    bson_t header = BSON_INITIALIZER;
    bson_iter_t iter;
    if (bson_iter_init_find(&iter, &event->document, "txnNumber")) {
        bson_append_iter(&header, "txnNumber", -1, &iter);
    }
    if (bson_iter_init_find(&iter, &event->document, "lsid")) {
        bson_append_iter(&header, "lsid", -1, &iter);
    }
    char *json = cc_json_document(&header, NULL);
    bson_destroy(&header);
    return json;
}

/* Subscriptions that got part of the transaction being dispatched. */
typedef struct txn_batch {
    cc_sub_t **subs;
    size_t count, capacity;
} txn_batch_t;

/* rules->gather while a transaction is dispatched. */
static void gather(cc_sub_t *sub, cc_buf_t *body, void *arg)
{
    txn_batch_t *batch = arg;
    if (sub->txn_count == 0) {
        if (batch->count == batch->capacity) {
            batch->capacity = batch->capacity ? batch->capacity * 2 : 16;
            batch->subs = bson_realloc(batch->subs, batch->capacity * sizeof *batch->subs);
        }
        batch->subs[batch->count++] = sub;
    }
    if (sub->txn_count == sub->txn_capacity) {
        sub->txn_capacity = sub->txn_capacity ? sub->txn_capacity * 2 : 8;
        sub->txn_parts = bson_realloc(sub->txn_parts, sub->txn_capacity * sizeof *sub->txn_parts);
    }
    sub->txn_parts[sub->txn_count++] = cc_buf_ref(body);
}

/* Each subscription gets its part of the transaction in one piece: on SSE
 * a txn marker and the events (the shared renderings), queued together so
 * they leave in the same write; on WebSocket one message, whose changes
 * are the shared bodies (each `"type":...}`, opened with `{`). */
static void send_txn_parts(txn_batch_t *batch, const cc_event_t *first)
{
    char *header = txn_header(first);
    for (size_t i = 0; i < batch->count; i++) {
        cc_sub_t *sub = batch->subs[i];
        cc_conn_t *conn = sub->conn;
        if (conn->kind == CC_CONN_SSE) {
            char count[64];
            snprintf(count, sizeof count, ",\"count\":%" PRIu32 "}", sub->txn_count);
            cc_span_t marker[] = {CC_SPAN_LIT("{\"txn\":"), cc_span_str(header),
                                  cc_span_str(count)};
            cc_conn_push(conn, NULL, cc_encode_sse(NULL, "txn", marker, 3), 0);
            for (size_t k = 0; k < sub->txn_count; k++) {
                cc_conn_push(conn, NULL, sub->txn_parts[k], 0);
            }
        } else {
            size_t n = 0, total = 5 + 2 * sub->txn_count;
            cc_span_t *parts = bson_malloc(total * sizeof *parts);
            parts[n++] = (cc_span_t){sub->head->data, sub->head->len};
            parts[n++] = CC_SPAN_LIT("\"type\":\"transaction\",\"txn\":");
            parts[n++] = cc_span_str(header);
            parts[n++] = CC_SPAN_LIT(",\"changes\":[");
            for (size_t k = 0; k < sub->txn_count; k++) {
                parts[n++] = k ? CC_SPAN_LIT(",{") : CC_SPAN_LIT("{");
                parts[n++] = (cc_span_t){sub->txn_parts[k]->data, sub->txn_parts[k]->len};
            }
            parts[n++] = CC_SPAN_LIT("]}");
            cc_conn_push(conn, NULL, cc_encode_ws_text(parts, n), 0);
            bson_free(parts);
            for (size_t k = 0; k < sub->txn_count; k++) {
                cc_buf_unref(sub->txn_parts[k]);
            }
        }
        sub->txn_count = 0;
        cc_conn_wake(conn);
    }
    bson_free(header);
}

void cc_txn_init(cc_txn_t *txn, cc_rules_t *rules, cc_metrics_t *metrics,
                 cc_txn_dispatch_fn *dispatch, void *dispatch_arg)
{
    *txn = (cc_txn_t){
        .rules = rules, .metrics = metrics, .dispatch = dispatch, .dispatch_arg = dispatch_arg};
}

void cc_txn_cleanup(cc_txn_t *txn)
{
    for (size_t i = 0; i < txn->count; i++) {
        cc_event_unref(txn->events[i]);
    }
    bson_free(txn->events);
    txn->events = NULL;
    txn->count = txn->capacity = 0;
}

void cc_txn_release(cc_txn_t *txn)
{
    if (txn->count == 0) {
        return;
    }
    txn_batch_t batch = {0};
    txn->rules->gather = gather;
    txn->rules->gather_arg = &batch;
    for (size_t i = 0; i < txn->count; i++) {
        txn->dispatch(txn->events[i], txn->dispatch_arg);
    }
    txn->rules->gather = NULL;
    txn->rules->gather_arg = NULL;
    if (txn->count > 1) {
        txn->metrics->transactions_grouped++;
    }
    send_txn_parts(&batch, txn->events[0]);
    bson_free(batch.subs);
    for (size_t i = 0; i < txn->count; i++) {
        cc_event_unref(txn->events[i]);
    }
    txn->count = 0;
}

static bool in_transaction(const cc_event_t *event)
{
    bson_iter_t iter;
    return bson_iter_init_find(&iter, &event->document, "txnNumber") &&
           bson_iter_init_find(&iter, &event->document, "lsid");
}

/* Whether two events belong to one transaction: same lsid, txnNumber and
 * clusterTime (a commit applies all of its operations at one time). */
static bool same_transaction(const cc_event_t *a, const cc_event_t *b)
{
    if (a->cluster_seconds != b->cluster_seconds || a->cluster_increment != b->cluster_increment) {
        return false;
    }
    bson_iter_t x, y;
    const char *keys[] = {"txnNumber", "lsid"};
    for (size_t i = 0; i < 2; i++) {
        if (!bson_iter_init_find(&x, &a->document, keys[i]) ||
            !bson_iter_init_find(&y, &b->document, keys[i]) ||
            bson_iter_value(&x)->value_type != bson_iter_value(&y)->value_type) {
            return false;
        }
        uint32_t len_x, len_y;
        const uint8_t *data_x, *data_y;
        if (BSON_ITER_HOLDS_DOCUMENT(&x)) {
            bson_iter_document(&x, &len_x, &data_x);
            bson_iter_document(&y, &len_y, &data_y);
            if (len_x != len_y || memcmp(data_x, data_y, len_x) != 0) {
                return false;
            }
        } else if (bson_iter_as_int64(&x) != bson_iter_as_int64(&y)) {
            return false;
        }
    }
    return true;
}

/* A transaction's events are held until the stream moves past it (the
 * next event, or an empty batch), so it is never delivered in halves when
 * it spans upstream batches. */
void cc_txn_on_live_event(cc_txn_t *txn, cc_event_t *event)
{
    if (txn->count && !same_transaction(txn->events[0], event)) {
        cc_txn_release(txn);
    }
    if (!in_transaction(event)) {
        txn->dispatch(event, txn->dispatch_arg);
        return;
    }
    if (txn->count == txn->capacity) {
        txn->capacity = txn->capacity ? txn->capacity * 2 : 16;
        txn->events = bson_realloc(txn->events, txn->capacity * sizeof *txn->events);
    }
    txn->events[txn->count++] = cc_event_ref(event);
}
