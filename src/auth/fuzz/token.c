/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the Authorization and Cookie helpers (src/auth/http.c)
 * and JWT verification (src/auth/verify.c) of any string a client may send
 * as a token, against an HS256 secret: compact
 * serialization, base64url, header and claims JSON, algorithm binding,
 * time claims, and the changecast claim when a forged token gets that far.
 * The secret is known here, so the first input byte chooses whether the
 * rest is a token as sent, or claims JSON this harness signs properly (so
 * claim parsing is reached with valid signatures too). */
#include "changecast/auth.h"

#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char secret[] = "fuzzing-secret-of-at-least-32-bytes-long";

static cc_auth_t *auth(void)
{
    static cc_auth_t *instance;
    if (!instance) {
        char path[] = "/tmp/cc-fuzz-secret-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0 || write(fd, secret, sizeof secret - 1) != (ssize_t)(sizeof secret - 1)) {
            abort();
        }
        close(fd);
        cc_auth_options_t options;
        cc_auth_options_init(&options);
        options.secret_file = path;
        bson_error_t error;
        instance = cc_auth_new(&options, &error);
        unlink(path);
        if (!instance) {
            abort();
        }
    }
    return instance;
}

/* Signs the claims JSON with the secret; NULL when libjwt refuses it. */
static char *sign(const char *claims)
{
    jwt_t *jwt = NULL;
    char *token = NULL;
    if (jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, claims) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, sizeof secret - 1) == 0) {
        token = jwt_encode_str(jwt);
    }
    jwt_free(jwt);
    return token;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 16384) {
        return 0;
    }
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    /* The HTTP helpers see the same bytes as header values. */
    const char *part;
    size_t part_len;
    if (cc_auth_bearer_token(text, &part, &part_len) && part + part_len > text + size) {
        abort();
    }
    if (cc_auth_cookie_find(text, "cc_token", &part, &part_len) && part + part_len > text + size) {
        abort();
    }
    char *token = (data[0] & 1) ? sign(text) : text;
    if (token) {
        cc_grant_t *grant = NULL;
        bson_error_t error;
        if (cc_auth_verify(auth(), token, 1800000000, &grant, &error)) {
            bson_t doc = BSON_INITIALIZER;
            cc_ns_pattern_t pattern;
            if (cc_ns_pattern_parse("shop.orders", &pattern, &error)) {
                cc_grant_covers(grant, &pattern);
                cc_ns_pattern_destroy(&pattern);
            }
            cc_grant_scope(grant, "shop", "orders");
            bson_destroy(&doc);
            cc_grant_destroy(grant);
        } else if (error.code == 0) {
            abort(); /* a refusal always says which */
        }
    }
    if (token != text) {
        free(token);
    }
    free(text);
    return 0;
}
