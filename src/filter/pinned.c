/* SPDX-License-Identifier: Apache-2.0 */
/* filter/pinned: finds the documentKey._id values a compiled filter pins, so push can index a
 * subscription by _id and skip it for events about other documents. Reads the node tree only;
 * calls libbson. */
#include "filter_internal.h"

#include <string.h>

static bool is_document_key_id(const cc_node_t *n)
{
    return n->n_parts == 2 && !strcmp(n->parts[0], "documentKey") && !strcmp(n->parts[1], "_id");
}

/* Values that equal only themselves (up to numeric type): null also matches a missing _id,
 * arrays match through their elements, regexes are patterns. */
static bool is_pinnable(const bson_iter_t *v)
{
    switch (bson_iter_type(v)) {
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED:
    case BSON_TYPE_ARRAY:
    case BSON_TYPE_REGEX:
        return false;
    default:
        return true;
    }
}

static void append_value(bson_t *out, uint32_t *count, const bson_iter_t *v)
{
    char key[16];
    const char *k;
    size_t len = bson_uint32_to_string((*count)++, &k, key, sizeof key);
    bson_append_iter(out, k, (int)len, v);
}

static bool pinned_in_and(const cc_node_t *and, bson_t *out)
{
    for (size_t i = 0; i < and->n_children; i++) {
        const cc_node_t *c = and->children[i];
        if (c->kind == CC_NODE_AND && pinned_in_and(c, out))
            return true;
        if (!is_document_key_id(c))
            continue;
        uint32_t count = 0;
        if (c->kind == CC_NODE_EQ) {
            bson_iter_t rhs;
            cc_node_operand(c, &rhs);
            if (!is_pinnable(&rhs))
                continue;
            append_value(out, &count, &rhs);
            return true;
        }
        if (c->kind == CC_NODE_IN && c->n_regexes == 0) {
            bson_iter_t it;
            bool all = bson_iter_init(&it, c->values);
            while (all && bson_iter_next(&it))
                all = is_pinnable(&it);
            if (!all)
                continue;
            bson_iter_init(&it, c->values);
            while (bson_iter_next(&it))
                append_value(out, &count, &it);
            return true;
        }
    }
    return false;
}

bool cc_filter_pinned_ids(const cc_filter_t *filter, bson_t *out)
{
    return pinned_in_and(filter->root, out);
}
