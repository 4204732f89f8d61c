/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/auth: token verification (HS256, RS256, ES256, JWKS by kid) and every way
 * a token must be refused, claims parsed into grants, row decisions and field projection on
 * documents and change events, the combined filter evaluated with the real matcher, the HTTP
 * helpers, key reloading and the `changecast token` minter. Keys are generated at test time
 * with OpenSSL, and tokens are signed here with OpenSSL directly (not with libjwt), so the
 * verifier is checked against an independent signer and tokens can be forged at will. JSON in
 * the tables uses single quotes for readability. */
#include "changecast/auth.h"
#include "changecast/filter.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOW ((int64_t)1700000000)
#define SECRET "0123456789abcdef0123456789abcdef-test-secret"

typedef enum { SIGN_NONE, SIGN_HS256, SIGN_HS384, SIGN_RS256, SIGN_ES256 } sign_t;

static struct {
    char dir[64];
    char secret[128], rsa_pub[128], ec_pub[128], rsa_priv[128], jwks[128], scratch[128];
    EVP_PKEY *rsa, *ec, *rsa_other;
    char *rsa_pub_pem;
    size_t rsa_pub_pem_len;
} F;

/* ---- helpers: files, JSON, base64url, signing ---- */

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    *len = fread(buf, 1, 65535, f);
    fclose(f);
    return buf;
}

/* 'single' quotes to "double" quotes. */
static char *dq(const char *s)
{
    char *out = bson_strdup(s);
    for (char *p = out; *p; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }
    return out;
}

static bson_t *J(const char *single_quoted)
{
    char *json = dq(single_quoted);
    bson_t parsed;
    bson_error_t error;
    if (!cc_filter_parse_json(json, strlen(json), &parsed, &error)) {
        fail_msg("bad test JSON %s: %s", json, error.message);
    }
    bson_free(json);
    bson_t *b = bson_copy(&parsed);
    bson_destroy(&parsed);
    return b;
}

static void assert_bson_eq(const bson_t *actual, const char *expected_single_quoted)
{
    bson_t *expected = J(expected_single_quoted);
    if (!bson_equal(actual, expected)) {
        char *a = bson_as_relaxed_extended_json(actual, NULL);
        char *e = bson_as_relaxed_extended_json(expected, NULL);
        print_error("actual:   %s\nexpected: %s\n", a, e);
        bson_free(a);
        bson_free(e);
        bson_destroy(expected);
        fail();
    }
    bson_destroy(expected);
}

static char *b64url(const unsigned char *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = bson_malloc(len * 4 / 3 + 4), *o = out;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)data[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= data[i + 2];
        }
        *o++ = alphabet[(v >> 18) & 63];
        *o++ = alphabet[(v >> 12) & 63];
        if (i + 1 < len) {
            *o++ = alphabet[(v >> 6) & 63];
        }
        if (i + 2 < len) {
            *o++ = alphabet[v & 63];
        }
    }
    *o = '\0';
    return out;
}

static char *b64url_str(const char *s)
{
    return b64url((const unsigned char *)s, strlen(s));
}

/* RFC 7515 signing input signed with OpenSSL; ES256 signatures converted from DER to the fixed
 * R||S form of RFC 7518 section 3.4. */
static char *sign_raw(const char *header_sq, const char *payload_sq, sign_t how, EVP_PKEY *pkey,
                      const char *secret)
{
    char *header = dq(header_sq), *payload = dq(payload_sq);
    char *h64 = b64url_str(header), *p64 = b64url_str(payload);
    char *input = bson_strdup_printf("%s.%s", h64, p64);
    unsigned char sig[512];
    size_t sig_len = 0;
    if (how == SIGN_HS256 || how == SIGN_HS384) {
        unsigned int n = 0;
        assert_non_null(HMAC(how == SIGN_HS256 ? EVP_sha256() : EVP_sha384(), secret,
                             (int)strlen(secret), (const unsigned char *)input, strlen(input), sig,
                             &n));
        sig_len = n;
    } else if (how == SIGN_RS256 || how == SIGN_ES256) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char der[512];
        size_t der_len = sizeof der;
        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
        assert_int_equal(
            EVP_DigestSign(md, der, &der_len, (const unsigned char *)input, strlen(input)), 1);
        EVP_MD_CTX_free(md);
        if (how == SIGN_RS256) {
            memcpy(sig, der, der_len);
            sig_len = der_len;
        } else {
            const unsigned char *p = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
            assert_non_null(es);
            const BIGNUM *r, *s;
            ECDSA_SIG_get0(es, &r, &s);
            BN_bn2binpad(r, sig, 32);
            BN_bn2binpad(s, sig + 32, 32);
            sig_len = 64;
            ECDSA_SIG_free(es);
        }
    }
    char *s64 = b64url(sig, sig_len);
    char *token = bson_strdup_printf("%s.%s", input, s64);
    bson_free(header);
    bson_free(payload);
    bson_free(h64);
    bson_free(p64);
    bson_free(input);
    bson_free(s64);
    return token;
}

static const char *alg_name(sign_t how)
{
    const char *names[] = {"none", "HS256", "HS384", "RS256", "ES256"};
    return names[how];
}

/* A token with the given claims (single-quoted JSON object body, without braces). */
static char *token_kid(sign_t how, const char *kid, const char *claims_body)
{
    char *header =
        kid ? bson_strdup_printf("{'alg':'%s','typ':'JWT','kid':'%s'}", alg_name(how), kid)
            : bson_strdup_printf("{'alg':'%s','typ':'JWT'}", alg_name(how));
    char *payload = bson_strdup_printf("{%s}", claims_body);
    EVP_PKEY *key = how == SIGN_RS256 ? F.rsa : how == SIGN_ES256 ? F.ec : NULL;
    char *token = sign_raw(header, payload, how, key, SECRET);
    bson_free(header);
    bson_free(payload);
    return token;
}

static char *token(sign_t how, const char *claims_body)
{
    return token_kid(how, NULL, claims_body);
}

#define ORDERS_CLAIM "'changecast':{'ns':{'shop.orders':{}}}"
#define VALID "'exp':1700003600," ORDERS_CLAIM

static cc_auth_t *auth_with(const char *secret, const char *pub, const char *jwks)
{
    cc_auth_options_t options;
    cc_auth_options_init(&options);
    options.secret_file = secret;
    options.public_key_file = pub;
    options.jwks_file = jwks;
    bson_error_t error;
    cc_auth_t *auth = cc_auth_new(&options, &error);
    if (!auth) {
        fail_msg("cc_auth_new: %s", error.message);
    }
    return auth;
}

/* Verifies and returns the code; the grant goes to *grant when asked for. */
static cc_auth_code_t verify(const cc_auth_t *auth, const char *tok, int64_t now,
                             cc_grant_t **grant)
{
    cc_grant_t *g = NULL;
    bson_error_t error;
    bool ok = cc_auth_verify(auth, tok, now, &g, &error);
    if (ok) {
        assert_non_null(g);
        if (grant) {
            *grant = g;
        } else {
            cc_grant_destroy(g);
        }
        return CC_AUTH_OK;
    }
    assert_null(g);
    assert_int_equal(error.domain, CC_AUTH_ERROR_DOMAIN);
    assert_true(strlen(error.message) > 0);
    return (cc_auth_code_t)error.code;
}

static void expect_code(const cc_auth_t *auth, const char *tok, cc_auth_code_t expected)
{
    cc_auth_code_t got = verify(auth, tok, NOW, NULL);
    if (got != expected) {
        fail_msg("token %.60s...: got %s, expected %s", tok, cc_auth_code_name(got),
                 cc_auth_code_name(expected));
    }
}

static char *public_pem(EVP_PKEY *pkey, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *copy = bson_strndup(data, (size_t)n);
    *len = (size_t)n;
    BIO_free(bio);
    return copy;
}

static char *bn_param_b64(EVP_PKEY *pkey, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
    unsigned char buf[1024];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64url(buf, (size_t)n);
}

