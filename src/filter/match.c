/* SPDX-License-Identifier: Apache-2.0 */
/* filter/match: evaluates a compiled node tree against a document. Owns the path walk: how a
 * dotted path reaches values through embedded documents and arrays ("Query on Embedded/Nested
 * Documents" and "Query an Array" in the MongoDB manual, and the server's BSONElementIterator):
 *   - a path that ends at an array yields each element, then the array itself;
 *   - a path that continues through an array applies the rest of the path to each element that is
 *     a document, and a numeric component also selects the element at that index; elements that
 *     are arrays are not entered implicitly, so traversal flattens one level per component;
 *   - a path that runs into a scalar or a missing field yields "missing".
 * A leaf matches when any yielded value matches. Calls compare.c, regex.c and libbson. */
#include "filter_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Called with each value the path reaches (NULL for missing); returns true to stop: matched. */
typedef bool (*visit_fn)(void *ctx, const bson_iter_t *value);

typedef struct {
    visit_fn visit;
    void *ctx;
    bool expand_leaf_array; /* false for $size and $elemMatch, which look at the array itself */
    char *const *parts;
    size_t n_parts;
} walk_t;

static bool walk_array(const walk_t *w, const bson_iter_t *array, size_t k);

static bool find_field(bson_iter_t *container, const char *key, bson_iter_t *out)
{
    while (bson_iter_next(container)) {
        if (!strcmp(bson_iter_key(container), key)) {
            *out = *container;
            return true;
        }
    }
    return false;
}

static bool visit_leaf_array(const walk_t *w, const bson_iter_t *array)
{
    bson_iter_t e;
    if (bson_iter_recurse(array, &e)) {
        while (bson_iter_next(&e)) {
            if (w->visit(w->ctx, &e))
                return true;
        }
    }
    return w->visit(w->ctx, array);
}

/* Walks parts[i..] inside the document whose fields `fields` iterates (positioned at its start). */
static bool walk_fields(const walk_t *w, bson_iter_t fields, size_t i)
{
    for (;;) {
        bson_iter_t v;
        if (!find_field(&fields, w->parts[i], &v))
            return w->visit(w->ctx, NULL);
        if (i + 1 == w->n_parts) {
            if (BSON_ITER_HOLDS_ARRAY(&v) && w->expand_leaf_array)
                return visit_leaf_array(w, &v);
            return w->visit(w->ctx, &v);
        }
        if (BSON_ITER_HOLDS_ARRAY(&v))
            return walk_array(w, &v, i + 1);
        if (!BSON_ITER_HOLDS_DOCUMENT(&v) || !bson_iter_recurse(&v, &fields))
            return w->visit(w->ctx, NULL);
        i++;
    }
}

static bool is_all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
    }
    return true;
}

/* The rest of the path, parts[k..], applied to each element of `array`. */
static bool walk_array(const walk_t *w, const bson_iter_t *array, size_t k)
{
    const char *next = w->parts[k];
    bool numeric = is_all_digits(next);
    bool last = k + 1 == w->n_parts;
    bson_iter_t e, fields;
    if (!bson_iter_recurse(array, &e))
        return false;
    while (bson_iter_next(&e)) {
        /* "a.0.b" reads both a[i]["0"]["b"] for document elements and a[0]["b"]. */
        bool at_index = numeric && !strcmp(bson_iter_key(&e), next);
        if (BSON_ITER_HOLDS_DOCUMENT(&e)) {
            if (bson_iter_recurse(&e, &fields) && walk_fields(w, fields, k))
                return true;
            if (at_index) {
                if (last ? w->visit(w->ctx, &e)
                         : (bson_iter_recurse(&e, &fields) && walk_fields(w, fields, k + 1)))
                    return true;
            }
        } else if (at_index) {
            /* An element reached by index is the value itself: an array there is not expanded. */
            if (last) {
                if (w->visit(w->ctx, &e))
                    return true;
            } else if (BSON_ITER_HOLDS_ARRAY(&e) && walk_array(w, &e, k + 1)) {
                return true;
            }
        }
    }
    return false;
}

static bool is_nan(const bson_iter_t *v)
{
    if (BSON_ITER_HOLDS_DOUBLE(v))
        return isnan(bson_iter_double(v));
    if (BSON_ITER_HOLDS_DECIMAL128(v)) {
        bson_decimal128_t d;
        char text[BSON_DECIMAL128_STRING];
        bson_iter_decimal128(v, &d);
        bson_decimal128_to_string(&d, text);
        return !strcmp(text, "NaN");
    }
    return false;
}

static bool values_equal(const bson_iter_t *v, const bson_iter_t *rhs)
{
    if (!v)
        return BSON_ITER_HOLDS_NULL(rhs);
    return cc_bson_canonical_type(bson_iter_type(v)) ==
               cc_bson_canonical_type(bson_iter_type(rhs)) &&
           cc_bson_compare_values(v, rhs) == 0;
}

