/* SPDX-License-Identifier: Apache-2.0 */
/* filter/internal: the compiled node tree shared by compile.c (which builds it), match.c (which
 * evaluates it) and regex.c (the PCRE2 wrapper the regex nodes own). Nothing outside src/filter
 * includes this. */
#ifndef CHANGECAST_FILTER_INTERNAL_H
#define CHANGECAST_FILTER_INTERNAL_H

#include "changecast/filter.h"

#include <stddef.h>
#include <stdint.h>

/* MongoDB nests match expressions at most 100 deep; subscribers get less rope. */
#define CC_FILTER_MAX_DEPTH 32

typedef struct cc_regex cc_regex_t;

cc_regex_t *cc_regex_compile(const char *pattern, const char *options, bson_error_t *error);
/* True when the UTF-8 string `subject` of `len` bytes contains a match. */
bool cc_regex_matches(const cc_regex_t *re, const char *subject, size_t len);
/* True when a BSON regex value equals this one: same pattern and same flags. */
bool cc_regex_equals_value(const cc_regex_t *re, const char *pattern, const char *options);
void cc_regex_destroy(cc_regex_t *re);

/* Sort bracket of a BSON type (MongoDB's canonical type): values of different brackets are never
 * equal and never compare with $lt/$gt. */
int cc_bson_canonical_type(bson_type_t type);

typedef enum {
    CC_NODE_AND,
    CC_NODE_OR,
    CC_NODE_NOR,
    CC_NODE_NOT,   /* !(AND of children): $not, $ne, $nin, $exists:false */
    CC_NODE_FALSE, /* $all: [] */
    CC_NODE_EQ,
    CC_NODE_LT,
    CC_NODE_LTE,
    CC_NODE_GT,
    CC_NODE_GTE,
    CC_NODE_IN,
    CC_NODE_REGEX,
    CC_NODE_EXISTS,
    CC_NODE_TYPE,
    CC_NODE_SIZE,
    CC_NODE_MOD,
    CC_NODE_ELEM_OBJECT, /* $elemMatch with a query: children[0] runs on each element */
    CC_NODE_ELEM_VALUE,  /* $elemMatch with operators: path-less children on each element */
} cc_node_kind_t;

/* $type: one bit per BSON type code (1..19), plus MinKey and MaxKey. */
#define CC_TYPE_BIT_MINKEY (UINT32_C(1) << 30)
#define CC_TYPE_BIT_MAXKEY (UINT32_C(1) << 31)

typedef struct cc_node cc_node_t;
struct cc_node {
    cc_node_kind_t kind;
    /* Leaf and $elemMatch nodes under a field carry its dotted path split on '.'; nodes inside a
     * value-form $elemMatch have none (n_parts == 0) and apply to the element itself. */
    char *path;
    char **parts;
    size_t n_parts;
    /* EQ/LT/LTE/GT/GTE operand, held as {"v": operand} (read it with cc_node_operand()); IN
     * operands (regexes excepted) as an array document in `values`. */
    bson_t *operand;
    bson_t *values;
    cc_regex_t **regexes; /* IN: compiled regex operands; REGEX: regexes[0] */
    size_t n_regexes;
    bool matches_null; /* EQ null, LTE/GTE null, IN with null: a missing path matches */
    uint32_t type_mask;
    int32_t size;
    int64_t divisor;
    int64_t remainder;
    cc_node_t **children;
    size_t n_children;
};

struct cc_filter {
    cc_node_t *root; /* an AND of the top-level clauses */
};

cc_node_t *cc_node_new(cc_node_kind_t kind);
void cc_node_destroy(cc_node_t *node);
/* A leaf under the dotted `path` (NULL inside a value-form $elemMatch: it applies to the element).
 */
cc_node_t *cc_node_leaf_new(cc_node_kind_t kind, const char *path);
cc_node_t *cc_filter_compile_type(const char *path, const bson_iter_t *value, bson_error_t *error);
cc_node_t *cc_filter_compile_size(const char *path, const bson_iter_t *value, bson_error_t *error);
cc_node_t *cc_filter_compile_mod(const char *path, const bson_iter_t *value, bson_error_t *error);

/* Points `it` at a comparison node's operand. bson_iter_t asks for 128-byte alignment, which heap
 * nodes do not get, so iterators live on the stack only. */
static inline void cc_node_operand(const cc_node_t *node, bson_iter_t *it)
{
    bson_iter_init_find(it, node->operand, "v");
}
bool cc_node_matches_document(const cc_node_t *node, const bson_t *document);

#endif
