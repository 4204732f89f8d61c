/* SPDX-License-Identifier: Apache-2.0 */
/* auth/keys: the verification keys, loaded from the one key source the options name. Each key
 * is bound to exactly one algorithm here, from what the key is (a secret is HS256, an RSA key
 * RS256, a P-256 key ES256), never from a token: that binding is what defeats algorithm
 * confusion (RFC 8725 section 3.1). Public keys are handed to libjwt as a PUBKEY PEM re-encoded
 * by OpenSSL, whatever form they came in. Calls OpenSSL and jwks.c. */
#include "auth_internal.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

/* RFC 7518 section 3.2: an HS256 key of at least 256 bits. */
enum { MIN_SECRET_BYTES = 32, MIN_RSA_BITS = 2048 };

static void key_destroy(cc_auth_key_t *key)
{
    bson_free(key->kid);
    if (key->material) {
        /* Secrets should not linger in freed memory. */
        bson_zero_free(key->material, key->len);
    }
    memset(key, 0, sizeof *key);
}

void cc_auth_keyset_destroy(cc_auth_keyset_t *keys)
{
    for (size_t i = 0; i < keys->count; i++) {
        key_destroy(&keys->keys[i]);
    }
    bson_free(keys->keys);
    memset(keys, 0, sizeof *keys);
}

static cc_auth_key_t *keyset_add(cc_auth_keyset_t *keys)
{
    keys->keys = bson_realloc(keys->keys, (keys->count + 1) * sizeof *keys->keys);
    cc_auth_key_t *key = &keys->keys[keys->count++];
    memset(key, 0, sizeof *key);
    return key;
}

bool cc_auth_key_from_pkey(struct evp_pkey_st *pkey, const char *origin, cc_auth_key_t *key,
                           bson_error_t *error)
{
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        int bits = EVP_PKEY_get_bits(pkey);
        if (bits < MIN_RSA_BITS) {
            cc_auth_set_error(error, CC_AUTH_CONFIG,
                              "%s: RSA key of %d bits; RS256 needs at least %d", origin, bits,
                              MIN_RSA_BITS);
            return false;
        }
        key->alg = JWT_ALG_RS256;
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64] = "";
        if (!EVP_PKEY_get_group_name(pkey, group, sizeof group, NULL) ||
            strcmp(group, "prime256v1") != 0) {
            cc_auth_set_error(error, CC_AUTH_CONFIG,
                              "%s: EC key on curve \"%s\"; ES256 needs P-256 (prime256v1)", origin,
                              group);
            return false;
        }
        key->alg = JWT_ALG_ES256;
    } else {
        cc_auth_set_error(error, CC_AUTH_CONFIG,
                          "%s: unsupported key type %s: use an RSA (RS256) or EC P-256 (ES256) key",
                          origin, EVP_PKEY_get0_type_name(pkey));
        return false;
    }
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long pem_len;
    if (!bio || !PEM_write_bio_PUBKEY(bio, pkey) || (pem_len = BIO_get_mem_data(bio, &pem)) <= 0) {
        BIO_free(bio);
        ERR_clear_error();
        cc_auth_set_error(error, CC_AUTH_CONFIG, "%s: cannot encode the public key", origin);
        return false;
    }
    key->len = (size_t)pem_len;
    key->material = bson_malloc(key->len + 1);
    memcpy(key->material, pem, key->len);
    key->material[key->len] = '\0';
    BIO_free(bio);
    return true;
}

static bool load_secret(const char *path, cc_auth_keyset_t *keys, bson_error_t *error)
{
    char *data;
    size_t len;
    if (!cc_auth_read_file(path, CC_AUTH_MAX_KEY_FILE_BYTES, &data, &len, error)) {
        return false;
    }
    /* `echo secret > file` adds a newline nobody means as part of the key. */
    if (len > 0 && data[len - 1] == '\n') {
        len--;
        if (len > 0 && data[len - 1] == '\r') {
            len--;
        }
    }
    if (len < MIN_SECRET_BYTES) {
        bson_zero_free(data, len);
        cc_auth_set_error(error, CC_AUTH_CONFIG,
                          "%s: an HS256 secret needs at least %d bytes (e.g. openssl rand -hex 32)",
                          path, MIN_SECRET_BYTES);
        return false;
    }
    cc_auth_key_t *key = keyset_add(keys);
    key->alg = JWT_ALG_HS256;
    key->material = (unsigned char *)data;
    key->len = len;
    return true;
}

static bool load_public_key(const char *path, cc_auth_keyset_t *keys, bson_error_t *error)
{
    char *data;
    size_t len;
    if (!cc_auth_read_file(path, CC_AUTH_MAX_KEY_FILE_BYTES, &data, &len, error)) {
        return false;
    }
    if (strstr(data, "PRIVATE KEY-----")) {
        bson_zero_free(data, len);
        cc_auth_set_error(error, CC_AUTH_CONFIG,
                          "%s holds a private key: give the public key "
                          "(openssl pkey -in key.pem -pubout)",
                          path);
        return false;
    }
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    if (!pkey && bio) {
        /* Not a SubjectPublicKeyInfo: perhaps a certificate carrying the key. */
        (void)BIO_reset(bio);
        X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (cert) {
            pkey = X509_get_pubkey(cert);
            X509_free(cert);
        }
    }
    BIO_free(bio);
    bson_free(data);
    ERR_clear_error();
    if (!pkey) {
        cc_auth_set_error(error, CC_AUTH_CONFIG,
                          "%s: not a PEM public key (-----BEGIN PUBLIC KEY-----) or certificate",
                          path);
        return false;
    }
    cc_auth_key_t key = {0};
    bool ok = cc_auth_key_from_pkey(pkey, path, &key, error);
    EVP_PKEY_free(pkey);
    if (ok) {
        *keyset_add(keys) = key;
    }
    return ok;
}

static bool load_jwks(const char *path, cc_auth_keyset_t *keys, bson_error_t *error)
{
    char *data;
    size_t len;
    if (!cc_auth_read_file(path, CC_AUTH_MAX_KEY_FILE_BYTES, &data, &len, error)) {
        return false;
    }
    bool ok = cc_auth_jwks_parse(data, len, path, keys, error);
    bson_free(data);
    return ok;
}

static bool is_set(const char *s)
{
    return s && *s;
}

bool cc_auth_keyset_load(const cc_auth_options_t *options, cc_auth_keyset_t *out,
                         bson_error_t *error)
{
    memset(out, 0, sizeof *out);
    int sources = is_set(options->secret_file) + is_set(options->public_key_file) +
                  is_set(options->jwks_file);
    if (sources != 1) {
        cc_auth_set_error(error, CC_AUTH_CONFIG,
                          "auth = jwt needs exactly one of a secret file (HS256), a public key "
                          "file (RS256/ES256) or a JWKS file; %d given",
                          sources);
        return false;
    }
    bool ok;
    if (is_set(options->secret_file)) {
        ok = load_secret(options->secret_file, out, error);
    } else if (is_set(options->public_key_file)) {
        ok = load_public_key(options->public_key_file, out, error);
    } else {
        ok = load_jwks(options->jwks_file, out, error);
    }
    if (!ok) {
        cc_auth_keyset_destroy(out);
    }
    return ok;
}
