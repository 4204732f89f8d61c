/* SPDX-License-Identifier: Apache-2.0 */
/* push/txn (ordering layer, below fanout): whole transactions. The
 * operations of one multi-document transaction are held until the stream
 * moves past them, then dispatched together while the rules gather each
 * subscription's part, which leaves in one piece. Calls the rules layer
 * (deliver.h) and below; dispatches through the callback fanout gives it. */
#ifndef CC_PUSH_TXN_H
#define CC_PUSH_TXN_H

#include "deliver.h"

typedef void cc_txn_dispatch_fn(cc_event_t *event, void *arg);

typedef struct cc_txn {
    cc_rules_t *rules; /* gather while a transaction is dispatched */
    cc_metrics_t *metrics;
    cc_txn_dispatch_fn *dispatch; /* offers one live event to every subscription */
    void *dispatch_arg;
    cc_event_t **events; /* the transaction held back */
    size_t count, capacity;
} cc_txn_t;

void cc_txn_init(cc_txn_t *txn, cc_rules_t *rules, cc_metrics_t *metrics,
                 cc_txn_dispatch_fn *dispatch, void *dispatch_arg);
void cc_txn_cleanup(cc_txn_t *txn);
/* Dispatches the event, or holds it while its transaction may go on. */
void cc_txn_on_live_event(cc_txn_t *txn, cc_event_t *event);
/* Dispatches the transaction held back, if any. */
void cc_txn_release(cc_txn_t *txn);

#endif
