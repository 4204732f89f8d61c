/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the query of GET /v1/events (src/push/sse_request.c),
 * as lws hands it over: "name=value" arguments, url-decoded. The input is
 * split at '&' (NUL bytes end an argument, as they would in lws's copy);
 * every argument is read into one subscription, then the request is
 * checked as a whole. */
#include "fuzz_push.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) {
        return 0; /* lws refuses longer headers (push: max_http_header_data) */
    }
    cc_port_t *port = fuzz_port();
    cc_request_rules_t rules = {&port->options, &port->expose, &port->metrics};
    char *query = malloc(size + 1);
    memcpy(query, data, size);
    query[size] = '\0';
    cc_sub_t *sub = cc_sub_new(NULL, NULL);
    cc_sse_request_t request = {0};
    cc_http_refusal_t why;
    bool ok = true;
    char *save = NULL;
    for (char *arg = strtok_r(query, "&", &save); arg && ok; arg = strtok_r(NULL, "&", &save)) {
        char *value = strchr(arg, '=');
        if (!value) {
            continue;
        }
        *value++ = '\0';
        ok = cc_sse_read_arg(&rules, sub, &request, arg, value, &why);
    }
    if (ok) {
        ok = cc_sse_check_request(&rules, sub, &why);
    }
    if (ok) {
        cc_grant_t *grant = cc_grant_anonymous();
        cc_refusal_t refusal;
        bson_error_t error;
        cc_verdict_sub(&port->metrics, grant, sub, &refusal, &error);
        cc_grant_destroy(grant);
    } else if (why.status < 400 || !why.code || !*why.code) {
        abort(); /* a refusal always names its status and code */
    }
    cc_sub_free(sub);
    free(query);
    return 0;
}
