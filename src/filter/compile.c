/* SPDX-License-Identifier: Apache-2.0 */
/* filter/compile: turns a query document into the node tree match.c evaluates, rejecting what a
 * subscriber filter does not support ($where, $expr, $text, geo and bitwise operators, ...) with
 * a message naming the operator or path, never ignoring it. Parsing rules follow the server's
 * MatchExpressionParser as documented in the MongoDB manual ("Query and Projection Operators").
 * Calls libbson, node.c, operands.c and regex.c. */
#include "filter_internal.h"

#include <string.h>

static void node_add(cc_node_t *parent, cc_node_t *child)
{
    parent->children =
        bson_realloc(parent->children, (parent->n_children + 1) * sizeof *parent->children);
    parent->children[parent->n_children++] = child;
}

static bool is_operator(const char *key)
{
    return key[0] == '$';
}

/* {$ref: ..., $id: ...} is a DBRef value, not an operator document. */
static bool is_dbref_key(const char *key)
{
    return !strcmp(key, "$ref") || !strcmp(key, "$id") || !strcmp(key, "$db");
}

static const char *first_key(const bson_iter_t *doc)
{
    bson_iter_t child;
    if (!bson_iter_recurse(doc, &child) || !bson_iter_next(&child))
        return NULL;
    return bson_iter_key(&child);
}

static bool is_operator_document(const bson_iter_t *value)
{
    if (!BSON_ITER_HOLDS_DOCUMENT(value))
        return false;
    const char *key = first_key(value);
    return key && is_operator(key) && !is_dbref_key(key);
}

static bool unsupported(const char *op, bson_error_t *error)
{
    bson_set_error(error, 0, 0, "unknown operator %s: not supported in subscriber filters", op);
    return false;
}

static bool too_deep(int depth, bson_error_t *error)
{
    if (depth <= CC_FILTER_MAX_DEPTH)
        return false;
    bson_set_error(error, 0, 0, "filter nests deeper than %d levels", CC_FILTER_MAX_DEPTH);
    return true;
}

static cc_node_t *compile_query(const bson_iter_t *doc, int depth, bson_error_t *error);
static bool compile_operators(cc_node_t *parent, const char *path, const bson_iter_t *ops,
                              int depth, bson_error_t *error);

/* Comparison leaves keep a private copy of their operand. */
static cc_node_t *comparison_new(cc_node_kind_t kind, const char *path, const bson_iter_t *value)
{
    cc_node_t *n = cc_node_leaf_new(kind, path);
    n->operand = bson_new();
    bson_append_iter(n->operand, "v", 1, value);
    /* "{field: null} matches documents whose field is null or missing" (MongoDB manual, Query for
     * Null or Missing Fields); $gte/$lte null include equality, so they do too. */
    n->matches_null = BSON_ITER_HOLDS_NULL(value) &&
                      (kind == CC_NODE_EQ || kind == CC_NODE_LTE || kind == CC_NODE_GTE);
    return n;
}

static cc_node_t *regex_new(const char *path, const char *pattern, const char *options,
                            bson_error_t *error)
{
    cc_regex_t *re = cc_regex_compile(pattern, options, error);
    if (!re)
        return NULL;
    cc_node_t *n = cc_node_leaf_new(CC_NODE_REGEX, path);
    n->regexes = bson_malloc(sizeof *n->regexes);
    n->regexes[0] = re;
    n->n_regexes = 1;
    return n;
}

static cc_node_t *not_new(cc_node_t *child)
{
    cc_node_t *n = cc_node_new(CC_NODE_NOT);
    node_add(n, child);
    return n;
}

/* An equality-like operand: the server refuses undefined ("cannot compare to undefined"). */
static bool check_operand(const char *op, const bson_iter_t *value, bson_error_t *error)
{
    if (BSON_ITER_HOLDS_UNDEFINED(value)) {
        bson_set_error(error, 0, 0, "%s: cannot compare to undefined", op);
        return false;
    }
    return true;
}

