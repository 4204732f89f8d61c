/* SPDX-License-Identifier: Apache-2.0 */
/* What a GET /v1/events asks for, from its query arguments (url-decoded,
 * one "name=value" each): pure parsing and checking, no I/O, so the fuzzer
 * reaches it (src/push/fuzz). sse.c answers. */
#include "request.h"

#include <stdlib.h>
#include <string.h>

/* The message is already in why->error. */
static bool refused(cc_http_refusal_t *why, unsigned status, const char *code)
{
    why->status = status;
    why->code = code;
    return false;
}

static bool refuse(cc_http_refusal_t *why, unsigned status, const char *code, const char *message)
{
    why->status = status;
    why->code = code;
    bson_set_error(&why->error, 0, 0, "%s", message);
    return false;
}

bool cc_sse_read_token(const char *text, cc_sse_request_t *request)
{
    request->has_token = true;
    return cc_token_normalize(text, request->token, sizeof request->token);
}

bool cc_sse_read_arg(const cc_request_rules_t *rules, cc_sub_t *sub, cc_sse_request_t *request,
                     const char *name, const char *value, cc_http_refusal_t *why)
{
    bson_error_t *error = &why->error;
    const char *code = "bad_request";
    if (strcmp(name, "ns") == 0) {
        if (!cc_sub_add_namespace(rules->expose, sub, value, &code, error)) {
            why->status = strcmp(code, "not_exposed") ? 400 : 404;
            why->code = code;
            return false;
        }
    } else if (strcmp(name, "filter") == 0) {
        cc_refusal_t refusal;
        if (sub->filter) {
            return refuse(why, 400, "bad_filter", "filter given twice");
        }
        if (!cc_verdict_filter_shape(rules->options, rules->metrics, NULL, strlen(value), &refusal,
                                     error)) {
            why->status = (unsigned)cc_refusal_status(refusal);
            why->code = cc_refusal_name(refusal);
            return false;
        }
        if (!cc_sub_set_filter_json(sub, value, strlen(value), error)) {
            why->status = 400;
            why->code = "bad_filter";
            return false;
        }
    } else if (strcmp(name, "ops") == 0) {
        if (!cc_sub_set_ops(sub, value, error)) {
            return refused(why, 400, code);
        }
    } else if (strcmp(name, "fullDocument") == 0) {
        if (!cc_sub_set_full_document(rules->options, sub, value, error)) {
            return refused(why, 400, code);
        }
    } else if (strcmp(name, "snapshot") == 0) {
        sub->want_snapshot = strcmp(value, "1") == 0 || strcmp(value, "true") == 0;
    } else if (strcmp(name, "format") == 0) {
        if (!cc_sub_set_format(sub, value, error)) {
            return refused(why, 400, code);
        }
    } else if (strcmp(name, "sort") == 0) {
        if (!cc_sub_set_sort_json(sub, value, error)) {
            return refused(why, 400, code);
        }
    } else if (strcmp(name, "limit") == 0) {
        char *end;
        long long limit = strtoll(value, &end, 10);
        if (*value == '\0' || *end != '\0' || !cc_sub_set_limit(sub, limit, error)) {
            return refuse(why, 400, code, "limit must be a positive integer");
        }
    } else if (strcmp(name, "lastEventId") == 0 && !cc_sse_read_token(value, request)) {
        return refuse(why, 400, code, "lastEventId is not a token (hex digits)");
    }
    return true;
}

bool cc_sse_check_request(const cc_request_rules_t *rules, cc_sub_t *sub, cc_http_refusal_t *why)
{
    cc_refusal_t refusal;
    const char *code;
    if (sub->namespace_count == 0) {
        return refuse(why, 400, "bad_request",
                      "ns is required: ?ns=db.collection (repeatable; db.* for a database)");
    }
    if (sub->query && !cc_verdict_filter_shape(rules->options, rules->metrics, sub->query, 0,
                                               &refusal, &why->error)) {
        why->status = (unsigned)cc_refusal_status(refusal);
        why->code = cc_refusal_name(refusal);
        return false;
    }
    if (!cc_sub_prepare_live_query(rules->options, sub, &code, &why->error)) {
        why->status = 400;
        why->code = code;
        return false;
    }
    return true;
}