static bool compare_matches(const cc_node_t *n, const bson_iter_t *v)
{
    if (!v)
        return n->matches_null;
    bson_iter_t rhs;
    cc_node_operand(n, &rhs);
    if (n->kind == CC_NODE_EQ)
        return values_equal(v, &rhs);
    bson_type_t tr = bson_iter_type(&rhs);
    /* Comparisons stay within one type bracket ($gt: 5 never matches a string), except against
     * MinKey and MaxKey, which bound every type ("Comparison/Sort Order"). */
    if (tr != BSON_TYPE_MINKEY && tr != BSON_TYPE_MAXKEY &&
        cc_bson_canonical_type(bson_iter_type(v)) != cc_bson_canonical_type(tr))
        return false;
    /* The server's matcher lets NaN equal NaN but never order against anything. */
    bool nan_v = is_nan(v), nan_r = is_nan(&rhs);
    if (nan_v || nan_r)
        return (n->kind == CC_NODE_LTE || n->kind == CC_NODE_GTE) && nan_v && nan_r;
    int c = cc_bson_compare_values(v, &rhs);
    switch (n->kind) {
    case CC_NODE_LT:
        return c < 0;
    case CC_NODE_LTE:
        return c <= 0;
    case CC_NODE_GT:
        return c > 0;
    case CC_NODE_GTE:
        return c >= 0;
    default:
        return false;
    }
}

static bool regex_matches(const cc_regex_t *re, const bson_iter_t *v)
{
    if (!v)
        return false;
    uint32_t len;
    const char *s;
    switch (bson_iter_type(v)) {
    case BSON_TYPE_UTF8:
        s = bson_iter_utf8(v, &len);
        return cc_regex_matches(re, s, len);
    case BSON_TYPE_SYMBOL:
        s = bson_iter_symbol(v, &len);
        return cc_regex_matches(re, s, len);
    case BSON_TYPE_REGEX: {
        /* A regex value matches a regex operand only when it is the same regex. */
        const char *options;
        const char *pattern = bson_iter_regex(v, &options);
        return cc_regex_equals_value(re, pattern, options);
    }
    default:
        return false;
    }
}

static bool in_matches(const cc_node_t *n, const bson_iter_t *v)
{
    bson_iter_t it;
    if (bson_iter_init(&it, n->values)) {
        while (bson_iter_next(&it)) {
            if (values_equal(v, &it))
                return true;
        }
    }
    for (size_t i = 0; i < n->n_regexes; i++) {
        if (regex_matches(n->regexes[i], v))
            return true;
    }
    return false;
}

