/* SPDX-License-Identifier: Apache-2.0 */
/* core/expose: the namespaces an operator lets the push port serve
 * ("shop.orders, shop.products, chat.*"). Capture turns them into its
 * server-side $match; push checks every subscription against them. */
#ifndef CHANGECAST_EXPOSE_H
#define CHANGECAST_EXPOSE_H

#include <bson/bson.h>
#include <stdbool.h>

typedef struct cc_ns_pattern {
    char *db;
    char *coll; /* NULL: every collection of db ("db.*"); in db's block */
} cc_ns_pattern_t;

typedef struct cc_expose {
    cc_ns_pattern_t *patterns;
    size_t count;
} cc_expose_t;

/* Parses one namespace pattern, "db.coll" or "db.*". */
bool cc_ns_pattern_parse(const char *text, cc_ns_pattern_t *out, bson_error_t *error);
void cc_ns_pattern_destroy(cc_ns_pattern_t *pattern);

/* A comma-separated list; empty exposes nothing. */
bool cc_expose_parse(const char *text, cc_expose_t *out, bson_error_t *error);
void cc_expose_destroy(cc_expose_t *expose);

/* Whether a requested pattern lies within what is exposed. */
bool cc_expose_covers(const cc_expose_t *expose, const cc_ns_pattern_t *requested);

/* Whether an event's namespace matches a pattern. */
bool cc_ns_pattern_matches(const cc_ns_pattern_t *pattern, const char *db, const char *coll);

/* {$match: {$or: [{"ns.db": d, "ns.coll": c}, {"ns.db": d}, ...]}} */
void cc_expose_append_match_stage(const cc_expose_t *expose, bson_t *pipeline_array,
                                  const char *key);

#endif
