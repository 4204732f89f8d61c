/* SPDX-License-Identifier: Apache-2.0 */
/* auth/mint: `changecast token`, a development token minter, so that trying auth needs no code.
 * It signs HS256 with the same secret file the daemon reads (through the same loader, so the
 * same newline and length rules), and checks the claim it writes with the same parser the
 * daemon uses, so it never prints a token the daemon would refuse for its claim. Calls keys.c,
 * grant.c, the filter's Extended JSON reader and libjwt. */
#include "changecast/json.h"
#include "auth_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EXIT_USAGE = 2, MAX_TTL_S = 366 * 24 * 3600 };

static void usage(FILE *out)
{
    fputs("usage: changecast token --secret-file FILE --ns DB.COLL [--filter JSON] [--fields "
          "A,B]\n"
          "                        [--ns ...] [--ttl 1h] [--iss ISSUER] [--aud AUDIENCE]\n"
          "                        [--sub SUBJECT] [--kid KID]\n"
          "Prints an HS256 token whose changecast claim grants the namespaces given. --filter\n"
          "(a row filter, Extended JSON) and --fields (comma-separated, dotted paths allowed)\n"
          "apply to the --ns just before them. --ttl: seconds, or a number with s, m, h or d.\n",
          out);
}

static bool parse_ttl(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    int64_t unit = 1;
    if (*end && !end[1]) {
        const char *units = "smhd";
        const int64_t seconds[] = {1, 60, 3600, 86400};
        const char *u = strchr(units, *end);
        if (!u) {
            return false;
        }
        unit = seconds[u - units];
        end++;
    }
    if (errno || end == text || *end || n <= 0 || n > MAX_TTL_S / unit) {
        return false;
    }
    *out = (int64_t)n * unit;
    return true;
}

typedef struct mint {
    const char *secret_file, *iss, *aud, *sub, *kid;
    int64_t ttl_s;
    bson_t namespaces; /* {"db.coll": {filter, fields}, ...} being built */
    bson_t current;    /* the scope of the last --ns */
    char *current_ns;
} mint_t;

static void close_current(mint_t *m)
{
    if (m->current_ns) {
        BSON_APPEND_DOCUMENT(&m->namespaces, m->current_ns, &m->current);
        bson_destroy(&m->current);
        bson_free(m->current_ns);
        m->current_ns = NULL;
    }
}

static bool add_fields(bson_t *scope, const char *list)
{
    bson_t array;
    char *copy = bson_strdup(list), *save = NULL;
    uint32_t i = 0;
    BSON_APPEND_ARRAY_BEGIN(scope, "fields", &array);
    for (char *f = strtok_r(copy, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        while (*f == ' ') {
            f++;
        }
        size_t len = strlen(f);
        while (len && f[len - 1] == ' ') {
            f[--len] = '\0';
        }
        char buf[16];
        const char *key;
        bson_uint32_to_string(i++, &key, buf, sizeof buf);
        BSON_APPEND_UTF8(&array, key, f);
    }
    bson_append_array_end(scope, &array);
    bson_free(copy);
    return true;
}

/* One option with its value; false with a message on stderr. */
static bool take_option(mint_t *m, const char *name, const char *value)
{
    if (strcmp(name, "--secret-file") == 0) {
        m->secret_file = value;
    } else if (strcmp(name, "--iss") == 0) {
        m->iss = value;
    } else if (strcmp(name, "--aud") == 0) {
        m->aud = value;
    } else if (strcmp(name, "--sub") == 0) {
        m->sub = value;
    } else if (strcmp(name, "--kid") == 0) {
        m->kid = value;
    } else if (strcmp(name, "--ttl") == 0) {
        if (!parse_ttl(value, &m->ttl_s)) {
            fprintf(stderr, "changecast token: --ttl %s: use e.g. 3600, 90s, 15m, 1h or 7d\n",
                    value);
            return false;
        }
    } else if (strcmp(name, "--ns") == 0) {
        close_current(m);
        m->current_ns = bson_strdup(value);
        bson_init(&m->current);
    } else if (strcmp(name, "--filter") == 0 || strcmp(name, "--fields") == 0) {
        if (!m->current_ns) {
            fprintf(stderr, "changecast token: %s applies to a --ns given before it\n", name);
            return false;
        }
        if (strcmp(name, "--fields") == 0) {
            return add_fields(&m->current, value);
        }
        bson_t filter;
        bson_error_t error;
        if (!cc_filter_parse_json(value, strlen(value), &filter, &error)) {
            fprintf(stderr, "changecast token: --filter: %s\n", error.message);
            bson_destroy(&filter);
            return false;
        }
        BSON_APPEND_DOCUMENT(&m->current, "filter", &filter);
        bson_destroy(&filter);
    } else {
        fprintf(stderr, "changecast token: unknown option %s\n", name);
        return false;
    }
    return true;
}

static bool parse_args(mint_t *m, int argc, char **argv, bool *help)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *help = true;
            return true;
        }
        const char *eq = strchr(arg, '=');
        char name[32];
        const char *value;
        if (strncmp(arg, "--", 2) == 0 && eq && (size_t)(eq - arg) < sizeof name) {
            memcpy(name, arg, (size_t)(eq - arg));
            name[eq - arg] = '\0';
            value = eq + 1;
        } else if (i + 1 < argc && strlen(arg) < sizeof name) {
            strcpy(name, arg);
            value = argv[++i];
        } else {
            fprintf(stderr, "changecast token: %s needs a value\n", arg);
            return false;
        }
        if (!take_option(m, name, value)) {
            return false;
        }
    }
    close_current(m);
    if (!m->secret_file || bson_empty(&m->namespaces)) {
        fprintf(stderr, "changecast token: --secret-file and at least one --ns are required\n");
        return false;
    }
    return true;
}