static bool mod_matches(const cc_node_t *n, const bson_iter_t *v)
{
    if (!v || !BSON_ITER_HOLDS_NUMBER(v))
        return false;
    int64_t x;
    if (BSON_ITER_HOLDS_INT32(v) || BSON_ITER_HOLDS_INT64(v)) {
        x = bson_iter_as_int64(v);
    } else {
        /* Non-integral values are truncated toward zero; NaN and infinities never match. */
        double d = BSON_ITER_HOLDS_DOUBLE(v) ? bson_iter_double(v) : NAN;
        if (BSON_ITER_HOLDS_DECIMAL128(v)) {
            bson_decimal128_t dec;
            char text[BSON_DECIMAL128_STRING];
            bson_iter_decimal128(v, &dec);
            bson_decimal128_to_string(&dec, text);
            d = strtod(text, NULL);
        }
        if (!isfinite(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0)
            return false;
        x = (int64_t)trunc(d);
    }
    /* C's % truncates like the server's; x % -1 is 0 but INT64_MIN % -1 traps. */
    int64_t r = n->divisor == -1 ? 0 : x % n->divisor;
    return r == n->remainder;
}

static bool type_matches(const cc_node_t *n, const bson_iter_t *v)
{
    if (!v)
        return false;
    bson_type_t t = bson_iter_type(v);
    if (t == BSON_TYPE_MINKEY)
        return n->type_mask & CC_TYPE_BIT_MINKEY;
    if (t == BSON_TYPE_MAXKEY)
        return n->type_mask & CC_TYPE_BIT_MAXKEY;
    return (unsigned)t < 30 && (n->type_mask & (UINT32_C(1) << (unsigned)t));
}

static bool node_matches_value(const cc_node_t *n, const bson_iter_t *v);
static bool node_matches_fields(const cc_node_t *n, const bson_iter_t *fields);

/* $elemMatch: true when some element of the array `v` satisfies the node. */
static bool elem_match_matches(const cc_node_t *n, const bson_iter_t *v)
{
    bson_iter_t e, fields;
    if (!v || !BSON_ITER_HOLDS_ARRAY(v) || !bson_iter_recurse(v, &e))
        return false;
    while (bson_iter_next(&e)) {
        if (n->kind == CC_NODE_ELEM_OBJECT) {
            /* The query form looks only at elements that are documents (or arrays, which are
             * documents keyed by index). */
            if ((BSON_ITER_HOLDS_DOCUMENT(&e) || BSON_ITER_HOLDS_ARRAY(&e)) &&
                bson_iter_recurse(&e, &fields) && node_matches_fields(n->children[0], &fields))
                return true;
            continue;
        }
        bool all = true;
        for (size_t i = 0; i < n->n_children && all; i++)
            all = node_matches_value(n->children[i], &e);
        if (all)
            return true;
    }
    return false;
}

/* One value against a leaf; inside a value-form $elemMatch, logical nodes too. */
static bool node_matches_value(const cc_node_t *n, const bson_iter_t *v)
{
    switch (n->kind) {
    case CC_NODE_AND:
    case CC_NODE_NOT: {
        bool all = true;
        for (size_t i = 0; i < n->n_children && all; i++)
            all = node_matches_value(n->children[i], v);
        return n->kind == CC_NODE_NOT ? !all : all;
    }
    case CC_NODE_OR:
    case CC_NODE_NOR: {
        bool any = false;
        for (size_t i = 0; i < n->n_children && !any; i++)
            any = node_matches_value(n->children[i], v);
        return n->kind == CC_NODE_NOR ? !any : any;
    }
    case CC_NODE_FALSE:
        return false;
    case CC_NODE_EQ:
    case CC_NODE_LT:
    case CC_NODE_LTE:
    case CC_NODE_GT:
    case CC_NODE_GTE:
        return compare_matches(n, v);
    case CC_NODE_IN:
        return in_matches(n, v);
    case CC_NODE_REGEX:
        return regex_matches(n->regexes[0], v);
    case CC_NODE_EXISTS:
        return v != NULL;
    case CC_NODE_TYPE:
        return type_matches(n, v);
    case CC_NODE_SIZE: {
        bson_iter_t e;
        int32_t count = 0;
        if (!v || !BSON_ITER_HOLDS_ARRAY(v) || !bson_iter_recurse(v, &e))
            return false;
        while (bson_iter_next(&e))
            count++;
        return count == n->size;
    }
    case CC_NODE_MOD:
        return mod_matches(n, v);
    case CC_NODE_ELEM_OBJECT:
    case CC_NODE_ELEM_VALUE:
        return elem_match_matches(n, v);
    }
    return false;
}

typedef struct {
    const cc_node_t *node;
    size_t seen;
} leaf_ctx_t;

static bool visit_value(void *ctx, const bson_iter_t *value)
{
    leaf_ctx_t *c = ctx;
    c->seen++;
    return node_matches_value(c->node, value);
}

static bool leaf_matches_fields(const cc_node_t *n, const bson_iter_t *fields)
{
    leaf_ctx_t ctx = {n, 0};
    walk_t w = {visit_value, &ctx, true, n->parts, n->n_parts};
    w.expand_leaf_array =
        n->kind != CC_NODE_SIZE && n->kind != CC_NODE_ELEM_OBJECT && n->kind != CC_NODE_ELEM_VALUE;
    if (walk_fields(&w, *fields, 0))
        return true;
    /* A path that reaches nothing at all (it continues through an array holding no documents)
     * is missing, and missing equals null: {"a.b": null} matches {a: [1, 2]} and {a: []}
     * (jstests/core/query/null_query_semantics.js). */
    return n->matches_null && ctx.seen == 0;
}

/* A node against a document whose fields `fields` iterates. */
static bool node_matches_fields(const cc_node_t *n, const bson_iter_t *fields)
{
    switch (n->kind) {
    case CC_NODE_AND:
    case CC_NODE_NOT: {
        bool all = true;
        for (size_t i = 0; i < n->n_children && all; i++)
            all = node_matches_fields(n->children[i], fields);
        return n->kind == CC_NODE_NOT ? !all : all;
    }
    case CC_NODE_OR:
    case CC_NODE_NOR: {
        bool any = false;
        for (size_t i = 0; i < n->n_children && !any; i++)
            any = node_matches_fields(n->children[i], fields);
        return n->kind == CC_NODE_NOR ? !any : any;
    }
    case CC_NODE_FALSE:
        return false;
    default:
        return leaf_matches_fields(n, fields);
    }
}

bool cc_node_matches_document(const cc_node_t *node, const bson_t *document)
{
    bson_iter_t fields;
    if (!bson_iter_init(&fields, document))
        return false;
    return node_matches_fields(node, &fields);
}