static cc_node_t *compile_in(const char *op, const char *path, const bson_iter_t *value,
                             bson_error_t *error)
{
    bson_iter_t it;
    if (!BSON_ITER_HOLDS_ARRAY(value) || !bson_iter_recurse(value, &it)) {
        bson_set_error(error, 0, 0, "%s needs an array", op);
        return NULL;
    }
    cc_node_t *n = cc_node_leaf_new(CC_NODE_IN, path);
    n->values = bson_new();
    uint32_t count = 0;
    while (bson_iter_next(&it)) {
        if (BSON_ITER_HOLDS_REGEX(&it)) {
            const char *options;
            const char *pattern = bson_iter_regex(&it, &options);
            cc_regex_t *re = cc_regex_compile(pattern, options, error);
            if (!re)
                goto fail;
            n->regexes = bson_realloc(n->regexes, (n->n_regexes + 1) * sizeof *n->regexes);
            n->regexes[n->n_regexes++] = re;
            continue;
        }
        if (is_operator_document(&it)) {
            bson_set_error(error, 0, 0, "%s: cannot nest %s under %s", op, first_key(&it), op);
            goto fail;
        }
        if (!check_operand(op, &it, error))
            goto fail;
        n->matches_null |= BSON_ITER_HOLDS_NULL(&it);
        char key[16];
        const char *k;
        size_t klen = bson_uint32_to_string(count++, &k, key, sizeof key);
        bson_append_iter(n->values, k, (int)klen, &it);
    }
    return n;
fail:
    cc_node_destroy(n);
    return NULL;
}

/* $regex with its sibling $options, or a BSON regex carrying its own flags. */
static cc_node_t *compile_regex(const char *path, const bson_iter_t *value, const bson_iter_t *ops,
                                bson_error_t *error)
{
    const char *options = NULL, *pattern;
    bson_iter_t opt;
    bson_iter_t scan;
    bson_iter_recurse(ops, &scan);
    if (bson_iter_find(&scan, "$options")) {
        opt = scan;
        if (!BSON_ITER_HOLDS_UTF8(&opt)) {
            bson_set_error(error, 0, 0, "$options has to be a string");
            return NULL;
        }
        options = bson_iter_utf8(&opt, NULL);
    }
    if (BSON_ITER_HOLDS_REGEX(value)) {
        const char *flags;
        pattern = bson_iter_regex(value, &flags);
        if (options && flags[0]) {
            bson_set_error(error, 0, 0, "$regex: options set in both $regex and $options");
            return NULL;
        }
        if (!options)
            options = flags;
    } else if (BSON_ITER_HOLDS_UTF8(value)) {
        uint32_t len;
        pattern = bson_iter_utf8(value, &len);
        if (strlen(pattern) != len) {
            bson_set_error(error, 0, 0, "$regex: pattern contains a null byte");
            return NULL;
        }
    } else {
        bson_set_error(error, 0, 0, "$regex has to be a string");
        return NULL;
    }
    return regex_new(path, pattern, options ? options : "", error);
}

static cc_node_t *compile_elem_match(const char *path, const bson_iter_t *value, int depth,
                                     bson_error_t *error)
{
    if (!BSON_ITER_HOLDS_DOCUMENT(value)) {
        bson_set_error(error, 0, 0, "$elemMatch needs an object");
        return NULL;
    }
    const char *key = first_key(value);
    /* A first key that is a field operator ($gt, $in, ...) makes the value form, applied to each
     * element; anything else (fields, $and/$or/$nor) is a query run on each element that is a
     * document ("$elemMatch (query)" in the MongoDB manual). */
    bool value_form = key && is_operator(key) && strcmp(key, "$and") && strcmp(key, "$or") &&
                      strcmp(key, "$nor") && strcmp(key, "$comment") && !is_dbref_key(key);
    if (value_form) {
        cc_node_t *n = cc_node_leaf_new(CC_NODE_ELEM_VALUE, path);
        if (!compile_operators(n, NULL, value, depth + 1, error)) {
            cc_node_destroy(n);
            return NULL;
        }
        return n;
    }
    cc_node_t *query = compile_query(value, depth + 1, error);
    if (!query)
        return NULL;
    cc_node_t *n = cc_node_leaf_new(CC_NODE_ELEM_OBJECT, path);
    node_add(n, query);
    return n;
}

