/* SPDX-License-Identifier: Apache-2.0 */
/* auth: who may see what on the push port. Verifies JWTs (RFC 7519) with libjwt against keys
 * loaded once (HS256 secret file, RS256/ES256 PEM public key, or a JWKS file), turns the
 * `changecast` claim into a grant (namespaces, each with an optional row filter and field list),
 * and applies a grant to documents and change events: row decisions, field projection, the
 * combined subscriber filter. Pure logic apart from reading key files in cc_auth_new() and
 * cc_auth_reload(): no sockets, no threads. May call core (expose), filter, libjwt, OpenSSL and
 * libbson. push calls it; where the token comes from (header, query, cookie) is push's choice. */
#ifndef CHANGECAST_AUTH_H
#define CHANGECAST_AUTH_H

#include "changecast/expose.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

/* bson_error_t.domain of every error below; bson_error_t.code is a cc_auth_code_t. */
#define CC_AUTH_ERROR_DOMAIN 0x6361 /* "ca" */

typedef enum cc_auth_code {
    CC_AUTH_OK = 0,
    CC_AUTH_CONFIG,              /* cc_auth_new/reload: options or key files unusable */
    CC_AUTH_TOKEN_MISSING,       /* 401: no token where one is required (for the caller) */
    CC_AUTH_TOKEN_INVALID,       /* 401: malformed, bad signature, wrong alg/key, iss/aud, no exp */
    CC_AUTH_TOKEN_EXPIRED,       /* 401: now >= exp + leeway */
    CC_AUTH_TOKEN_NOT_YET_VALID, /* 401: now + leeway < nbf */
    CC_AUTH_CLAIM_MISSING,       /* 403: a valid token without a `changecast` claim */
    CC_AUTH_CLAIM_INVALID,       /* 403: a `changecast` claim that does not parse */
    CC_AUTH_NOT_GRANTED,         /* 403: namespace not in the claim (for the caller) */
    CC_AUTH_FIELD_NOT_GRANTED,   /* 403: a filter or sort reads a field the claim hides */
} cc_auth_code_t;

/* "token_missing", "token_invalid", "token_expired", "token_not_yet_valid", "claim_missing",
 * "claim_invalid", "not_granted", "field_not_granted", "auth_config"; "ok" for CC_AUTH_OK. */
const char *cc_auth_code_name(cc_auth_code_t code);

/* 401 for the token_* codes, 403 for claim_* and *not_granted, 500 otherwise. */
int cc_auth_code_http_status(cc_auth_code_t code);

/* Fills `error` with the domain above, `code` and the message. */
void cc_auth_set_error(bson_error_t *error, cc_auth_code_t code, const char *format, ...)
    BSON_GNUC_PRINTF(3, 4);

/* ---- Configuration and verification ---- */

typedef enum cc_auth_mode { CC_AUTH_MODE_JWT = 0, CC_AUTH_MODE_NONE } cc_auth_mode_t;

/* Plain options; strings are copied by cc_auth_new(). In jwt mode exactly one key source:
 * secret_file (HS256, at least 32 bytes, one trailing newline ignored), public_key_file (a PEM
 * public key or certificate: RSA >= 2048 bits gives RS256, EC P-256 gives ES256), or jwks_file
 * (RFC 7517 {"keys": [...]}: RSA keys from n/e, EC P-256 keys from crv/x/y, chosen by the
 * token's `kid`; other keys are skipped). NULL or "" means unset. */
typedef struct cc_auth_options {
    cc_auth_mode_t mode;
    const char *secret_file;
    const char *public_key_file;
    const char *jwks_file;
    const char *issuer;   /* required `iss` when set */
    const char *audience; /* required in `aud` (string or array) when set */
    int64_t leeway_s;     /* allowed clock skew for exp and nbf */
    const char *cookie_name;
} cc_auth_options_t;

/* mode jwt, leeway 30 s, everything else unset. */
void cc_auth_options_init(cc_auth_options_t *options);

typedef struct cc_auth cc_auth_t;
typedef struct cc_grant cc_grant_t;
typedef struct cc_scope cc_scope_t;

/* Loads the keys. NULL with CC_AUTH_CONFIG and a message naming the file and the problem. */
cc_auth_t *cc_auth_new(const cc_auth_options_t *options, bson_error_t *error);
void cc_auth_destroy(cc_auth_t *auth);

