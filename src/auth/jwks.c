/* SPDX-License-Identifier: Apache-2.0 */
/* auth/jwks: a JWK Set file (RFC 7517) to verification keys. RSA keys are built from n and e,
 * EC keys from crv/x/y (P-256 only), with OpenSSL 3's EVP_PKEY_fromdata, checked with
 * EVP_PKEY_public_check, and kept as PEM for libjwt. Keys that are not for us (another kty,
 * `use` other than "sig", an `alg` other than RS256/ES256) are skipped, since identity providers
 * publish those beside signing keys; a malformed key of a kind we take is an error, so a typo
 * in the file is never silently ignored. Symmetric ("oct") keys are not taken from a JWKS: an
 * HMAC secret belongs in its own file. Calls OpenSSL and keys.c. */
#include "auth_internal.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <string.h>

enum { P256_COORD_BYTES = 32 };

static const char *member_utf8(const bson_t *jwk, const char *name)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, jwk, name) && BSON_ITER_HOLDS_UTF8(&it)) {
        return bson_iter_utf8(&it, NULL);
    }
    return NULL;
}

/* A base64url member decoded, or an error naming it. */
static bool member_bytes(const bson_t *jwk, const char *name, const char *where, uint8_t **out,
                         size_t *len, bson_error_t *error)
{
    const char *text = member_utf8(jwk, name);
    if (!text || !cc_b64url_decode(text, strlen(text), out, len) || *len == 0) {
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: \"%s\" missing or not base64url", where,
                          name);
        return false;
    }
    return true;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1) {
        EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!check || EVP_PKEY_public_check(check) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(check);
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    ERR_clear_error();
    return pkey;
}

static EVP_PKEY *rsa_from_jwk(const bson_t *jwk, const char *where, bson_error_t *error)
{
    uint8_t *n_bytes = NULL, *e_bytes = NULL;
    size_t n_len, e_len;
    if (!member_bytes(jwk, "n", where, &n_bytes, &n_len, error) ||
        !member_bytes(jwk, "e", where, &e_bytes, &e_len, error)) {
        bson_free(n_bytes);
        return NULL;
    }
    BIGNUM *n = BN_bin2bn(n_bytes, (int)n_len, NULL);
    BIGNUM *e = BN_bin2bn(e_bytes, (int)e_len, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)) {
        pkey = pkey_from_params("RSA", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    bson_free(n_bytes);
    bson_free(e_bytes);
    if (!pkey) {
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: n/e do not make an RSA public key", where);
    }
    return pkey;
}

static EVP_PKEY *ec_from_jwk(const bson_t *jwk, const char *where, bson_error_t *error)
{
    const char *crv = member_utf8(jwk, "crv");
    if (!crv || strcmp(crv, "P-256") != 0) {
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: crv \"%s\": only P-256 (ES256) is taken",
                          where, crv ? crv : "");
        return NULL;
    }
    uint8_t *x = NULL, *y = NULL;
    size_t x_len, y_len;
    if (!member_bytes(jwk, "x", where, &x, &x_len, error) ||
        !member_bytes(jwk, "y", where, &y, &y_len, error)) {
        bson_free(x);
        return NULL;
    }
    EVP_PKEY *pkey = NULL;
    /* RFC 7518 section 6.2.1.2: x and y are the full coordinate length, 32 bytes for P-256. */
    if (x_len == P256_COORD_BYTES && y_len == P256_COORD_BYTES) {
        unsigned char point[1 + 2 * P256_COORD_BYTES];
        point[0] = 0x04; /* uncompressed point, SEC 1 section 2.3.3 */
        memcpy(point + 1, x, P256_COORD_BYTES);
        memcpy(point + 1 + P256_COORD_BYTES, y, P256_COORD_BYTES);
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        if (bld &&
            OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point)) {
            pkey = pkey_from_params("EC", bld);
        }
        OSSL_PARAM_BLD_free(bld);
    }
    bson_free(x);
    bson_free(y);
    if (!pkey) {
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: x/y are not a point on P-256", where);
    }
    return pkey;
}

