/* SPDX-License-Identifier: Apache-2.0 */
/* Access verdicts (verdict.h): the names and statuses of refusals, the
 * filter limits, and whether a grant lets a subscription open, decided on
 * parsed values only. */
#include "verdict.h"

#include <string.h>

static const char *const refusal_names[CC_REFUSAL_COUNT] = {
    "token_missing",
    "token_invalid",
    "token_expired",
    "token_not_yet_valid",
    "claim_missing",
    "claim_invalid",
    "not_granted",
    "field_not_granted",
    "origin_not_allowed",
    "too_many_connections",
    "too_many_connections_per_ip",
    "filter_too_large",
    "filter_too_deep",
    "too_many_subscriptions",
    "message_too_large",
};

const char *cc_refusal_name(cc_refusal_t refusal)
{
    return refusal_names[refusal];
}

void cc_refusal_count(cc_metrics_t *metrics, cc_refusal_t refusal)
{
    metrics->refusals[refusal]++;
}

cc_refusal_t cc_refusal_from_auth(const bson_error_t *error)
{
    switch ((cc_auth_code_t)error->code) {
    case CC_AUTH_TOKEN_MISSING:
        return CC_REFUSAL_TOKEN_MISSING;
    case CC_AUTH_TOKEN_EXPIRED:
        return CC_REFUSAL_TOKEN_EXPIRED;
    case CC_AUTH_TOKEN_NOT_YET_VALID:
        return CC_REFUSAL_TOKEN_NOT_YET_VALID;
    case CC_AUTH_CLAIM_MISSING:
        return CC_REFUSAL_CLAIM_MISSING;
    case CC_AUTH_CLAIM_INVALID:
        return CC_REFUSAL_CLAIM_INVALID;
    case CC_AUTH_NOT_GRANTED:
        return CC_REFUSAL_NOT_GRANTED;
    case CC_AUTH_FIELD_NOT_GRANTED:
        return CC_REFUSAL_FIELD_NOT_GRANTED;
    default:
        return CC_REFUSAL_TOKEN_INVALID;
    }
}

static size_t depth_of(const bson_t *doc, size_t limit)
{
    bson_iter_t iter;
    size_t deepest = 0;
    if (limit == 0 || !bson_iter_init(&iter, doc)) {
        return 1;
    }
    while (bson_iter_next(&iter)) {
        if (BSON_ITER_HOLDS_DOCUMENT(&iter) || BSON_ITER_HOLDS_ARRAY(&iter)) {
            uint32_t len;
            const uint8_t *data;
            bson_t child;
            if (BSON_ITER_HOLDS_DOCUMENT(&iter)) {
                bson_iter_document(&iter, &len, &data);
            } else {
                bson_iter_array(&iter, &len, &data);
            }
            if (bson_init_static(&child, data, len)) {
                size_t depth = depth_of(&child, limit - 1);
                deepest = depth > deepest ? depth : deepest;
            }
        }
    }
    return deepest + 1;
}

bool cc_verdict_filter_shape(const cc_push_options_t *options, cc_metrics_t *metrics,
                             const bson_t *filter, size_t sent_bytes, cc_refusal_t *refusal,
                             bson_error_t *error)
{
    if (sent_bytes > (size_t)options->max_filter_bytes) {
        *refusal = CC_REFUSAL_FILTER_TOO_LARGE;
        bson_set_error(error, 0, 0,
                       "the filter is %zu bytes, more than push.max_filter_bytes (%lld)",
                       sent_bytes, (long long)options->max_filter_bytes);
    } else if (filter && depth_of(filter, (size_t)options->max_filter_depth + 1) >
                             (size_t)options->max_filter_depth) {
        *refusal = CC_REFUSAL_FILTER_TOO_DEEP;
        bson_set_error(error, 0, 0, "the filter nests deeper than push.max_filter_depth (%lld)",
                       (long long)options->max_filter_depth);
    } else {
        return true;
    }
    cc_refusal_count(metrics, *refusal);
    return false;
}