static char *jwk_rsa(EVP_PKEY *pkey, const char *kid)
{
    char *n = bn_param_b64(pkey, OSSL_PKEY_PARAM_RSA_N, 0);
    char *e = bn_param_b64(pkey, OSSL_PKEY_PARAM_RSA_E, 0);
    char *jwk = bson_strdup_printf("{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"alg\":"
                                   "\"RS256\",\"n\":\"%s\",\"e\":\"%s\"}",
                                   kid, n, e);
    bson_free(n);
    bson_free(e);
    return jwk;
}

static char *jwk_ec(EVP_PKEY *pkey, const char *kid)
{
    char *x = bn_param_b64(pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    char *y = bn_param_b64(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    char *jwk = bson_strdup_printf(
        "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", kid, x, y);
    bson_free(x);
    bson_free(y);
    return jwk;
}

static int group_setup(void **state)
{
    (void)state;
    strcpy(F.dir, "/tmp/test_auth.XXXXXX");
    if (!mkdtemp(F.dir)) {
        return -1;
    }
    snprintf(F.secret, sizeof F.secret, "%s/secret", F.dir);
    snprintf(F.rsa_pub, sizeof F.rsa_pub, "%s/rsa.pub.pem", F.dir);
    snprintf(F.ec_pub, sizeof F.ec_pub, "%s/ec.pub.pem", F.dir);
    snprintf(F.rsa_priv, sizeof F.rsa_priv, "%s/rsa.key.pem", F.dir);
    snprintf(F.jwks, sizeof F.jwks, "%s/jwks.json", F.dir);
    snprintf(F.scratch, sizeof F.scratch, "%s/scratch", F.dir);
    write_file(F.secret, SECRET "\n", strlen(SECRET) + 1);
    F.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    F.rsa_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    F.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!F.rsa || !F.rsa_other || !F.ec) {
        return -1;
    }
    F.rsa_pub_pem = public_pem(F.rsa, &F.rsa_pub_pem_len);
    write_file(F.rsa_pub, F.rsa_pub_pem, F.rsa_pub_pem_len);
    size_t len;
    char *pem = public_pem(F.ec, &len);
    write_file(F.ec_pub, pem, len);
    bson_free(pem);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, F.rsa, NULL, NULL, 0, NULL, NULL);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    write_file(F.rsa_priv, data, (size_t)n);
    BIO_free(bio);
    /* A JWK Set as identity providers publish it: signing keys, an encryption key and a
     * symmetric key that must be skipped. */
    char *r1 = jwk_rsa(F.rsa, "r1"), *r2 = jwk_rsa(F.rsa_other, "r2"), *e1 = jwk_ec(F.ec, "e1");
    char *enc = jwk_rsa(F.rsa_other, "enc1");
    enc[strlen(enc) - 1] = '\0';
    char *jwks = bson_strdup_printf(
        "{\"keys\":[%s,%s,%s,%s,\"use\":\"enc\"},{\"kty\":\"oct\",\"kid\":\"o1\",\"k\":\"AAAA\"}]}",
        r1, r2, e1, enc);
    write_file(F.jwks, jwks, strlen(jwks));
    bson_free(r1);
    bson_free(r2);
    bson_free(e1);
    bson_free(enc);
    bson_free(jwks);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    const char *files[] = {F.secret, F.rsa_pub, F.ec_pub, F.rsa_priv, F.jwks, F.scratch};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        unlink(files[i]);
    }
    rmdir(F.dir);
    EVP_PKEY_free(F.rsa);
    EVP_PKEY_free(F.rsa_other);
    EVP_PKEY_free(F.ec);
    bson_free(F.rsa_pub_pem);
    return 0;
}

/* ---- verification ---- */

static void test_verify_accepts_hs256_and_reads_the_grant(void **state)
{
    (void)state;
    cc_auth_t *auth = auth_with(F.secret, NULL, NULL);
    char *tok = token(SIGN_HS256, "'sub':'alice','exp':1700003600,'changecast':{'ns':{'shop."
                                  "orders':{'filter':{'customerId':'c42'},'fields':['status']}}}");
    cc_grant_t *grant = NULL;
    assert_int_equal(verify(auth, tok, NOW, &grant), CC_AUTH_OK);
    assert_int_equal(cc_grant_expires_at(grant), 1700003600);
    assert_string_equal(cc_grant_subject(grant), "alice");
    const cc_scope_t *scope = cc_grant_scope(grant, "shop", "orders");
    assert_non_null(scope);
    assert_bson_eq(cc_scope_row_filter(scope), "{'customerId':'c42'}");
    assert_true(cc_scope_has_fields(scope));
    cc_grant_destroy(grant);
    bson_free(tok);
    cc_auth_destroy(auth);
}

static void test_verify_accepts_rs256_and_es256_from_pem_keys(void **state)
{
    (void)state;
    cc_auth_t *rsa = auth_with(NULL, F.rsa_pub, NULL);
    cc_auth_t *ec = auth_with(NULL, F.ec_pub, NULL);
    char *rs = token(SIGN_RS256, VALID), *es = token(SIGN_ES256, VALID);
    expect_code(rsa, rs, CC_AUTH_OK);
    expect_code(ec, es, CC_AUTH_OK);
    /* Each key verifies its own algorithm only. */
    expect_code(rsa, es, CC_AUTH_TOKEN_INVALID);
    expect_code(ec, rs, CC_AUTH_TOKEN_INVALID);
    bson_free(rs);
    bson_free(es);
    cc_auth_destroy(rsa);
    cc_auth_destroy(ec);
}

static void test_verify_selects_jwks_keys_by_kid(void **state)
{
    (void)state;
    cc_auth_t *auth = auth_with(NULL, NULL, F.jwks);
    char *r1 = token_kid(SIGN_RS256, "r1", VALID), *e1 = token_kid(SIGN_ES256, "e1", VALID);
    expect_code(auth, r1, CC_AUTH_OK);
    expect_code(auth, e1, CC_AUTH_OK);
    /* Signed by F.rsa but naming the other RSA key: the signature does not verify. */
    char *wrong_kid = token_kid(SIGN_RS256, "r2", VALID);
    expect_code(auth, wrong_kid, CC_AUTH_TOKEN_INVALID);
    /* The EC key's kid with an RS256 header: the key decides the algorithm. */
    char *alg_mismatch = token_kid(SIGN_RS256, "e1", VALID);
    expect_code(auth, alg_mismatch, CC_AUTH_TOKEN_INVALID);
    char *unknown = token_kid(SIGN_RS256, "nope", VALID);
    expect_code(auth, unknown, CC_AUTH_TOKEN_INVALID);
    /* Skipped keys (use: enc, kty: oct) cannot be chosen. */
    char *enc = token_kid(SIGN_RS256, "enc1", VALID), *oct = token_kid(SIGN_HS256, "o1", VALID);
    expect_code(auth, enc, CC_AUTH_TOKEN_INVALID);
    expect_code(auth, oct, CC_AUTH_TOKEN_INVALID);
    char *no_kid = token(SIGN_RS256, VALID);
    expect_code(auth, no_kid, CC_AUTH_TOKEN_INVALID);
    bson_free(r1);
    bson_free(e1);
    bson_free(wrong_kid);
    bson_free(alg_mismatch);
    bson_free(unknown);
    bson_free(enc);
    bson_free(oct);
    bson_free(no_kid);
    cc_auth_destroy(auth);
}