/* Reads the key files again (SIGHUP). On failure the old keys stay and false is returned. Not
 * thread-safe against cc_auth_verify(): call it on the thread that verifies. */
bool cc_auth_reload(cc_auth_t *auth, bson_error_t *error);

cc_auth_mode_t cc_auth_mode(const cc_auth_t *auth);
/* The configured cookie name, or NULL. */
const char *cc_auth_cookie_name(const cc_auth_t *auth);

/* Verifies a compact JWS at time `now_s` (Unix seconds): the header's `alg` must be the
 * configured key's (so `none` and algorithm confusion fail), the signature must verify, `exp`
 * is required, `nbf` is honoured, both with the leeway, `iss`/`aud` as configured (a token with
 * an `aud` is refused when no audience is configured: RFC 7519 section 4.1.3), then the
 * `changecast` claim is parsed into `*out` (the caller destroys it). `token` NULL or "" gives
 * CC_AUTH_TOKEN_MISSING. In mode none this returns the anonymous grant without looking at
 * `token`. On failure `*out` is NULL and error->code says which 401/403 to answer. */
bool cc_auth_verify(const cc_auth_t *auth, const char *token, int64_t now_s, cc_grant_t **out,
                    bson_error_t *error);

/* ---- Grants and scopes ---- */

/* Parses a `changecast` claim, {"ns": {"<db.coll or db.*>": {"filter": {...}, "fields":
 * [...]}, ...}}, strictly: unknown keys, bad namespaces, duplicate namespaces, a filter the
 * matcher refuses, fields that are not non-empty dotted names fail with CC_AUTH_CLAIM_INVALID.
 * `expires_at_s` is kept for cc_grant_expires_at() (0: never). */
cc_grant_t *cc_grant_from_claim(const bson_t *claim, int64_t expires_at_s, bson_error_t *error);

/* The grant for mode none: every namespace, no row filter, every field, no
 * expiry. One shared, immutable grant (cc_grant_destroy leaves it be). */
cc_grant_t *cc_grant_anonymous(void);

void cc_grant_destroy(cc_grant_t *grant);

/* `exp` of the token (Unix seconds), 0 for the anonymous grant: end streams then. */
int64_t cc_grant_expires_at(const cc_grant_t *grant);

/* The token's `sub`, or NULL: for logs. */
const char *cc_grant_subject(const cc_grant_t *grant);

/* The scope that applies to events of db.coll: an exact "db.coll" entry wins over "db.*".
 * NULL when not granted (answer 403 not_granted). Owned by the grant. */
const cc_scope_t *cc_grant_scope(const cc_grant_t *grant, const char *db, const char *coll);

/* Whether a subscription to `requested` may be opened: "db.coll" when cc_grant_scope() finds
 * it, "db.*" only when the claim has "db.*". Events are still checked one by one with
 * cc_grant_scope(), since "db.coll" may carry a narrower scope than "db.*". */
bool cc_grant_covers(const cc_grant_t *grant, const cc_ns_pattern_t *requested);

/* The claim's row filter (a query on the document), or NULL when the holder sees every row. */
const bson_t *cc_scope_row_filter(const cc_scope_t *scope);

/* What the claim says of this scope (rows and fields), as canonical JSON: two scopes with the
 * same fingerprint decide and project every event alike, so their renderings can be shared. */
const char *cc_scope_fingerprint(const cc_scope_t *scope);

/* Whether the scope projects fields (the claim has `fields`). */
bool cc_scope_has_fields(const cc_scope_t *scope);

/* True when `document` is in the scope's rows (always without a row filter). */
bool cc_scope_matches_document(const cc_scope_t *scope, const bson_t *document);

/* The filter a subscription runs: {$and: [claim, subscriber]}, so no subscriber clause ($or
 * included) can reach rows outside the claim. `path_prefix` NULL when the subscriber filter is
 * on documents (snapshots, format=docs); "fullDocument" to rewrite the claim's paths onto change
 * events (its top-level paths, and those inside $and/$or/$nor, get the prefix). Without a row
 * filter `out` is a copy of the subscriber filter; without either it is {}. `subscriber` may be
 * NULL. `out` is initialised by the call. */
void cc_scope_combine_filter(const cc_scope_t *scope, const bson_t *subscriber,
                             const char *path_prefix, bson_t *out);