/* One key. Returns false on error; *taken false when the key is skipped. */
static bool add_jwk(const bson_t *jwk, const char *where, cc_auth_keyset_t *keys, bool *taken,
                    bson_error_t *error)
{
    *taken = false;
    const char *kty = member_utf8(jwk, "kty");
    const char *use = member_utf8(jwk, "use");
    const char *alg = member_utf8(jwk, "alg");
    bson_iter_t it;
    if (!kty) {
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: no \"kty\"", where);
        return false;
    }
    if (bson_iter_init_find(&it, jwk, "kid") && !BSON_ITER_HOLDS_UTF8(&it)) {
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: \"kid\" must be a string", where);
        return false;
    }
    bool rsa = strcmp(kty, "RSA") == 0, ec = strcmp(kty, "EC") == 0;
    if ((!rsa && !ec) || (use && strcmp(use, "sig") != 0) ||
        (alg && strcmp(alg, rsa ? "RS256" : "ES256") != 0)) {
        return true;
    }
    EVP_PKEY *pkey = rsa ? rsa_from_jwk(jwk, where, error) : ec_from_jwk(jwk, where, error);
    if (!pkey) {
        return false;
    }
    cc_auth_key_t key = {0};
    bool ok = cc_auth_key_from_pkey(pkey, where, &key, error);
    EVP_PKEY_free(pkey);
    if (!ok) {
        return false;
    }
    const char *kid = member_utf8(jwk, "kid");
    for (size_t i = 0; i < keys->count; i++) {
        const char *other = keys->keys[i].kid;
        if ((!kid && !other) || (kid && other && strcmp(kid, other) == 0)) {
            bson_free(key.material);
            cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: kid \"%s\" appears twice", where,
                              kid ? kid : "(none)");
            return false;
        }
    }
    key.kid = kid ? bson_strdup(kid) : NULL;
    keys->keys = bson_realloc(keys->keys, (keys->count + 1) * sizeof *keys->keys);
    keys->keys[keys->count++] = key;
    *taken = true;
    return true;
}

bool cc_auth_jwks_parse(const char *json, size_t len, const char *origin, cc_auth_keyset_t *out,
                        bson_error_t *error)
{
    bson_t doc;
    bson_error_t parse_error;
    if (!bson_init_from_json(&doc, json, (ssize_t)len, &parse_error)) {
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: not JSON: %s", origin, parse_error.message);
        return false;
    }
    bson_iter_t keys_iter, it;
    if (!bson_iter_init_find(&keys_iter, &doc, "keys") || !BSON_ITER_HOLDS_ARRAY(&keys_iter) ||
        !bson_iter_recurse(&keys_iter, &it)) {
        bson_destroy(&doc);
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: a JWK Set needs a \"keys\" array", origin);
        return false;
    }
    size_t seen = 0, taken_count = 0;
    bool ok = true;
    while (ok && bson_iter_next(&it)) {
        char where[512];
        snprintf(where, sizeof where, "%s: keys[%zu]", origin, seen++);
        uint32_t jwk_len;
        const uint8_t *jwk_data;
        bson_t jwk;
        if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
            cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: not an object", where);
            ok = false;
            break;
        }
        bson_iter_document(&it, &jwk_len, &jwk_data);
        bool taken = false;
        if (!bson_init_static(&jwk, jwk_data, jwk_len)) {
            cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: not an object", where);
            ok = false;
            break;
        }
        ok = add_jwk(&jwk, where, out, &taken, error);
        taken_count += taken;
    }
    bson_destroy(&doc);
    if (ok && taken_count == 0) {
        cc_auth_set_error(error, CC_AUTH_CONFIG,
                          "%s: none of its %zu keys is an RS256 or ES256 signing key", origin,
                          seen);
        ok = false;
    }
    return ok;
}