static void test_verify_refuses_forged_signatures(void **state)
{
    (void)state;
    cc_auth_t *hs = auth_with(F.secret, NULL, NULL), *rs = auth_with(NULL, F.rsa_pub, NULL);
    char *good_hs = token(SIGN_HS256, VALID), *good_rs = token(SIGN_RS256, VALID);
    /* Same signature, payload widened to another namespace. */
    char *widened = token(SIGN_HS256, "'exp':1700003600,'changecast':{'ns':{'shop.*':{}}}");
    /* Payload swapped in: header.payload(widened).signature(good) */
    char *h_end = strchr(good_hs, '.'), *p_end = strrchr(good_hs, '.');
    char *w_p = strchr(widened, '.'), *w_s = strrchr(widened, '.');
    char *swapped = bson_strdup_printf("%.*s%.*s%s", (int)(h_end - good_hs), good_hs,
                                       (int)(w_s - w_p), w_p, p_end);
    expect_code(hs, good_hs, CC_AUTH_OK);
    expect_code(hs, swapped, CC_AUTH_TOKEN_INVALID);
    /* A signature by another secret, and by another RSA key. */
    char *other = sign_raw("{'alg':'HS256'}", "{" VALID "}", SIGN_HS256, NULL,
                           "another-secret-another-secret-xx");
    char *other_rs = sign_raw("{'alg':'RS256'}", "{" VALID "}", SIGN_RS256, F.rsa_other, NULL);
    expect_code(hs, other, CC_AUTH_TOKEN_INVALID);
    expect_code(rs, good_rs, CC_AUTH_OK);
    expect_code(rs, other_rs, CC_AUTH_TOKEN_INVALID);
    /* One signature character changed. */
    char *flipped = bson_strdup(good_rs);
    char *last = flipped + strlen(flipped) - 5;
    *last = *last == 'A' ? 'B' : 'A';
    expect_code(rs, flipped, CC_AUTH_TOKEN_INVALID);
    /* Malformed compact forms. */
    const char *malformed[] = {"abc", "a.b", "a.b.c.d", "..", "e30.e30.", "!!.e30.AAAA"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        expect_code(hs, malformed[i], CC_AUTH_TOKEN_INVALID);
    }
    expect_code(hs, "", CC_AUTH_TOKEN_MISSING);
    expect_code(hs, NULL, CC_AUTH_TOKEN_MISSING);
    bson_free(good_hs);
    bson_free(good_rs);
    bson_free(widened);
    bson_free(swapped);
    bson_free(other);
    bson_free(other_rs);
    bson_free(flipped);
    cc_auth_destroy(hs);
    cc_auth_destroy(rs);
}

static void test_verify_refuses_alg_none(void **state)
{
    (void)state;
    cc_auth_t *hs = auth_with(F.secret, NULL, NULL), *rs = auth_with(NULL, F.rsa_pub, NULL);
    char *none = sign_raw("{'alg':'none','typ':'JWT'}", "{" VALID "}", SIGN_NONE, NULL, NULL);
    char *none_sig = bson_strdup_printf("%sAAAA", none);
    char *none_upper = sign_raw("{'alg':'NONE'}", "{" VALID "}", SIGN_NONE, NULL, NULL);
    expect_code(hs, none, CC_AUTH_TOKEN_INVALID);
    expect_code(rs, none, CC_AUTH_TOKEN_INVALID);
    expect_code(hs, none_sig, CC_AUTH_TOKEN_INVALID);
    expect_code(rs, none_upper, CC_AUTH_TOKEN_INVALID);
    bson_free(none);
    bson_free(none_sig);
    bson_free(none_upper);
    cc_auth_destroy(hs);
    cc_auth_destroy(rs);
}

static void test_verify_refuses_hs256_signed_with_the_public_key(void **state)
{
    (void)state;
    cc_auth_t *rs = auth_with(NULL, F.rsa_pub, NULL);
    /* The classic confusion: the attacker HMACs with the PEM bytes of the public key, which a
     * naive verifier would pass to HMAC as the secret. The key file holds F.rsa_pub_pem. */
    char *confused =
        sign_raw("{'alg':'HS256','typ':'JWT'}", "{" VALID "}", SIGN_HS256, NULL, F.rsa_pub_pem);
    jwt_t *jwt = NULL;
    assert_int_equal(
        jwt_decode(&jwt, confused, (const unsigned char *)F.rsa_pub_pem, (int)F.rsa_pub_pem_len),
        0); /* libjwt alone falls for it */
    jwt_free(jwt);
    expect_code(rs, confused, CC_AUTH_TOKEN_INVALID);
    /* The same with a second "alg": JSON parsers differ on which of two keys wins. */
    char *twice =
        sign_raw("{'alg':'RS256','alg':'HS256'}", "{" VALID "}", SIGN_HS256, NULL, F.rsa_pub_pem);
    char *twice_rev =
        sign_raw("{'alg':'HS256','alg':'RS256'}", "{" VALID "}", SIGN_HS256, NULL, F.rsa_pub_pem);
    expect_code(rs, twice, CC_AUTH_TOKEN_INVALID);
    expect_code(rs, twice_rev, CC_AUTH_TOKEN_INVALID);
    bson_free(twice);
    bson_free(twice_rev);
    bson_free(confused);
    cc_auth_destroy(rs);
}

static void test_verify_refuses_the_wrong_algorithm(void **state)
{
    (void)state;
    cc_auth_t *hs = auth_with(F.secret, NULL, NULL);
    char *hs384 = token(SIGN_HS384, VALID), *rs = token(SIGN_RS256, VALID);
    expect_code(hs, hs384, CC_AUTH_TOKEN_INVALID);
    expect_code(hs, rs, CC_AUTH_TOKEN_INVALID);
    char *no_alg = sign_raw("{'typ':'JWT'}", "{" VALID "}", SIGN_HS256, NULL, SECRET);
    char *crit = sign_raw("{'alg':'HS256','crit':['b64'],'b64':false}", "{" VALID "}", SIGN_HS256,
                          NULL, SECRET);
    expect_code(hs, no_alg, CC_AUTH_TOKEN_INVALID);
    expect_code(hs, crit, CC_AUTH_TOKEN_INVALID);
    bson_free(hs384);
    bson_free(rs);
    bson_free(no_alg);
    bson_free(crit);
    cc_auth_destroy(hs);
}

static void test_verify_checks_exp_and_nbf_with_leeway(void **state)
{
    (void)state;
    cc_auth_t *auth = auth_with(F.secret, NULL, NULL); /* leeway 30 s */
    const struct {
        const char *times;
        int64_t now;
        cc_auth_code_t code;
    } table[] = {
        {"'exp':1700000100", NOW, CC_AUTH_OK},
        {"'exp':1699999900", NOW, CC_AUTH_TOKEN_EXPIRED},
        {"'exp':1699999980", NOW, CC_AUTH_OK},            /* 20 s late, within leeway */
        {"'exp':1699999970", NOW, CC_AUTH_TOKEN_EXPIRED}, /* exactly the leeway: expired */
        {"'exp':1699999971.5", NOW, CC_AUTH_OK},
        {"'exp':1699999970.5", NOW, CC_AUTH_TOKEN_EXPIRED}, /* fractions round towards refusal */
        {"'exp':1700000100,'nbf':1700000020", NOW, CC_AUTH_OK},
        {"'exp':1700000100,'nbf':1700000030", NOW, CC_AUTH_OK},
        {"'exp':1700000100,'nbf':1700000031", NOW, CC_AUTH_TOKEN_NOT_YET_VALID},
        {"'exp':1700000100,'nbf':1700000030.2", NOW, CC_AUTH_TOKEN_NOT_YET_VALID},
        {"'exp':1700000100,'nbf':1700000050", NOW + 20, CC_AUTH_OK},
        {"'exp':'tomorrow'", NOW, CC_AUTH_TOKEN_INVALID},
        {"'exp':1700000100,'nbf':true", NOW, CC_AUTH_TOKEN_INVALID},
        {"'iat':1700000000", NOW, CC_AUTH_TOKEN_INVALID}, /* no exp */
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char *claims = bson_strdup_printf("%s," ORDERS_CLAIM, table[i].times);
        char *tok = token(SIGN_HS256, claims);
        cc_auth_code_t got = verify(auth, tok, table[i].now, NULL);
        if (got != table[i].code) {
            fail_msg("%s at %lld: got %s, expected %s", table[i].times, (long long)table[i].now,
                     cc_auth_code_name(got), cc_auth_code_name(table[i].code));
        }
        bson_free(claims);
        bson_free(tok);
    }
    assert_int_equal(cc_auth_code_http_status(CC_AUTH_TOKEN_EXPIRED), 401);
    assert_string_equal(cc_auth_code_name(CC_AUTH_TOKEN_NOT_YET_VALID), "token_not_yet_valid");
    cc_auth_destroy(auth);
}