static bool compile_all(cc_node_t *parent, const char *path, const bson_iter_t *value, int depth,
                        bson_error_t *error)
{
    bson_iter_t it;
    if (!BSON_ITER_HOLDS_ARRAY(value) || !bson_iter_recurse(value, &it)) {
        bson_set_error(error, 0, 0, "$all needs an array");
        return false;
    }
    /* "$all: [a, b]" is "$and: [{f: a}, {f: b}]"; an empty $all matches nothing. */
    bson_iter_t probe = it;
    if (!bson_iter_next(&probe)) {
        node_add(parent, cc_node_new(CC_NODE_FALSE));
        return true;
    }
    const char *k0 = BSON_ITER_HOLDS_DOCUMENT(&probe) ? first_key(&probe) : NULL;
    bool elem_matches = k0 && !strcmp(k0, "$elemMatch");
    while (bson_iter_next(&it)) {
        cc_node_t *n = NULL;
        const char *k = BSON_ITER_HOLDS_DOCUMENT(&it) ? first_key(&it) : NULL;
        if (elem_matches) {
            bson_iter_t em;
            if (!k || strcmp(k, "$elemMatch") || !bson_iter_recurse(&it, &em) ||
                !bson_iter_next(&em)) {
                bson_set_error(error, 0, 0, "$all/$elemMatch has to be consistent");
                return false;
            }
            n = compile_elem_match(path, &em, depth, error);
        } else if (BSON_ITER_HOLDS_REGEX(&it)) {
            const char *options;
            const char *pattern = bson_iter_regex(&it, &options);
            n = regex_new(path, pattern, options, error);
        } else if (is_operator_document(&it)) {
            bson_set_error(error, 0, 0, "$all: no $ expressions in $all (found %s)", k);
            return false;
        } else if (check_operand("$all", &it, error)) {
            n = comparison_new(CC_NODE_EQ, path, &it);
        }
        if (!n)
            return false;
        node_add(parent, n);
    }
    return true;
}

static cc_node_t *compile_not(const char *path, const bson_iter_t *value, int depth,
                              bson_error_t *error)
{
    if (BSON_ITER_HOLDS_REGEX(value)) {
        const char *options;
        const char *pattern = bson_iter_regex(value, &options);
        cc_node_t *re = regex_new(path, pattern, options, error);
        return re ? not_new(re) : NULL;
    }
    if (!BSON_ITER_HOLDS_DOCUMENT(value)) {
        bson_set_error(error, 0, 0, "$not needs a regex or a document");
        return NULL;
    }
    const char *key = first_key(value);
    if (!key) {
        bson_set_error(error, 0, 0, "$not cannot be empty");
        return NULL;
    }
    cc_node_t *n = cc_node_new(CC_NODE_NOT);
    if (!compile_operators(n, path, value, depth + 1, error)) {
        cc_node_destroy(n);
        return NULL;
    }
    return n;
}

/* One operator of an operator document. `ops` is the whole document, for $regex/$options. */
static bool compile_operator(cc_node_t *parent, const char *path, const char *op,
                             const bson_iter_t *value, const bson_iter_t *ops, int depth,
                             bson_error_t *error)
{
    static const struct {
        const char *name;
        cc_node_kind_t kind;
    } comparisons[] = {{"$eq", CC_NODE_EQ},
                       {"$lt", CC_NODE_LT},
                       {"$lte", CC_NODE_LTE},
                       {"$gt", CC_NODE_GT},
                       {"$gte", CC_NODE_GTE}};
    cc_node_t *n = NULL;
    for (size_t i = 0; i < sizeof comparisons / sizeof comparisons[0]; i++) {
        if (!strcmp(op, comparisons[i].name)) {
            if (!check_operand(op, value, error))
                return false;
            node_add(parent, comparison_new(comparisons[i].kind, path, value));
            return true;
        }
    }
    if (!strcmp(op, "$ne")) {
        if (BSON_ITER_HOLDS_REGEX(value)) {
            bson_set_error(error, 0, 0, "$ne: can't have a regex as argument (use $not)");
            return false;
        }
        if (!check_operand(op, value, error))
            return false;
        n = not_new(comparison_new(CC_NODE_EQ, path, value));
    } else if (!strcmp(op, "$in") || !strcmp(op, "$nin")) {
        n = compile_in(op, path, value, error);
        if (n && op[1] == 'n')
            n = not_new(n);
    } else if (!strcmp(op, "$exists")) {
        n = cc_node_leaf_new(CC_NODE_EXISTS, path);
        /* Any falsy operand (false, 0, null) means $exists: false. */
        bool want = bson_iter_as_bool(value);
        if (!want)
            n = not_new(n);
    } else if (!strcmp(op, "$type")) {
        n = cc_filter_compile_type(path, value, error);
    } else if (!strcmp(op, "$size")) {
        n = cc_filter_compile_size(path, value, error);
    } else if (!strcmp(op, "$mod")) {
        n = cc_filter_compile_mod(path, value, error);
    } else if (!strcmp(op, "$regex")) {
        n = compile_regex(path, value, ops, error);
    } else if (!strcmp(op, "$options")) {
        bson_iter_t scan;
        bson_iter_recurse(ops, &scan);
        if (!bson_iter_find(&scan, "$regex")) {
            bson_set_error(error, 0, 0, "$options needs a $regex");
            return false;
        }
        return true;
    } else if (!strcmp(op, "$not")) {
        n = compile_not(path, value, depth, error);
    } else if (!strcmp(op, "$elemMatch")) {
        n = compile_elem_match(path, value, depth, error);
    } else if (!strcmp(op, "$all")) {
        return compile_all(parent, path, value, depth, error);
    } else {
        return unsupported(op, error);
    }
    if (!n)
        return false;
    node_add(parent, n);
    return true;
}

