/* SPDX-License-Identifier: Apache-2.0 */
/* OpenSSL contexts for both sides of the proxy. TLS 1.2 is the floor, as
 * MongoDB 4.0+ disables TLS 1.0 by default where 1.1+ is available. */
#include "wire_internal.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

static void set_openssl_error(bson_error_t *error, const char *what, const char *path)
{
    char detail[256] = "unknown OpenSSL error";
    unsigned long code = ERR_get_error();
    if (code) {
        ERR_error_string_n(code, detail, sizeof detail);
    }
    ERR_clear_error();
    bson_set_error(error, 0, 0, "%s \"%s\": %s", what, path ? path : "", detail);
}

SSL_CTX *cc_tls_server_context(const char *cert_file, const char *key_file,
                               const char *client_ca_file, bson_error_t *error)
{
    SSL_CTX *context = SSL_CTX_new(TLS_server_method());
    if (!context) {
        set_openssl_error(error, "cannot create TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(context, cert_file) != 1) {
        set_openssl_error(error, "wire.tls_cert_file: cannot load", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(context, key_file, SSL_FILETYPE_PEM) != 1) {
        set_openssl_error(error, "wire.tls_key_file: cannot load", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(context) != 1) {
        set_openssl_error(error, "wire.tls_key_file: does not match the certificate", key_file);
        goto fail;
    }
    if (client_ca_file && *client_ca_file) {
        if (SSL_CTX_load_verify_locations(context, client_ca_file, NULL) != 1) {
            set_openssl_error(error, "wire.tls_client_ca_file: cannot load", client_ca_file);
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca_file);
        if (names) {
            SSL_CTX_set_client_CA_list(context, names);
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return context;
fail:
    SSL_CTX_free(context);
    return NULL;
}

SSL_CTX *cc_tls_client_context(const char *ca_file, const char *cert_key_file,
                               bool allow_invalid_certificates, bson_error_t *error)
{
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (!context) {
        set_openssl_error(error, "cannot create TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    bool loaded = ca_file && *ca_file ? SSL_CTX_load_verify_locations(context, ca_file, NULL) == 1
                                      : SSL_CTX_set_default_verify_paths(context) == 1;
    if (!loaded) {
        set_openssl_error(error, "upstream tlsCAFile: cannot load", ca_file);
        goto fail;
    }
    if (cert_key_file && *cert_key_file &&
        (SSL_CTX_use_certificate_chain_file(context, cert_key_file) != 1 ||
         SSL_CTX_use_PrivateKey_file(context, cert_key_file, SSL_FILETYPE_PEM) != 1)) {
        set_openssl_error(error, "upstream tlsCertificateKeyFile: cannot load", cert_key_file);
        goto fail;
    }
    SSL_CTX_set_verify(context, allow_invalid_certificates ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                       NULL);
    return context;
fail:
    SSL_CTX_free(context);
    return NULL;
}

SSL *cc_tls_client_session(SSL_CTX *context, const char *host, bool verify_hostname)
{
    SSL *ssl = SSL_new(context);
    if (ssl && verify_hostname) {
        /* RFC 6125 matching of the certificate against the primary's name
         * (or IP address), as drivers do unless tlsAllowInvalidHostnames. */
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
            SSL_set1_host(ssl, host);
        }
    }
    return ssl;
}