static void test_verify_checks_issuer_and_audience(void **state)
{
    (void)state;
    cc_auth_options_t options;
    cc_auth_options_init(&options);
    options.secret_file = F.secret;
    options.issuer = "https://id.example";
    options.audience = "changecast";
    bson_error_t error;
    cc_auth_t *auth = cc_auth_new(&options, &error);
    assert_non_null(auth);
    cc_auth_t *no_aud = auth_with(F.secret, NULL, NULL);
    const struct {
        const char *claims;
        cc_auth_code_t code;
        cc_auth_code_t code_without_iss_aud;
    } table[] = {
        {"'iss':'https://id.example','aud':'changecast'", CC_AUTH_OK, CC_AUTH_TOKEN_INVALID},
        {"'iss':'https://id.example','aud':['other','changecast']", CC_AUTH_OK,
         CC_AUTH_TOKEN_INVALID},
        {"'iss':'https://id.example','aud':['other']", CC_AUTH_TOKEN_INVALID,
         CC_AUTH_TOKEN_INVALID},
        {"'iss':'https://id.example','aud':'changecast2'", CC_AUTH_TOKEN_INVALID,
         CC_AUTH_TOKEN_INVALID},
        {"'iss':'https://id.example'", CC_AUTH_TOKEN_INVALID, CC_AUTH_OK},
        {"'iss':'https://evil.example','aud':'changecast'", CC_AUTH_TOKEN_INVALID,
         CC_AUTH_TOKEN_INVALID},
        {"'aud':'changecast'", CC_AUTH_TOKEN_INVALID, CC_AUTH_TOKEN_INVALID},
        {"'iss':1,'aud':'changecast'", CC_AUTH_TOKEN_INVALID, CC_AUTH_TOKEN_INVALID},
        {"'iss':'https://evil.example'", CC_AUTH_TOKEN_INVALID, CC_AUTH_OK},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char *claims = bson_strdup_printf("%s," VALID, table[i].claims);
        char *tok = token(SIGN_HS256, claims);
        cc_auth_code_t got = verify(auth, tok, NOW, NULL);
        cc_auth_code_t got_plain = verify(no_aud, tok, NOW, NULL);
        if (got != table[i].code || got_plain != table[i].code_without_iss_aud) {
            fail_msg("%s: got %s/%s", table[i].claims, cc_auth_code_name(got),
                     cc_auth_code_name(got_plain));
        }
        bson_free(claims);
        bson_free(tok);
    }
    cc_auth_destroy(auth);
    cc_auth_destroy(no_aud);
}

static void test_verify_reports_missing_and_malformed_claims(void **state)
{
    (void)state;
    cc_auth_t *auth = auth_with(F.secret, NULL, NULL);
    char *missing = token(SIGN_HS256, "'exp':1700003600,'sub':'bob'");
    expect_code(auth, missing, CC_AUTH_CLAIM_MISSING);
    assert_int_equal(cc_auth_code_http_status(CC_AUTH_CLAIM_MISSING), 403);
    bson_free(missing);
    const char *bad[] = {
        "'changecast':'shop.orders'",
        "'changecast':{}",
        "'changecast':{'ns':['shop.orders']}",
        "'changecast':{'ns':{'shop':{}}}",
        "'changecast':{'ns':{'shop.or$ders':{}}}",
        "'changecast':{'ns':{'shop.orders':true}}",
        "'changecast':{'ns':{'shop.orders':{}},'admin':true}",
        "'changecast':{'ns':{'shop.orders':{'filtr':{}}}}",
        "'changecast':{'ns':{'shop.orders':{'filter':[]}}}",
        "'changecast':{'ns':{'shop.orders':{'filter':{'$where':'1'}}}}",
        "'changecast':{'ns':{'shop.orders':{'filter':{'a':{'$bogus':1}}}}}",
        "'changecast':{'ns':{'shop.orders':{'fields':'status'}}}",
        "'changecast':{'ns':{'shop.orders':{'fields':['']}}}",
        "'changecast':{'ns':{'shop.orders':{'fields':['a..b']}}}",
        "'changecast':{'ns':{'shop.orders':{'fields':['a.']}}}",
        "'changecast':{'ns':{'shop.orders':{'fields':['$where']}}}",
        "'changecast':{'ns':{'shop.orders':{'fields':[1]}}}",
        "'changecast':{'ns':{'shop.orders':{},' shop.orders':{}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *claims = bson_strdup_printf("'exp':1700003600,%s", bad[i]);
        char *tok = token(SIGN_HS256, claims);
        cc_grant_t *grant = NULL;
        bson_error_t error;
        if (cc_auth_verify(auth, tok, NOW, &grant, &error)) {
            fail_msg("accepted %s", bad[i]);
        }
        if (error.code != CC_AUTH_CLAIM_INVALID) {
            fail_msg("%s: %s (%s)", bad[i], cc_auth_code_name((cc_auth_code_t)error.code),
                     error.message);
        }
        bson_free(claims);
        bson_free(tok);
    }
    cc_auth_destroy(auth);
}

static void test_auth_new_refuses_unusable_keys(void **state)
{
    (void)state;
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    size_t len;
    char *weak_pem = public_pem(weak, &len);
    const struct {
        const char *content; /* written to the scratch file; NULL: the file is not written */
        int source;          /* 0 secret, 1 public key, 2 JWKS, 3 none, 4 two sources */
        const char *message;
    } table[] = {
        {"short-secret\n", 0, "at least 32 bytes"},
        {NULL, 1, "holds a private key"},
        {weak_pem, 1, "1024 bits"},
        {"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 1, "not a PEM"},
        {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}", 2, "none of its 1 keys"},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}", 2,
         "not a point on P-256"},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}", 2,
         "only P-256"},
        {"{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\"}]}", 2, "\"n\" missing"},
        {"{\"keys\":{}}", 2, "\"keys\" array"},
        {"not json", 2, "not JSON"},
        {"", 3, "exactly one"},
        {"", 4, "exactly one"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const char *path = F.scratch;
        if (table[i].content) {
            write_file(F.scratch, table[i].content, strlen(table[i].content));
        } else {
            path = F.rsa_priv;
        }
        cc_auth_options_t options;
        cc_auth_options_init(&options);
        options.secret_file = table[i].source == 0 || table[i].source == 4 ? path : NULL;
        options.public_key_file = table[i].source == 1 || table[i].source == 4 ? path : NULL;
        options.jwks_file = table[i].source == 2 ? path : NULL;
        bson_error_t error;
        cc_auth_t *auth = cc_auth_new(&options, &error);
        if (auth || !strstr(error.message, table[i].message)) {
            fail_msg("case %zu: %s", i, auth ? "accepted" : error.message);
        }
        assert_int_equal(error.code, CC_AUTH_CONFIG);
    }
    cc_auth_options_t options;
    cc_auth_options_init(&options);
    options.secret_file = "/nonexistent/secret";
    bson_error_t error;
    assert_null(cc_auth_new(&options, &error));
    assert_non_null(strstr(error.message, "/nonexistent/secret"));
    bson_free(weak_pem);
    EVP_PKEY_free(weak);
}

static void test_reload_swaps_keys_and_keeps_them_on_failure(void **state)
{
    (void)state;
    const char *first = "first-secret-first-secret-first-secret";
    write_file(F.scratch, first, strlen(first));
    cc_auth_t *auth = auth_with(F.scratch, NULL, NULL);
    char *old_tok = sign_raw("{'alg':'HS256'}", "{" VALID "}", SIGN_HS256, NULL, first);
    char *new_tok = token(SIGN_HS256, VALID);
    expect_code(auth, old_tok, CC_AUTH_OK);
    expect_code(auth, new_tok, CC_AUTH_TOKEN_INVALID);
    write_file(F.scratch, SECRET, strlen(SECRET));
    bson_error_t error;
    assert_true(cc_auth_reload(auth, &error));
    expect_code(auth, old_tok, CC_AUTH_TOKEN_INVALID);
    expect_code(auth, new_tok, CC_AUTH_OK);
    write_file(F.scratch, "short", 5);
    assert_false(cc_auth_reload(auth, &error));
    expect_code(auth, new_tok, CC_AUTH_OK);
    bson_free(old_tok);
    bson_free(new_tok);
    cc_auth_destroy(auth);
}

