/* SPDX-License-Identifier: Apache-2.0 */
/* auth/verify: the auth object (options and keys) and token verification. libjwt 1.10 verifies
 * with whatever algorithm the token's header names (an HS256 token checked against an RSA
 * public key is HMACed with the PEM text as the secret), so the header is read here first and
 * its `alg` must be the one the chosen key is bound to (RFC 8725 section 3.1) before libjwt
 * checks the signature; `alg: none` fails that test too, whatever libjwt would do with it. The
 * registered claims follow RFC 7519 section 4.1; the claims are read from libjwt's own parse
 * (jwt_get_grants_json), so libjwt and changecast never disagree about a payload with duplicate
 * keys. Calls keys.c, grant.c, libjwt and the filter's Extended JSON reader. */
#include "auth_internal.h"

#include <stdlib.h>
#include <string.h>

struct cc_auth {
    cc_auth_mode_t mode;
    char *secret_file;
    char *public_key_file;
    char *jwks_file;
    char *issuer;
    char *audience;
    char *cookie_name;
    int64_t leeway_s;
    cc_auth_keyset_t keys;
};

enum { MAX_LEEWAY_S = 600 };

void cc_auth_options_init(cc_auth_options_t *options)
{
    memset(options, 0, sizeof *options);
    options->mode = CC_AUTH_MODE_JWT;
    options->leeway_s = 30;
}

static char *copy_option(const char *s)
{
    return s && *s ? bson_strdup(s) : NULL;
}

cc_auth_t *cc_auth_new(const cc_auth_options_t *options, bson_error_t *error)
{
    if (options->leeway_s < 0 || options->leeway_s > MAX_LEEWAY_S) {
        cc_auth_set_error(error, CC_AUTH_CONFIG, "auth leeway %lld s: use 0 to %d seconds",
                          (long long)options->leeway_s, MAX_LEEWAY_S);
        return NULL;
    }
    cc_auth_t *auth = bson_malloc0(sizeof *auth);
    auth->mode = options->mode;
    auth->secret_file = copy_option(options->secret_file);
    auth->public_key_file = copy_option(options->public_key_file);
    auth->jwks_file = copy_option(options->jwks_file);
    auth->issuer = copy_option(options->issuer);
    auth->audience = copy_option(options->audience);
    auth->cookie_name = copy_option(options->cookie_name);
    auth->leeway_s = options->leeway_s;
    if (auth->mode == CC_AUTH_MODE_JWT && !cc_auth_reload(auth, error)) {
        cc_auth_destroy(auth);
        return NULL;
    }
    return auth;
}

void cc_auth_destroy(cc_auth_t *auth)
{
    if (!auth) {
        return;
    }
    cc_auth_keyset_destroy(&auth->keys);
    bson_free(auth->secret_file);
    bson_free(auth->public_key_file);
    bson_free(auth->jwks_file);
    bson_free(auth->issuer);
    bson_free(auth->audience);
    bson_free(auth->cookie_name);
    bson_free(auth);
}

bool cc_auth_reload(cc_auth_t *auth, bson_error_t *error)
{
    if (auth->mode != CC_AUTH_MODE_JWT) {
        return true;
    }
    cc_auth_options_t options;
    cc_auth_options_init(&options);
    options.secret_file = auth->secret_file;
    options.public_key_file = auth->public_key_file;
    options.jwks_file = auth->jwks_file;
    cc_auth_keyset_t keys;
    if (!cc_auth_keyset_load(&options, &keys, error)) {
        return false;
    }
    cc_auth_keyset_destroy(&auth->keys);
    auth->keys = keys;
    return true;
}

cc_auth_mode_t cc_auth_mode(const cc_auth_t *auth)
{
    return auth->mode;
}

const char *cc_auth_cookie_name(const cc_auth_t *auth)
{
    return auth->cookie_name;
}

/* The JOSE header of a compact JWS, parsed; the three parts must be there. */
static bool read_header(const char *token, bson_t *header, bson_error_t *error)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot2 || strchr(dot2 + 1, '.') || dot1 == token || dot2 == dot1 + 1 || !dot2[1]) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID,
                          "not a signed JWT (header.payload.signature)");
        return false;
    }
    uint8_t *json;
    size_t json_len;
    if (!cc_b64url_decode(token, (size_t)(dot1 - token), &json, &json_len)) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "the JWT header is not base64url");
        return false;
    }
    bson_error_t parse_error;
    bool ok = bson_init_from_json(header, (const char *)json, (ssize_t)json_len, &parse_error);
    bson_free(json);
    if (!ok) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "the JWT header is not a JSON object");
    }
    return ok;
}

