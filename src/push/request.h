/* SPDX-License-Identifier: Apache-2.0 */
/* push/request (pure layer): what a GET /v1/events asks for, from its
 * query arguments (url-decoded, one "name=value" each): parsing and
 * checking only, no I/O, so the fuzzer reaches it (src/push/fuzz). sse.c
 * answers. Calls sub and verdict. */
#ifndef CC_PUSH_REQUEST_H
#define CC_PUSH_REQUEST_H

#include "verdict.h"

typedef struct cc_sse_request {
    char token[CC_MAX_RESUME_TOKEN + 8]; /* Last-Event-ID / lastEventId, normalized */
    bool has_token;
} cc_sse_request_t;

typedef struct cc_http_refusal {
    unsigned status;
    const char *code;
    bson_error_t error;
} cc_http_refusal_t;

/* What the parsing may consult and count. */
typedef struct cc_request_rules {
    const cc_push_options_t *options;
    const cc_expose_t *expose;
    cc_metrics_t *metrics;
} cc_request_rules_t;

bool cc_sse_read_token(const char *text, cc_sse_request_t *request);
/* One query argument into the subscription; false with why's status, code
 * and message. */
bool cc_sse_read_arg(const cc_request_rules_t *rules, cc_sub_t *sub, cc_sse_request_t *request,
                     const char *name, const char *value, cc_http_refusal_t *why);
/* The request as a whole, once every argument is read. */
bool cc_sse_check_request(const cc_request_rules_t *rules, cc_sub_t *sub, cc_http_refusal_t *why);

#endif
