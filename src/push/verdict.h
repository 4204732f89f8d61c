/* SPDX-License-Identifier: Apache-2.0 */
/* push/verdict (pure layer): access decisions on parsed values, no lws:
 * refusal names and HTTP statuses, the filter limits
 * (push.max_filter_bytes/depth), and whether a grant lets a subscription
 * open (namespaces granted, filter and sort within the shown fields, the
 * claim's rows combined into a live query's filter). Every refusal is
 * counted in the metrics. Calls auth, filter and sub. */
#ifndef CC_PUSH_VERDICT_H
#define CC_PUSH_VERDICT_H

#include "metrics.h"
#include "sub.h"

#include "changecast/auth.h"
#include "changecast/push.h"

const char *cc_refusal_name(cc_refusal_t refusal);
void cc_refusal_count(cc_metrics_t *metrics, cc_refusal_t refusal);
cc_refusal_t cc_refusal_from_auth(const bson_error_t *error);
/* 401, 403, 429 or 400. */
int cc_refusal_status(cc_refusal_t refusal);
bool cc_verdict_filter_shape(const cc_push_options_t *options, cc_metrics_t *metrics,
                             const bson_t *filter, size_t sent_bytes, cc_refusal_t *refusal,
                             bson_error_t *error);
bool cc_verdict_sub(cc_metrics_t *metrics, const cc_grant_t *grant, cc_sub_t *sub,
                    cc_refusal_t *refusal, bson_error_t *error);

#endif