/* RFC 7515 section 4: duplicate header names must be refused (or the last one used). libbson
 * keeps the first and jansson, inside libjwt, the last: {"alg":"RS256","alg":"HS256"} would pass
 * our check and be verified by libjwt as HS256. */
static bool has_duplicate_names(const bson_t *header)
{
    bson_iter_t a, b;
    bson_iter_init(&a, header);
    while (bson_iter_next(&a)) {
        b = a;
        while (bson_iter_next(&b)) {
            if (strcmp(bson_iter_key(&a), bson_iter_key(&b)) == 0) {
                return true;
            }
        }
    }
    return false;
}

static const cc_auth_key_t *choose_key(const cc_auth_t *auth, const bson_t *header,
                                       bson_error_t *error)
{
    bson_iter_t it;
    if (has_duplicate_names(header)) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "the JWT header repeats a name");
        return NULL;
    }
    if (bson_iter_init_find(&it, header, "crit")) {
        /* RFC 7515 section 4.1.11: extensions we do not understand make the token invalid. */
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "the JWT header has \"crit\" extensions");
        return NULL;
    }
    const char *alg = NULL, *kid = NULL;
    if (bson_iter_init_find(&it, header, "alg") && BSON_ITER_HOLDS_UTF8(&it)) {
        alg = bson_iter_utf8(&it, NULL);
    }
    if (!alg) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "the JWT header has no \"alg\"");
        return NULL;
    }
    if (bson_iter_init_find(&it, header, "kid")) {
        if (!BSON_ITER_HOLDS_UTF8(&it)) {
            cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "\"kid\" must be a string");
            return NULL;
        }
        kid = bson_iter_utf8(&it, NULL);
    }
    const cc_auth_key_t *key = NULL;
    if (auth->keys.count == 1 && !auth->keys.keys[0].kid) {
        key = &auth->keys.keys[0]; /* one key that has no kid: a token's kid cannot choose */
    } else if (kid) {
        for (size_t i = 0; i < auth->keys.count && !key; i++) {
            const char *k = auth->keys.keys[i].kid;
            key = k && strcmp(k, kid) == 0 ? &auth->keys.keys[i] : NULL;
        }
        if (!key) {
            cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "no key with kid \"%.64s\"", kid);
            return NULL;
        }
    } else if (auth->keys.count == 1) {
        key = &auth->keys.keys[0];
    } else {
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID,
                          "the token has no \"kid\" and the key set has %zu keys",
                          auth->keys.count);
        return NULL;
    }
    if (strcmp(alg, jwt_alg_str(key->alg)) != 0) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID,
                          "alg \"%.32s\" refused: the key is for %s only", alg,
                          jwt_alg_str(key->alg));
        return NULL;
    }
    return key;
}

/* A NumericDate (RFC 7519 section 2): integer or not. Fractions round towards the safe side:
 * exp down, nbf up. */
static bool numeric_date(const bson_t *claims, const char *name, bool round_up, bool *present,
                         int64_t *out, bson_error_t *error)
{
    bson_iter_t it;
    *present = bson_iter_init_find(&it, claims, name);
    if (!*present) {
        return true;
    }
    if (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it)) {
        *out = bson_iter_as_int64(&it);
        return true;
    }
    if (BSON_ITER_HOLDS_DOUBLE(&it)) {
        double d = bson_iter_double(&it);
        if (d == d && d > -9.2e18 && d < 9.2e18) {
            int64_t t = (int64_t)d; /* towards zero */
            if (round_up && (double)t < d) {
                t++;
            } else if (!round_up && (double)t > d) {
                t--;
            }
            *out = t;
            return true;
        }
    }
    cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "\"%s\" is not a NumericDate", name);
    return false;
}

static bool check_audience(const cc_auth_t *auth, const bson_t *claims, bson_error_t *error)
{
    bson_iter_t it, item;
    bool present = bson_iter_init_find(&it, claims, "aud");
    if (!auth->audience) {
        if (present) {
            /* RFC 7519 section 4.1.3: a recipient that is not named in aud must refuse. */
            cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID,
                              "the token names an audience (aud) but none is configured");
            return false;
        }
        return true;
    }
    if (present && BSON_ITER_HOLDS_UTF8(&it) &&
        strcmp(bson_iter_utf8(&it, NULL), auth->audience) == 0) {
        return true;
    }
    if (present && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &item)) {
        while (bson_iter_next(&item)) {
            if (BSON_ITER_HOLDS_UTF8(&item) &&
                strcmp(bson_iter_utf8(&item, NULL), auth->audience) == 0) {
                return true;
            }
        }
    }
    cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "the token is not for audience \"%s\"",
                      auth->audience);
    return false;
}