static void test_mode_none_grants_everything(void **state)
{
    (void)state;
    cc_auth_options_t options;
    cc_auth_options_init(&options);
    options.mode = CC_AUTH_MODE_NONE;
    options.cookie_name = "cc_token";
    bson_error_t error;
    cc_auth_t *auth = cc_auth_new(&options, &error);
    assert_non_null(auth);
    assert_int_equal(cc_auth_mode(auth), CC_AUTH_MODE_NONE);
    assert_string_equal(cc_auth_cookie_name(auth), "cc_token");
    cc_grant_t *grant = NULL;
    assert_int_equal(verify(auth, NULL, NOW, &grant), CC_AUTH_OK);
    const cc_scope_t *scope = cc_grant_scope(grant, "any", "thing");
    assert_non_null(scope);
    assert_null(cc_scope_row_filter(scope));
    assert_false(cc_scope_has_fields(scope));
    assert_int_equal(cc_grant_expires_at(grant), 0);
    cc_grant_destroy(grant);
    cc_auth_destroy(auth);
}

/* ---- grants and scopes ---- */

static cc_grant_t *grant_of(const char *claim)
{
    bson_t *b = J(claim);
    bson_error_t error;
    cc_grant_t *grant = cc_grant_from_claim(b, NOW + 60, &error);
    if (!grant) {
        fail_msg("claim %s: %s", claim, error.message);
    }
    bson_destroy(b);
    return grant;
}

static void test_grant_scopes_namespaces_and_db_wildcards(void **state)
{
    (void)state;
    cc_grant_t *grant = grant_of("{'ns':{'shop.*':{'fields':['name']},'shop.orders':{'filter':{"
                                 "'customerId':'c42'}},'chat.room1':{}}}");
    const cc_scope_t *orders = cc_grant_scope(grant, "shop", "orders");
    const cc_scope_t *users = cc_grant_scope(grant, "shop", "users");
    assert_non_null(orders);
    assert_non_null(users);
    assert_ptr_not_equal(orders, users);
    assert_non_null(cc_scope_row_filter(orders)); /* the exact entry wins over shop.* */
    assert_false(cc_scope_has_fields(orders));
    assert_null(cc_scope_row_filter(users));
    assert_true(cc_scope_has_fields(users));
    assert_non_null(cc_grant_scope(grant, "chat", "room1"));
    assert_null(cc_grant_scope(grant, "chat", "room2"));
    assert_null(cc_grant_scope(grant, "shopping", "orders"));
    assert_null(cc_grant_scope(grant, "other", "orders"));
    const struct {
        const char *ns;
        bool covered;
    } table[] = {{"shop.*", true},     {"shop.orders", true}, {"shop.anything", true},
                 {"chat.room1", true}, {"chat.*", false},     {"chat.room2", false},
                 {"other.*", false}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        cc_ns_pattern_t pattern;
        bson_error_t error;
        assert_true(cc_ns_pattern_parse(table[i].ns, &pattern, &error));
        if (cc_grant_covers(grant, &pattern) != table[i].covered) {
            fail_msg("%s: expected covered=%d", table[i].ns, table[i].covered);
        }
        cc_ns_pattern_destroy(&pattern);
    }
    assert_int_equal(cc_auth_code_http_status(CC_AUTH_NOT_GRANTED), 403);
    assert_string_equal(cc_auth_code_name(CC_AUTH_NOT_GRANTED), "not_granted");
    cc_grant_destroy(grant);
}

static void test_scope_row_filter_uses_the_matcher(void **state)
{
    (void)state;
    cc_grant_t *grant = grant_of("{'ns':{'shop.orders':{'filter':{'customerId':'c42','total':{"
                                 "'$gte':10}}},'shop.all':{'filter':{}}}}");
    const cc_scope_t *scope = cc_grant_scope(grant, "shop", "orders");
    bson_t *in = J("{'customerId':'c42','total':10}"), *out = J("{'customerId':'c42','total':9}");
    assert_true(cc_scope_matches_document(scope, in));
    assert_false(cc_scope_matches_document(scope, out));
    /* {} is no filter at all. */
    assert_null(cc_scope_row_filter(cc_grant_scope(grant, "shop", "all")));
    bson_destroy(in);
    bson_destroy(out);
    cc_grant_destroy(grant);
}

/* ---- projection ---- */

static void test_project_keeps_id_and_listed_paths(void **state)
{
    (void)state;
    cc_grant_t *grant = grant_of("{'ns':{'shop.orders':{'fields':['status','total','address."
                                 "city','items.price','meta.tags','a.b','a']}}}");
    const cc_scope_t *scope = cc_grant_scope(grant, "shop", "orders");
    bson_t *doc = J("{'_id':1,'status':'paid','secret':'x','total':5,'address':{'city':'Lyon',"
                    "'street':'rue'},'items':[{'price':3,'cost':1},7,{'cost':2},[{'price':4,"
                    "'cost':5}]],'meta':'scalar','notes':{'a':1},'a':{'b':1,'c':2}}");
    bson_t out;
    cc_scope_project(scope, doc, &out);
    assert_bson_eq(&out, "{'_id':1,'status':'paid','total':5,'address':{'city':'Lyon'},"
                         "'items':[{'price':3},{},[{'price':4}]],'a':{'b':1,'c':2}}");
    bson_destroy(&out);
    bson_destroy(doc);
    cc_grant_destroy(grant);

    /* No `fields`: a plain copy; an empty list: _id only. */
    grant = grant_of("{'ns':{'a.all':{},'a.none':{'fields':[]}}}");
    doc = J("{'_id':{'$oid':'5f1d7a8e9b1e8b3a2c4d5e6f'},'x':1}");
    cc_scope_project(cc_grant_scope(grant, "a", "all"), doc, &out);
    assert_true(bson_equal(&out, doc));
    bson_destroy(&out);
    cc_scope_project(cc_grant_scope(grant, "a", "none"), doc, &out);
    assert_bson_eq(&out, "{'_id':{'$oid':'5f1d7a8e9b1e8b3a2c4d5e6f'}}");
    bson_destroy(&out);
    bson_destroy(doc);
    cc_grant_destroy(grant);
}

#define ORDER_FIELDS "{'ns':{'shop.orders':{'fields':['status','address.city','items.price']}}}"
#define EVENT_HEAD "'_id':{'_data':'8265'},'ns':{'db':'shop','coll':'orders'},"

static void expect_projected_event(const cc_scope_t *scope, const char *event_json,
                                   const char *expected_json)
{
    bson_t *event = J(event_json);
    bson_t out;
    cc_scope_project_event(scope, event, &out);
    assert_bson_eq(&out, expected_json);
    bson_destroy(&out);
    bson_destroy(event);
}

