/* SPDX-License-Identifier: Apache-2.0 */
/* Whole transactions. The operations of one multi-document transaction
 * share lsid, txnNumber and clusterTime in their change events; they are
 * held until the stream moves past them (the next event, or an empty
 * batch), then dispatched together, and each subscription's part leaves
 * in one piece: one WebSocket message, or on SSE a txn marker and the
 * events in the same write. */
#include "push_internal.h"

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
    char *json = bson_as_relaxed_extended_json(&header, NULL);
    bson_destroy(&header);
    return json;
}

/* Each subscription gets its part of the transaction in one piece: one
 * WebSocket message, or on SSE a txn marker and the events, queued
 * together so they leave in the same write. */
static void send_txn_parts(cc_txn_batch_t *batch, const cc_event_t *first)
{
    char *header = txn_header(first);
    for (size_t i = 0; i < batch->count; i++) {
        cc_sub_t *sub = batch->subs[i];
        cc_conn_t *conn = sub->conn;
        if (conn->kind == CC_CONN_SSE) {
            char marker[64];
            int len = snprintf(marker, sizeof marker, ",\"count\":%zu}\n\n", sub->txn_item_count);
            cc_conn_append(conn, "event: txn\ndata: {\"txn\":", 24);
            cc_conn_append(conn, header, strlen(header));
            cc_conn_append(conn, marker, (size_t)len);
            cc_conn_append(conn, sub->txn_items->str, sub->txn_items->len);
        } else {
            static const char open[] = "{\"type\":\"transaction\",\"id\":\"",
                              txn[] = "\",\"txn\":", changes[] = ",\"changes\":[", close[] = "]}";
            const char *parts[] = {open, sub->id, txn, header, changes, sub->txn_items->str, close};
            const size_t lens[] = {sizeof open - 1, strlen(sub->id),    sizeof txn - 1,
                                   strlen(header),  sizeof changes - 1, sub->txn_items->len,
                                   sizeof close - 1};
            cc_conn_append_ws_text(conn, parts, lens, 7);
        }
        bson_string_free(sub->txn_items, true);
        sub->txn_items = NULL;
        sub->txn_item_count = 0;
        cc_deliver_queued(sub, true);
    }
    bson_free(header);
}

/* Dispatches the transaction held back so far, if any. */
void cc_txn_release(struct cc_push *push)
{
    if (push->txn_count == 0) {
        return;
    }
    cc_txn_batch_t batch = {0};
    push->current_txn = &batch;
    for (size_t i = 0; i < push->txn_count; i++) {
        cc_fanout_dispatch_live(push, push->txn_events[i]);
    }
    push->current_txn = NULL;
    if (push->txn_count > 1) {
        push->metrics.transactions_grouped++;
    }
    send_txn_parts(&batch, push->txn_events[0]);
    bson_free(batch.subs);
    for (size_t i = 0; i < push->txn_count; i++) {
        cc_event_unref(push->txn_events[i]);
    }
    push->txn_count = 0;
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
void cc_txn_on_live_event(struct cc_push *push, cc_event_t *event)
{
    if (push->txn_count && !same_transaction(push->txn_events[0], event)) {
        cc_txn_release(push);
    }
    if (!in_transaction(event)) {
        cc_fanout_dispatch_live(push, event);
        return;
    }
    if (push->txn_count == push->txn_capacity) {
        push->txn_capacity = push->txn_capacity ? push->txn_capacity * 2 : 16;
        push->txn_events =
            bson_realloc(push->txn_events, push->txn_capacity * sizeof *push->txn_events);
    }
    push->txn_events[push->txn_count++] = cc_event_ref(event);
}