static bool check_claims(const cc_auth_t *auth, const bson_t *claims, int64_t now_s, int64_t *exp,
                         bson_error_t *error)
{
    bool has_exp, has_nbf;
    int64_t nbf = 0;
    if (!numeric_date(claims, "exp", false, &has_exp, exp, error) ||
        !numeric_date(claims, "nbf", true, &has_nbf, &nbf, error)) {
        return false;
    }
    if (!has_exp) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID,
                          "the token has no \"exp\": changecast takes only tokens that expire");
        return false;
    }
    /* RFC 7519 section 4.1.4: valid only while now is before exp. */
    if (now_s - auth->leeway_s >= *exp) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_EXPIRED, "the token expired at %lld",
                          (long long)*exp);
        return false;
    }
    if (has_nbf && now_s + auth->leeway_s < nbf) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_NOT_YET_VALID, "the token is valid from %lld",
                          (long long)nbf);
        return false;
    }
    bson_iter_t it;
    if (auth->issuer && !(bson_iter_init_find(&it, claims, "iss") && BSON_ITER_HOLDS_UTF8(&it) &&
                          strcmp(bson_iter_utf8(&it, NULL), auth->issuer) == 0)) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "the token is not from issuer \"%s\"",
                          auth->issuer);
        return false;
    }
    return check_audience(auth, claims, error);
}

static cc_grant_t *grant_from_claims(const bson_t *claims, int64_t exp, bson_error_t *error)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, claims, "changecast")) {
        cc_auth_set_error(error, CC_AUTH_CLAIM_MISSING,
                          "the token has no \"changecast\" claim: it grants nothing here");
        return NULL;
    }
    uint32_t len;
    const uint8_t *data;
    bson_t claim;
    if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
        cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID, "\"changecast\" must be an object");
        return NULL;
    }
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&claim, data, len)) {
        cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID, "\"changecast\" must be an object");
        return NULL;
    }
    cc_grant_t *grant = cc_grant_from_claim(&claim, exp, error);
    if (grant && bson_iter_init_find(&it, claims, "sub") && BSON_ITER_HOLDS_UTF8(&it)) {
        grant->subject = bson_strdup(bson_iter_utf8(&it, NULL));
    }
    return grant;
}

bool cc_auth_verify(const cc_auth_t *auth, const char *token, int64_t now_s, cc_grant_t **out,
                    bson_error_t *error)
{
    *out = NULL;
    if (auth->mode == CC_AUTH_MODE_NONE) {
        *out = cc_grant_anonymous();
        return true;
    }
    if (!token || !*token) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_MISSING, "a token is required");
        return false;
    }
    if (strlen(token) > CC_AUTH_MAX_TOKEN_BYTES) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "the token is longer than %d bytes",
                          CC_AUTH_MAX_TOKEN_BYTES);
        return false;
    }
    bson_t header;
    if (!read_header(token, &header, error)) {
        return false;
    }
    const cc_auth_key_t *key = choose_key(auth, &header, error);
    bson_destroy(&header);
    if (!key) {
        return false;
    }
    /* libjwt parses the header again; its algorithm must still be the key's. */
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, key->material, (int)key->len) != 0 || !jwt ||
        jwt_get_alg(jwt) != key->alg) {
        jwt_free(jwt);
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "the token's signature does not verify");
        return false;
    }
    char *json = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    bson_t claims;
    bson_error_t parse_error;
    bool parsed = json && cc_filter_parse_json(json, strlen(json), &claims, &parse_error);
    if (json) {
        free(json); /* allocated by jansson through libjwt */
        if (!parsed) {
            bson_destroy(&claims);
        }
    }
    if (!parsed) {
        cc_auth_set_error(error, CC_AUTH_TOKEN_INVALID, "the token's claims are not readable");
        return false;
    }
    int64_t exp = 0;
    if (check_claims(auth, &claims, now_s, &exp, error)) {
        *out = grant_from_claims(&claims, exp, error);
    }
    bson_destroy(&claims);
    return *out != NULL;
}
