/* SPDX-License-Identifier: Apache-2.0 */
/* What the files of src/auth share and nobody else sees: the key set, the projection tree, the
 * scope and grant layouts, base64url and a bounded file reader. */
#ifndef CHANGECAST_AUTH_INTERNAL_H
#define CHANGECAST_AUTH_INTERNAL_H

#include "changecast/auth.h"
#include "changecast/filter.h"

#include <jwt.h>

/* Tokens and key files larger than these are refused, never read whole into memory. */
enum { CC_AUTH_MAX_TOKEN_BYTES = 16 * 1024, CC_AUTH_MAX_KEY_FILE_BYTES = 1024 * 1024 };

/* One verification key, as libjwt takes it: the HMAC secret bytes or a PUBKEY PEM. */
typedef struct cc_auth_key {
    jwt_alg_t alg;
    char *kid; /* NULL: none (secret and PEM keys; JWKS keys without kid) */
    unsigned char *material;
    size_t len;
} cc_auth_key_t;

typedef struct cc_auth_keyset {
    cc_auth_key_t *keys;
    size_t count;
} cc_auth_keyset_t;

bool cc_auth_keyset_load(const cc_auth_options_t *options, cc_auth_keyset_t *out,
                         bson_error_t *error);
void cc_auth_keyset_destroy(cc_auth_keyset_t *keys);

/* Binds an OpenSSL public key to its one algorithm and stores it as a PUBKEY PEM. */
struct evp_pkey_st;
bool cc_auth_key_from_pkey(struct evp_pkey_st *pkey, const char *origin, cc_auth_key_t *key,
                           bson_error_t *error);

/* JWKS text to keys (appended to `out`); `origin` names the file in messages. */
bool cc_auth_jwks_parse(const char *json, size_t len, const char *origin, cc_auth_keyset_t *out,
                        bson_error_t *error);

/* A node of a field list: "a.b" and "a.c" give a -> {b, c}; "a" alone makes a whole. The root
 * has no name. Children are few (a token's field list), so a linear search is fine. */
typedef struct cc_proj_node {
    char *name;
    bool whole;
    struct cc_proj_node *children;
    size_t count;
} cc_proj_node_t;

/* From the claim's `fields` array. */
cc_proj_node_t *cc_proj_build(bson_iter_t *fields, const char *ns, bson_error_t *error);
void cc_proj_destroy(cc_proj_node_t *root);
const cc_proj_node_t *cc_proj_child(const cc_proj_node_t *node, const char *name, size_t len);
/* Appends the projection of the document under `iter` (positioned before its first element). */
void cc_proj_append(const cc_proj_node_t *node, bson_iter_t *iter, bson_t *out, bool keep_id);

/* Where a dotted path (an update description key) falls: outside the listed fields, at or
 * under a listed field (keep whole), or on the way to listed fields (project its value with
 * `*at`). Numeric components under a partial node are array positions. */
typedef enum { CC_PROJ_OUT, CC_PROJ_WHOLE, CC_PROJ_PARTIAL } cc_proj_fit_t;
cc_proj_fit_t cc_proj_path_fit(const cc_proj_node_t *root, const char *path,
                               const cc_proj_node_t **at);
/* Appends `value` as `key` projected through the partial node `node` (nothing for scalars). */
void cc_proj_append_value(const cc_proj_node_t *node, const char *key, bson_iter_t *value,
                          bson_t *out);

struct cc_scope {
    cc_ns_pattern_t pattern;
    bson_t *filter;         /* NULL: every row */
    cc_filter_t *matcher;   /* compiled `filter` */
    cc_proj_node_t *fields; /* NULL: every field */
    char *fingerprint;      /* the claim's value for it, canonical JSON: equal ones show alike */
};

struct cc_grant {
    cc_scope_t *scopes;
    size_t count;
    int64_t expires_at_s;
    char *subject;
    bool anonymous;
};

/* Strict RFC 4648 section 5 without padding. `*out` is NUL-terminated for convenience. */
bool cc_b64url_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);

/* Reads at most `max_bytes`; a longer file is an error. `*data` is NUL-terminated. */
bool cc_auth_read_file(const char *path, size_t max_bytes, char **data, size_t *len,
                       bson_error_t *error);

#endif