static bool refuse(cc_metrics_t *metrics, cc_refusal_t why, cc_refusal_t *refusal)
{
    *refusal = why;
    cc_refusal_count(metrics, why);
    return false;
}

int cc_refusal_status(cc_refusal_t refusal)
{
    switch (refusal) {
    case CC_REFUSAL_TOKEN_MISSING:
    case CC_REFUSAL_TOKEN_INVALID:
    case CC_REFUSAL_TOKEN_EXPIRED:
    case CC_REFUSAL_TOKEN_NOT_YET_VALID:
        return 401;
    case CC_REFUSAL_TOO_MANY_CONNECTIONS:
    case CC_REFUSAL_TOO_MANY_CONNECTIONS_PER_IP:
        return 429;
    case CC_REFUSAL_FILTER_TOO_LARGE:
    case CC_REFUSAL_FILTER_TOO_DEEP:
    case CC_REFUSAL_TOO_MANY_SUBSCRIPTIONS:
    case CC_REFUSAL_MESSAGE_TOO_LARGE:
        return 400;
    default:
        return 403;
    }
}

bool cc_verdict_sub(cc_metrics_t *metrics, const cc_grant_t *grant, cc_sub_t *sub,
                    cc_refusal_t *refusal, bson_error_t *error)
{
    if (!grant) {
        bson_set_error(error, 0, 0,
                       "no token: send {\"type\": \"auth\", \"token\": ...} first, or connect "
                       "with one");
        return refuse(metrics, CC_REFUSAL_TOKEN_MISSING, refusal);
    }
    for (size_t i = 0; i < sub->namespace_count; i++) {
        const cc_ns_pattern_t *ns = &sub->namespaces[i];
        if (!cc_grant_covers(grant, ns)) {
            bson_set_error(error, 0, 0, "the token does not grant %s.%s", ns->db,
                           ns->coll ? ns->coll : "*");
            return refuse(metrics, CC_REFUSAL_NOT_GRANTED, refusal);
        }
        /* Raw filters run on the projected event anyway; this says plainly
         * why a filter on a hidden field could never match. */
        const cc_scope_t *scope = cc_grant_scope(grant, ns->db, ns->coll);
        if (sub->query && !cc_scope_check_filter(scope, sub->query, !sub->live, error)) {
            return refuse(metrics, CC_REFUSAL_FIELD_NOT_GRANTED, refusal);
        }
        bson_iter_t key;
        if (sub->live && sub->live->sort && bson_iter_init(&key, sub->live->sort)) {
            while (bson_iter_next(&key)) {
                if (!cc_scope_shows_path(scope, bson_iter_key(&key))) {
                    bson_set_error(error, 0, 0, "sort: the token does not show %s",
                                   bson_iter_key(&key));
                    return refuse(metrics, CC_REFUSAL_FIELD_NOT_GRANTED, refusal);
                }
            }
        }
    }
    if (sub->namespace_count == 1 && sub->namespaces[0].coll) {
        sub->scope = cc_grant_scope(grant, sub->namespaces[0].db, sub->namespaces[0].coll);
    }
    cc_live_t *live = sub->live;
    if (!live) {
        return true;
    }
    bson_destroy(live->view_query);
    live->view_query = NULL;
    live->row_filtered = false;
    if (cc_scope_row_filter(sub->scope)) {
        /* A live query's filter runs on whole documents: the claim's rows
         * are part of it, so no clause of the subscriber's can reach past. */
        bson_t combined;
        bson_error_t detail;
        cc_scope_combine_filter(sub->scope, sub->query, NULL, &combined);
        cc_filter_t *filter = cc_filter_compile(&combined, &detail);
        if (!filter) {
            bson_destroy(&combined);
            bson_set_error(error, 0, 0, "filter: %s", detail.message);
            return refuse(metrics, CC_REFUSAL_FIELD_NOT_GRANTED, refusal);
        }
        if (sub->filter) {
            cc_filter_destroy(sub->filter);
        }
        sub->filter = filter;
        live->view_query = bson_copy(&combined);
        bson_destroy(&combined);
        live->row_filtered = true;
    }
    return true;
}