/* The payload, checked with the daemon's own claim parser. */
static bool build_claims(const mint_t *m, int64_t now_s, bson_t *claims)
{
    bson_t claim;
    bson_init(&claim);
    BSON_APPEND_DOCUMENT(&claim, "ns", &m->namespaces);
    bson_error_t error;
    cc_grant_t *grant = cc_grant_from_claim(&claim, now_s + m->ttl_s, &error);
    if (!grant) {
        fprintf(stderr, "changecast token: %s\n", error.message);
        bson_destroy(&claim);
        return false;
    }
    cc_grant_destroy(grant);
    bson_init(claims);
    BSON_APPEND_INT64(claims, "iat", now_s);
    BSON_APPEND_INT64(claims, "exp", now_s + m->ttl_s);
    if (m->iss) {
        BSON_APPEND_UTF8(claims, "iss", m->iss);
    }
    if (m->aud) {
        BSON_APPEND_UTF8(claims, "aud", m->aud);
    }
    if (m->sub) {
        BSON_APPEND_UTF8(claims, "sub", m->sub);
    }
    BSON_APPEND_DOCUMENT(claims, "changecast", &claim);
    bson_destroy(&claim);
    return true;
}

static char *sign(const mint_t *m, const bson_t *claims, const cc_auth_key_t *key)
{
    jwt_t *jwt = NULL;
    char *json = cc_json_document(claims, NULL);
    char *token = NULL;
    if (json && jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, json) == 0 &&
        (!m->kid || jwt_add_header(jwt, "kid", m->kid) == 0) &&
        jwt_set_alg(jwt, JWT_ALG_HS256, key->material, (int)key->len) == 0) {
        token = jwt_encode_str(jwt);
    }
    jwt_free(jwt);
    bson_free(json);
    return token;
}

int cc_auth_mint_main(int argc, char **argv)
{
    mint_t m = {.ttl_s = 3600};
    bson_init(&m.namespaces);
    bool help = false;
    int status = EXIT_USAGE;
    if (!parse_args(&m, argc, argv, &help)) {
        fputs("changecast token --help shows the options\n", stderr);
        goto done;
    }
    if (help) {
        usage(stdout);
        status = EXIT_SUCCESS;
        goto done;
    }
    cc_auth_options_t options;
    cc_auth_options_init(&options);
    options.secret_file = m.secret_file;
    cc_auth_keyset_t keys;
    bson_error_t error;
    if (!cc_auth_keyset_load(&options, &keys, &error)) {
        fprintf(stderr, "changecast token: %s\n", error.message);
        goto done;
    }
    bson_t claims;
    if (build_claims(&m, (int64_t)time(NULL), &claims)) {
        char *token = sign(&m, &claims, &keys.keys[0]);
        if (token) {
            printf("%s\n", token);
            free(token); /* libjwt's allocation */
            status = EXIT_SUCCESS;
        } else {
            fprintf(stderr, "changecast token: libjwt could not sign the token\n");
            status = EXIT_FAILURE;
        }
        bson_destroy(&claims);
    }
    cc_auth_keyset_destroy(&keys);
done:
    close_current(&m);
    bson_destroy(&m.namespaces);
    return status;
}