static void test_project_event_insert_replace_delete(void **state)
{
    (void)state;
    cc_grant_t *grant = grant_of(ORDER_FIELDS);
    const cc_scope_t *scope = cc_grant_scope(grant, "shop", "orders");
    /* documentKey carries the shard key on sharded collections: projected too. */
    expect_projected_event(
        scope,
        "{" EVENT_HEAD "'operationType':'insert','documentKey':{'_id':1,'region':'eu'},"
        "'fullDocument':{'_id':1,'status':'new','secret':'s','region':'eu','address':{'city':"
        "'Lyon','street':'rue'}}}",
        "{" EVENT_HEAD "'operationType':'insert','documentKey':{'_id':1},"
        "'fullDocument':{'_id':1,'status':'new','address':{'city':'Lyon'}}}");
    expect_projected_event(
        scope,
        "{" EVENT_HEAD "'operationType':'replace','documentKey':{'_id':1},"
        "'fullDocument':{'_id':1,'status':'b','secret':'s2'},"
        "'fullDocumentBeforeChange':{'_id':1,'status':'a','secret':'s1'}}",
        "{" EVENT_HEAD "'operationType':'replace','documentKey':{'_id':1},"
        "'fullDocument':{'_id':1,'status':'b'},'fullDocumentBeforeChange':{'_id':1,'status':'a'}}");
    expect_projected_event(scope,
                           "{" EVENT_HEAD "'operationType':'delete','documentKey':{'_id':1},"
                           "'fullDocumentBeforeChange':{'_id':1,'status':'a','secret':'s1'}}",
                           "{" EVENT_HEAD "'operationType':'delete','documentKey':{'_id':1},"
                           "'fullDocumentBeforeChange':{'_id':1,'status':'a'}}");
    /* A null post-image (updateLookup found nothing) stays null. */
    expect_projected_event(
        scope, "{'operationType':'update','documentKey':{'_id':1},'fullDocument':null}",
        "{'operationType':'update','documentKey':{'_id':1},'fullDocument':null}");
    cc_grant_destroy(grant);
}

static void test_project_event_update_description_paths(void **state)
{
    (void)state;
    cc_grant_t *grant = grant_of(ORDER_FIELDS);
    const cc_scope_t *scope = cc_grant_scope(grant, "shop", "orders");
    expect_projected_event(
        scope,
        "{" EVENT_HEAD "'operationType':'update','documentKey':{'_id':1},'updateDescription':{"
        "'updatedFields':{'status':'paid','secret':'t','statusx':1,'address.city':'Paris',"
        "'address.street':'x','address':{'city':'Nice','street':'y'},'address.zip':1,"
        "'items.2.price':9,'items.2.cost':8,'items.3':{'price':1,'cost':2},"
        "'items':[{'price':1,'cost':2}],'secret.0':1},"
        "'removedFields':['secret','address.street','address','status','items.1.cost'],"
        "'truncatedArrays':[{'field':'items','newSize':2},{'field':'tags','newSize':1}],"
        "'disambiguatedPaths':{'items.2.price':['items',2,'price'],'secret.0':['secret','0']}},"
        "'fullDocument':{'_id':1,'status':'paid','secret':'t'}}",
        "{" EVENT_HEAD "'operationType':'update','documentKey':{'_id':1},'updateDescription':{"
        "'updatedFields':{'status':'paid','address.city':'Paris','address':{'city':'Nice'},"
        "'items.2.price':9,'items.3':{'price':1},'items':[{'price':1}]},"
        "'removedFields':['address','status'],"
        "'truncatedArrays':[{'field':'items','newSize':2}],"
        "'disambiguatedPaths':{'items.2.price':['items',2,'price']}},"
        "'fullDocument':{'_id':1,'status':'paid'}}");
    cc_grant_destroy(grant);
}

/* ---- row decisions on events ---- */

static cc_scope_event_t apply(const cc_scope_t *scope, const char *event_json, bson_t *out)
{
    bson_t *event = J(event_json);
    cc_scope_event_t decision = cc_scope_apply_event(scope, event, out);
    assert_int_equal(cc_scope_classify_event(scope, event), decision);
    bson_destroy(event);
    return decision;
}

#define C42 "{'_id':1,'customerId':'c42','status':'a','secret':1}"
#define C43 "{'_id':1,'customerId':'c43','status':'b','secret':2}"

static void test_events_follow_the_row_filter_and_pre_images(void **state)
{
    (void)state;
    cc_grant_t *grant = grant_of("{'ns':{'shop.orders':{'filter':{'customerId':'c42'},'fields':["
                                 "'status']},'shop.open':{}}}");
    const cc_scope_t *scope = cc_grant_scope(grant, "shop", "orders");
    const cc_scope_t *open = cc_grant_scope(grant, "shop", "open");
    const struct {
        const char *event;
        cc_scope_event_t filtered;
        const char *filtered_out; /* NULL: nothing emitted */
    } table[] = {
        {"{'operationType':'insert','documentKey':{'_id':1},'fullDocument':" C42 "}",
         CC_SCOPE_EVENT_VISIBLE,
         "{'operationType':'insert','documentKey':{'_id':1},'fullDocument':{'_id':1,'status':"
         "'a'}}"},
        {"{'operationType':'insert','documentKey':{'_id':1},'fullDocument':" C43 "}",
         CC_SCOPE_EVENT_HIDDEN, NULL},
        /* Leaves the holder's rows: told so, without the new contents. */
        {"{'operationType':'update','documentKey':{'_id':1},'updateDescription':{'updatedFields'"
         ":{'customerId':'c43','status':'b'},'removedFields':[]},'fullDocument':" C43
         ",'fullDocumentBeforeChange':" C42 "}",
         CC_SCOPE_EVENT_LEFT,
         "{'operationType':'update','documentKey':{'_id':1},'fullDocumentBeforeChange':{'_id':1,"
         "'status':'a'}}"},
        /* The same without a pre-image: nothing says it was the holder's. */
        {"{'operationType':'update','documentKey':{'_id':1},'updateDescription':{'updatedFields'"
         ":{'customerId':'c43'},'removedFields':[]},'fullDocument':" C43 "}",
         CC_SCOPE_EVENT_HIDDEN, NULL},
        /* Enters the holder's rows: its earlier state belonged to someone else. */
        {"{'operationType':'update','documentKey':{'_id':1},'updateDescription':{'updatedFields'"
         ":{'customerId':'c42'},'removedFields':[]},'fullDocument':" C42
         ",'fullDocumentBeforeChange':" C43 "}",
         CC_SCOPE_EVENT_VISIBLE,
         "{'operationType':'update','documentKey':{'_id':1},'updateDescription':{'updatedFields'"
         ":{},'removedFields':[]},'fullDocument':{'_id':1,'status':'a'}}"},
        /* No post-image: the new values cannot be judged, so they are not shown. */
        {"{'operationType':'update','documentKey':{'_id':1},'updateDescription':{'updatedFields'"
         ":{'status':'z'},'removedFields':[]},'fullDocumentBeforeChange':" C42 "}",
         CC_SCOPE_EVENT_LEFT,
         "{'operationType':'update','documentKey':{'_id':1},'fullDocumentBeforeChange':{'_id':1,"
         "'status':'a'}}"},
        {"{'operationType':'replace','documentKey':{'_id':1},'fullDocument':" C43 "}",
         CC_SCOPE_EVENT_HIDDEN, NULL},
        {"{'operationType':'delete','documentKey':{'_id':1},'fullDocumentBeforeChange':" C42 "}",
         CC_SCOPE_EVENT_VISIBLE,
         "{'operationType':'delete','documentKey':{'_id':1},'fullDocumentBeforeChange':{'_id':1,"
         "'status':'a'}}"},
        {"{'operationType':'delete','documentKey':{'_id':1},'fullDocumentBeforeChange':" C43 "}",
         CC_SCOPE_EVENT_HIDDEN, NULL},
        /* A delete without a pre-image reaches only holders without a row filter. */
        {"{'operationType':'delete','documentKey':{'_id':1}}", CC_SCOPE_EVENT_HIDDEN, NULL},
        {"{'operationType':'drop','ns':{'db':'shop','coll':'orders'}}", CC_SCOPE_EVENT_VISIBLE,
         "{'operationType':'drop','ns':{'db':'shop','coll':'orders'}}"},
        {"{'operationType':'somethingNew','documentKey':{'_id':1}}", CC_SCOPE_EVENT_HIDDEN, NULL},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        bson_t out;
        cc_scope_event_t got = apply(scope, table[i].event, &out);
        if (got != table[i].filtered) {
            fail_msg("case %zu: decision %d, expected %d", i, got, table[i].filtered);
        }
        if (table[i].filtered_out) {
            assert_bson_eq(&out, table[i].filtered_out);
        } else {
            assert_true(bson_empty(&out));
        }
        bson_destroy(&out);
        /* Without a row filter every event is delivered whole. */
        bson_t *event = J(table[i].event);
        assert_int_equal(apply(open, table[i].event, &out), CC_SCOPE_EVENT_VISIBLE);
        assert_true(bson_equal(&out, event));
        bson_destroy(&out);
        bson_destroy(event);
    }
    cc_grant_destroy(grant);
}

