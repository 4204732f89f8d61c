/* SPDX-License-Identifier: Apache-2.0 */
/* filter/node: making and freeing the nodes of a compiled filter, for
 * compile.c and operands.c above it. Calls libbson and regex.c. */
#include "filter_internal.h"

cc_node_t *cc_node_new(cc_node_kind_t kind)
{
    cc_node_t *n = bson_malloc0(sizeof *n);
    n->kind = kind;
    return n;
}

void cc_node_destroy(cc_node_t *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->n_children; i++)
        cc_node_destroy(node->children[i]);
    for (size_t i = 0; i < node->n_regexes; i++)
        cc_regex_destroy(node->regexes[i]);
    bson_free(node->children);
    bson_free(node->regexes);
    bson_free(node->parts);
    bson_free(node->path);
    if (node->operand)
        bson_destroy(node->operand);
    if (node->values)
        bson_destroy(node->values);
    bson_free(node);
}

cc_node_t *cc_node_leaf_new(cc_node_kind_t kind, const char *path)
{
    cc_node_t *n = cc_node_new(kind);
    if (!path)
        return n;
    n->path = bson_strdup(path);
    n->n_parts = 1;
    for (const char *p = path; *p; p++)
        n->n_parts += *p == '.';
    n->parts = bson_malloc(n->n_parts * sizeof *n->parts);
    size_t i = 0;
    n->parts[i++] = n->path;
    for (char *p = n->path; *p; p++) {
        if (*p == '.') {
            *p = '\0';
            n->parts[i++] = p + 1;
        }
    }
    return n;
}