/* Whether a document path (a sort key, a path of a document filter) is at or under a listed
 * field, or `_id`; always true without `fields`. */
bool cc_scope_shows_path(const cc_scope_t *scope, const char *path);

/* Refuses (CC_AUTH_FIELD_NOT_GRANTED) a subscriber filter that reads a field the projection
 * hides, which would otherwise let the holder learn hidden values from which events arrive.
 * `on_events` true for filters on change events: fullDocument.*, fullDocumentBeforeChange.*,
 * documentKey.* and updateDescription.updatedFields.* must name shown paths, the rest of the
 * update description and whole images are refused, event metadata is free. false for filters on
 * documents (snapshots, format=docs). Operators other than $and/$or/$nor/$comment at the top are
 * refused. Always true without `fields`. Check sort keys with cc_scope_shows_path(). */
bool cc_scope_check_filter(const cc_scope_t *scope, const bson_t *filter, bool on_events,
                           bson_error_t *error);

/* Copies `doc` keeping `_id` and the listed fields only (dotted paths descend into
 * subdocuments and into the documents of arrays, as a find projection does). Without `fields`
 * a plain copy. `out` is initialised by the call. */
void cc_scope_project(const cc_scope_t *scope, const bson_t *doc, bson_t *out);

/* The same projection as a find `projection` ({_id: 1, "a.b": 1, ...}), so MongoDB reads
 * snapshots already projected; false (and `out` empty) without `fields`. `out` is initialised. */
bool cc_scope_find_projection(const cc_scope_t *scope, bson_t *out);

/* Copies a change event with fullDocument, fullDocumentBeforeChange, documentKey (it can carry
 * shard key fields) and updateDescription projected: updatedFields keys, removedFields,
 * truncatedArrays and disambiguatedPaths are kept when their dotted path lies under a listed
 * field or leads to one; other event fields are copied as they are. `out` is initialised. */
void cc_scope_project_event(const cc_scope_t *scope, const bson_t *event, bson_t *out);

typedef enum cc_scope_event {
    CC_SCOPE_EVENT_HIDDEN = 0, /* the holder may not learn of this event */
    CC_SCOPE_EVENT_VISIBLE,    /* deliver, projected */
    CC_SCOPE_EVENT_LEFT,       /* the document left the holder's rows: deliver without the new
                                  contents (no fullDocument, no updateDescription) */
} cc_scope_event_t;

/* Decides a change event against the row filter (docs/security.md, "the pre-image rule"):
 * without a row filter, VISIBLE. insert, update, replace: VISIBLE when the post-image
 * (fullDocument) matches; otherwise LEFT when a pre-image (fullDocumentBeforeChange) matched,
 * else HIDDEN. delete: VISIBLE when the pre-image matched, else HIDDEN (no pre-image, no
 * delivery). Events that name no row (drop, rename, dropDatabase, invalidate) are VISIBLE; an
 * unknown operationType that carries a document is HIDDEN. Call it on the event as captured,
 * before any per-subscriber form strips the post-image. */
cc_scope_event_t cc_scope_classify_event(const cc_scope_t *scope, const bson_t *event);

/* classify + project in one: returns the decision and, unless HIDDEN, writes into `out` the
 * event to emit: projected, and with a row filter without the images that do not match it (a
 * document entering the holder's rows comes without its pre-image; one leaving, LEFT, without
 * fullDocument and updateDescription). Evaluate the subscriber's own filter on `out`, not on the
 * raw event. `out` is initialised either way (empty when HIDDEN). */
cc_scope_event_t cc_scope_apply_event(const cc_scope_t *scope, const bson_t *event, bson_t *out);

/* ---- HTTP helpers (no I/O) ---- */

/* From an Authorization header value: "Bearer <token>" (scheme case-insensitive, RFC 6750
 * section 2.1). Points into `header`. */
bool cc_auth_bearer_token(const char *header, const char **token, size_t *token_len);

/* From a Cookie header value ("a=1; b=2", RFC 6265 section 5.4): the first cookie called `name`
 * (case-sensitive), surrounding double quotes removed. Points into `header`. */
bool cc_auth_cookie_find(const char *header, const char *name, const char **value,
                         size_t *value_len);

/* ---- The `changecast token` subcommand ---- */

/* argv[0] is "token". Prints an HS256 development token on stdout; returns the exit status. */
int cc_auth_mint_main(int argc, char **argv);

#endif