static bool compile_operators(cc_node_t *parent, const char *path, const bson_iter_t *ops,
                              int depth, bson_error_t *error)
{
    if (too_deep(depth, error))
        return false;
    bson_iter_t it;
    bson_iter_recurse(ops, &it);
    while (bson_iter_next(&it)) {
        const char *op = bson_iter_key(&it);
        if (!is_operator(op)) {
            bson_set_error(error, 0, 0,
                           "%s: unknown operator \"%s\" (an operator document holds only $ "
                           "operators)",
                           path ? path : "$elemMatch", op);
            return false;
        }
        if (!compile_operator(parent, path, op, &it, ops, depth, error))
            return false;
    }
    return true;
}

static bool compile_logical(cc_node_t *parent, const char *op, const bson_iter_t *value, int depth,
                            bson_error_t *error)
{
    cc_node_kind_t kind = !strcmp(op, "$and")  ? CC_NODE_AND
                          : !strcmp(op, "$or") ? CC_NODE_OR
                                               : CC_NODE_NOR;
    bson_iter_t it;
    if (!BSON_ITER_HOLDS_ARRAY(value) || !bson_iter_recurse(value, &it)) {
        bson_set_error(error, 0, 0, "%s argument must be an array", op);
        return false;
    }
    cc_node_t *n = cc_node_new(kind);
    while (bson_iter_next(&it)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
            bson_set_error(error, 0, 0, "%s entries need to be full objects", op);
            cc_node_destroy(n);
            return false;
        }
        cc_node_t *child = compile_query(&it, depth + 1, error);
        if (!child) {
            cc_node_destroy(n);
            return false;
        }
        node_add(n, child);
    }
    if (n->n_children == 0) {
        bson_set_error(error, 0, 0, "%s argument must be a non-empty array", op);
        cc_node_destroy(n);
        return false;
    }
    node_add(parent, n);
    return true;
}

static bool compile_field(cc_node_t *parent, const char *path, const bson_iter_t *value, int depth,
                          bson_error_t *error)
{
    if (BSON_ITER_HOLDS_REGEX(value)) {
        const char *options;
        const char *pattern = bson_iter_regex(value, &options);
        cc_node_t *n = regex_new(path, pattern, options, error);
        if (!n)
            return false;
        node_add(parent, n);
        return true;
    }
    if (is_operator_document(value))
        return compile_operators(parent, path, value, depth + 1, error);
    if (!check_operand(path, value, error))
        return false;
    node_add(parent, comparison_new(CC_NODE_EQ, path, value));
    return true;
}

/* A query document: the AND of its fields and top-level operators (implicit $and). */
static cc_node_t *compile_query(const bson_iter_t *doc, int depth, bson_error_t *error)
{
    if (too_deep(depth, error))
        return NULL;
    cc_node_t *n = cc_node_new(CC_NODE_AND);
    bson_iter_t it;
    bson_iter_recurse(doc, &it);
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        bool ok;
        if (!strcmp(key, "$and") || !strcmp(key, "$or") || !strcmp(key, "$nor"))
            ok = compile_logical(n, key, &it, depth, error);
        else if (!strcmp(key, "$comment"))
            ok = true; /* a note for logs and profilers; never affects matching */
        else if (is_operator(key))
            ok = unsupported(key, error);
        else
            ok = compile_field(n, key, &it, depth, error);
        if (!ok) {
            cc_node_destroy(n);
            return NULL;
        }
    }
    return n;
}

cc_filter_t *cc_filter_compile(const bson_t *query, bson_error_t *error)
{
    /* Wrap the query so the root and nested queries ($and entries, $elemMatch) share one path. */
    bson_t wrapper = BSON_INITIALIZER;
    bson_append_document(&wrapper, "q", 1, query);
    bson_iter_t it;
    bson_iter_init_find(&it, &wrapper, "q");
    cc_node_t *root = compile_query(&it, 1, error);
    bson_destroy(&wrapper);
    if (!root)
        return NULL;
    cc_filter_t *f = bson_malloc0(sizeof *f);
    f->root = root;
    return f;
}

void cc_filter_destroy(cc_filter_t *filter)
{
    if (!filter)
        return;
    cc_node_destroy(filter->root);
    bson_free(filter);
}

bool cc_filter_matches(const cc_filter_t *filter, const bson_t *document)
{
    return cc_node_matches_document(filter->root, document);
}