/* ---- the combined filter ---- */

static bool combined_matches(const cc_scope_t *scope, const char *subscriber, const char *prefix,
                             const char *doc)
{
    bson_t *sub = subscriber ? J(subscriber) : NULL, *d = J(doc), combined;
    cc_scope_combine_filter(scope, sub, prefix, &combined);
    bson_error_t error;
    cc_filter_t *filter = cc_filter_compile(&combined, &error);
    if (!filter) {
        fail_msg("combined filter does not compile: %s", error.message);
    }
    bool matched = cc_filter_matches(filter, d);
    cc_filter_destroy(filter);
    bson_destroy(&combined);
    bson_destroy(d);
    if (sub) {
        bson_destroy(sub);
    }
    return matched;
}

static void test_combined_filter_cannot_be_widened(void **state)
{
    (void)state;
    cc_grant_t *grant = grant_of("{'ns':{'shop.orders':{'filter':{'customerId':'c42'}},"
                                 "'shop.open':{}}}");
    const cc_scope_t *scope = cc_grant_scope(grant, "shop", "orders");
    const char *widen = "{'$or':[{'customerId':'c43'},{'status':'paid'}]}";
    assert_false(combined_matches(scope, widen, NULL, "{'customerId':'c43','status':'paid'}"));
    assert_false(combined_matches(scope, widen, NULL, "{'customerId':'c43','status':'open'}"));
    assert_true(combined_matches(scope, widen, NULL, "{'customerId':'c42','status':'paid'}"));
    assert_false(combined_matches(scope, widen, NULL, "{'customerId':'c42','status':'open'}"));
    assert_false(
        combined_matches(scope, "{'customerId':{'$exists':true}}", NULL, "{'customerId':'c43'}"));
    assert_true(combined_matches(scope, NULL, NULL, "{'customerId':'c42'}"));
    assert_false(combined_matches(scope, NULL, NULL, "{'customerId':'c43'}"));
    assert_false(combined_matches(scope, "{}", NULL, "{'customerId':'c43'}"));

    /* On change events the claim's paths move under fullDocument. */
    const char *event_or = "{'$or':[{'fullDocument.customerId':'c43'},{'operationType':'insert'}]}";
    assert_false(
        combined_matches(scope, event_or, "fullDocument",
                         "{'operationType':'insert','fullDocument':{'customerId':'c43'}}"));
    assert_true(combined_matches(scope, event_or, "fullDocument",
                                 "{'operationType':'insert','fullDocument':{'customerId':'c42'}}"));
    assert_false(combined_matches(scope, NULL, "fullDocument",
                                  "{'operationType':'insert','customerId':'c42'}"));

    /* Without a row filter the subscriber's filter runs as it is. */
    const cc_scope_t *open = cc_grant_scope(grant, "shop", "open");
    assert_true(combined_matches(open, widen, NULL, "{'customerId':'c43','status':'paid'}"));
    bson_t out;
    cc_scope_combine_filter(open, NULL, NULL, &out);
    assert_true(bson_empty(&out));
    bson_destroy(&out);
    cc_grant_destroy(grant);

    /* Paths inside $or/$and/$nor are prefixed; operator operands are left alone. */
    grant = grant_of("{'ns':{'a.b':{'filter':{'$or':[{'customerId':'c42'},{'shared':true}],"
                     "'tags':{'$elemMatch':{'k':'v'}},'$nor':[{'x':{'$not':{'$gt':1}}}]}}}}");
    bson_t *sub = J("{'operationType':'insert'}");
    cc_scope_combine_filter(cc_grant_scope(grant, "a", "b"), sub, "fullDocument", &out);
    assert_bson_eq(&out, "{'$and':[{'$or':[{'fullDocument.customerId':'c42'},{'fullDocument."
                         "shared':true}],'fullDocument.tags':{'$elemMatch':{'k':'v'}},'$nor':[{"
                         "'fullDocument.x':{'$not':{'$gt':1}}}]},{'operationType':'insert'}]}");
    bson_destroy(&out);
    bson_destroy(sub);
    cc_grant_destroy(grant);
}

static void test_filters_may_not_read_hidden_fields(void **state)
{
    (void)state;
    cc_grant_t *grant = grant_of("{'ns':{'shop.orders':{'fields':['status','address.city','items."
                                 "price']},'shop.open':{}}}");
    const cc_scope_t *scope = cc_grant_scope(grant, "shop", "orders");
    const struct {
        const char *filter;
        bool on_events;
        bool allowed;
    } table[] = {
        {"{'status':'paid'}", false, true},
        {"{'_id':1,'address.city':{'$in':['Lyon']},'items.0.price':{'$gt':1}}", false, true},
        {"{'items.price':{'$gt':1},'$comment':'x'}", false, true},
        {"{'$or':[{'status':'a'},{'address.city':'b'}]}", false, true},
        {"{'salary':{'$gt':5000}}", false, false},
        {"{'$or':[{'status':'a'},{'salary':{'$gt':5000}}]}", false, false},
        {"{'$and':[{'$nor':[{'address.street':'x'}]}]}", false, false},
        {"{'address':{'city':'Lyon','street':'rue'}}", false, false},
        {"{'address':{'$exists':true}}", false, false},
        {"{'items':{'$elemMatch':{'cost':1}}}", false, false},
        {"{'$expr':{'$gt':['$salary',1]}}", false, false},
        {"{'fullDocument.status':'paid','operationType':'update','ns.coll':'orders'}", true, true},
        {"{'documentKey._id':1,'fullDocumentBeforeChange.address.city':'x'}", true, true},
        {"{'updateDescription.updatedFields.status':{'$exists':true}}", true, true},
        {"{'fullDocument.salary':{'$gt':5000}}", true, false},
        {"{'documentKey.region':'eu'}", true, false},
        {"{'fullDocument':{'_id':1}}", true, false},
        {"{'updateDescription.removedFields':'salary'}", true, false},
        {"{'updateDescription.updatedFields.salary':{'$exists':true}}", true, false},
        {"{'$or':[{'operationType':'delete'},{'fullDocumentBeforeChange.salary':1}]}", true, false},
        /* A document filter's paths are document paths, not event paths. */
        {"{'fullDocument.status':'paid'}", false, false},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        bson_t *filter = J(table[i].filter);
        bson_error_t error;
        bool allowed = cc_scope_check_filter(scope, filter, table[i].on_events, &error);
        if (allowed != table[i].allowed) {
            fail_msg("%s (on_events=%d): allowed=%d", table[i].filter, table[i].on_events, allowed);
        }
        if (!allowed) {
            assert_int_equal(error.code, CC_AUTH_FIELD_NOT_GRANTED);
        }
        /* Without a field list every path may be read. */
        assert_true(cc_scope_check_filter(cc_grant_scope(grant, "shop", "open"), filter,
                                          table[i].on_events, &error));
        bson_destroy(filter);
    }
    assert_true(cc_scope_shows_path(scope, "items.price"));
    assert_true(cc_scope_shows_path(scope, "_id"));
    assert_false(cc_scope_shows_path(scope, "items"));
    assert_false(cc_scope_shows_path(scope, "total"));
    assert_int_equal(cc_auth_code_http_status(CC_AUTH_FIELD_NOT_GRANTED), 403);
    cc_grant_destroy(grant);
}

/* ---- HTTP helpers ---- */

static void expect_cookie(const char *header, const char *name, const char *expected)
{
    const char *value = NULL;
    size_t len = 0;
    bool found = cc_auth_cookie_find(header, name, &value, &len);
    if (!expected) {
        if (found) {
            fail_msg("%s in \"%s\": found \"%.*s\"", name, header, (int)len, value);
        }
        return;
    }
    if (!found || len != strlen(expected) || memcmp(value, expected, len) != 0) {
        fail_msg("%s in \"%s\": expected \"%s\"", name, header, expected);
    }
}

static void test_cookie_header_parsing(void **state)
{
    (void)state;
    expect_cookie("a=1; cc_token=abc.def.ghi; b=2", "cc_token", "abc.def.ghi");
    expect_cookie("cc_token=first; cc_token=second", "cc_token", "first");
    expect_cookie("xcc_token=1; cc_token_x=2; cc_token=3", "cc_token", "3");
    expect_cookie("  cc_token = spaced ;b=2", "cc_token", "spaced");
    expect_cookie("cc_token=\"quoted\"", "cc_token", "quoted");
    expect_cookie("cc_token=", "cc_token", "");
    expect_cookie("a=1;cc_token=x=y", "cc_token", "x=y");
    expect_cookie("CC_TOKEN=1", "cc_token", NULL);
    expect_cookie("a=1; b=2", "cc_token", NULL);
    expect_cookie("cc_token", "cc_token", NULL);
    expect_cookie("", "cc_token", NULL);
    expect_cookie(";;; ;", "cc_token", NULL);

    const char *tok;
    size_t len;
    assert_true(cc_auth_bearer_token("Bearer abc.def", &tok, &len));
    assert_int_equal(len, 7);
    assert_memory_equal(tok, "abc.def", 7);
    assert_true(cc_auth_bearer_token("bearer   xyz  ", &tok, &len));
    assert_int_equal(len, 3);
    assert_false(cc_auth_bearer_token("Basic dXNlcjpwYXNz", &tok, &len));
    assert_false(cc_auth_bearer_token("Bearer", &tok, &len));
    assert_false(cc_auth_bearer_token("Bearer ", &tok, &len));
    assert_false(cc_auth_bearer_token("Bearerabc", &tok, &len));
    assert_false(cc_auth_bearer_token("Bearer a b", &tok, &len));
    assert_false(cc_auth_bearer_token(NULL, &tok, &len));
}

/* ---- changecast token ---- */

static int run_mint(const char *const *args, size_t n, char *out, size_t out_size)
{
    char *argv[16];
    assert_true(n < 16);
    for (size_t i = 0; i < n; i++) {
        argv[i] = (char *)args[i];
    }
    argv[n] = NULL;
    fflush(stdout);
    int saved = dup(1);
    FILE *capture = fopen(F.scratch, "w");
    assert_non_null(capture);
    dup2(fileno(capture), 1);
    int status = cc_auth_mint_main((int)n, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    fclose(capture);
    size_t len;
    char *text = read_all(F.scratch, &len);
    while (len && (text[len - 1] == '\n')) {
        text[--len] = '\0';
    }
    snprintf(out, out_size, "%s", text);
    free(text);
    return status;
}

static void test_mint_prints_a_token_the_verifier_accepts(void **state)
{
    (void)state;
    const char *args[] = {"token",
                          "--secret-file",
                          F.secret,
                          "--ns",
                          "shop.orders",
                          "--filter",
                          "{\"customerId\": \"c42\"}",
                          "--fields",
                          "status, total",
                          "--ns",
                          "shop.products",
                          "--ttl",
                          "2h",
                          "--aud=changecast"};
    char tok[4096];
    assert_int_equal(run_mint(args, sizeof args / sizeof args[0], tok, sizeof tok), 0);
    cc_auth_options_t options;
    cc_auth_options_init(&options);
    options.secret_file = F.secret;
    options.audience = "changecast";
    bson_error_t error;
    cc_auth_t *auth = cc_auth_new(&options, &error);
    assert_non_null(auth);
    int64_t now = (int64_t)time(NULL);
    cc_grant_t *grant = NULL;
    assert_int_equal(verify(auth, tok, now, &grant), CC_AUTH_OK);
    int64_t ttl = cc_grant_expires_at(grant) - now;
    assert_true(ttl > 7000 && ttl <= 7200);
    const cc_scope_t *orders = cc_grant_scope(grant, "shop", "orders");
    assert_bson_eq(cc_scope_row_filter(orders), "{'customerId':'c42'}");
    bson_t *doc = J("{'_id':1,'status':'a','total':2,'secret':3}"), out;
    cc_scope_project(orders, doc, &out);
    assert_bson_eq(&out, "{'_id':1,'status':'a','total':2}");
    bson_destroy(&out);
    bson_destroy(doc);
    const cc_scope_t *products = cc_grant_scope(grant, "shop", "products");
    assert_non_null(products);
    assert_null(cc_scope_row_filter(products));
    assert_null(cc_grant_scope(grant, "shop", "users"));
    /* Expired once its ttl has passed. */
    assert_int_equal(verify(auth, tok, now + 7300, NULL), CC_AUTH_TOKEN_EXPIRED);
    cc_grant_destroy(grant);
    cc_auth_destroy(auth);
}

static void test_mint_refuses_bad_arguments(void **state)
{
    (void)state;
    char out[4096];
    const char *no_ns[] = {"token", "--secret-file", F.secret};
    const char *early_filter[] = {"token", "--secret-file", F.secret, "--filter",
                                  "{}",    "--ns",          "a.b"};
    const char *bad_filter[] = {"token",    "--secret-file",         F.secret, "--ns", "a.b",
                                "--filter", "{\"x\":{\"$where\":1}}"};
    const char *bad_ttl[] = {"token", "--secret-file", F.secret, "--ns", "a.b", "--ttl", "1y"};
    const char *bad_ns[] = {"token", "--secret-file", F.secret, "--ns", "nodot"};
    const char *no_secret[] = {"token", "--secret-file", "/nonexistent", "--ns", "a.b"};
    assert_int_equal(run_mint(no_ns, 3, out, sizeof out), 2);
    assert_int_equal(run_mint(early_filter, 7, out, sizeof out), 2);
    assert_int_equal(run_mint(bad_filter, 7, out, sizeof out), 2);
    assert_int_equal(run_mint(bad_ttl, 7, out, sizeof out), 2);
    assert_int_equal(run_mint(bad_ns, 5, out, sizeof out), 2);
    assert_int_equal(run_mint(no_secret, 5, out, sizeof out), 2);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_accepts_hs256_and_reads_the_grant),
        cmocka_unit_test(test_verify_accepts_rs256_and_es256_from_pem_keys),
        cmocka_unit_test(test_verify_selects_jwks_keys_by_kid),
        cmocka_unit_test(test_verify_refuses_forged_signatures),
        cmocka_unit_test(test_verify_refuses_alg_none),
        cmocka_unit_test(test_verify_refuses_hs256_signed_with_the_public_key),
        cmocka_unit_test(test_verify_refuses_the_wrong_algorithm),
        cmocka_unit_test(test_verify_checks_exp_and_nbf_with_leeway),
        cmocka_unit_test(test_verify_checks_issuer_and_audience),
        cmocka_unit_test(test_verify_reports_missing_and_malformed_claims),
        cmocka_unit_test(test_auth_new_refuses_unusable_keys),
        cmocka_unit_test(test_reload_swaps_keys_and_keeps_them_on_failure),
        cmocka_unit_test(test_mode_none_grants_everything),
        cmocka_unit_test(test_grant_scopes_namespaces_and_db_wildcards),
        cmocka_unit_test(test_scope_row_filter_uses_the_matcher),
        cmocka_unit_test(test_project_keeps_id_and_listed_paths),
        cmocka_unit_test(test_project_event_insert_replace_delete),
        cmocka_unit_test(test_project_event_update_description_paths),
        cmocka_unit_test(test_events_follow_the_row_filter_and_pre_images),
        cmocka_unit_test(test_combined_filter_cannot_be_widened),
        cmocka_unit_test(test_filters_may_not_read_hidden_fields),
        cmocka_unit_test(test_cookie_header_parsing),
        cmocka_unit_test(test_mint_prints_a_token_the_verifier_accepts),
        cmocka_unit_test(test_mint_refuses_bad_arguments),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
