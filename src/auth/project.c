/* SPDX-License-Identifier: Apache-2.0 */
/* auth/project: a claim's `fields` as a tree, and documents projected through it the way a find
 * projection of inclusions does: `_id` always, a listed field whole, a dotted path into
 * subdocuments and into each document of an array (scalars where a path needs a document are
 * left out, as MongoDB leaves them out). Also tells where a dotted path of an update
 * description falls in the tree. Calls libbson only. */
#include "auth_internal.h"

#include <ctype.h>
#include <string.h>

enum { MAX_FIELDS = 1000, MAX_FIELD_BYTES = 1024 };

static void node_clear(cc_proj_node_t *node)
{
    for (size_t i = 0; i < node->count; i++) {
        node_clear(&node->children[i]);
    }
    bson_free(node->children);
    bson_free(node->name);
    node->children = NULL;
    node->name = NULL;
    node->count = 0;
}

void cc_proj_destroy(cc_proj_node_t *root)
{
    if (root) {
        node_clear(root);
        bson_free(root);
    }
}

const cc_proj_node_t *cc_proj_child(const cc_proj_node_t *node, const char *name, size_t len)
{
    for (size_t i = 0; i < node->count; i++) {
        if (strlen(node->children[i].name) == len &&
            memcmp(node->children[i].name, name, len) == 0) {
            return &node->children[i];
        }
    }
    return NULL;
}

static void insert_path(cc_proj_node_t *root, const char *path)
{
    cc_proj_node_t *node = root;
    const char *start = path;
    for (;;) {
        const char *dot = strchr(start, '.');
        size_t len = dot ? (size_t)(dot - start) : strlen(start);
        cc_proj_node_t *child = (cc_proj_node_t *)cc_proj_child(node, start, len);
        if (!child) {
            node->children = bson_realloc(node->children, (node->count + 1) * sizeof *child);
            child = &node->children[node->count++];
            memset(child, 0, sizeof *child);
            child->name = bson_strndup(start, len);
        }
        if (child->whole) {
            return; /* "a" already listed: "a.b" adds nothing */
        }
        if (!dot) {
            /* "a" after "a.b": the whole field wins. */
            char *name = child->name;
            child->name = NULL;
            node_clear(child);
            child->name = name;
            child->whole = true;
            return;
        }
        node = child;
        start = dot + 1;
    }
}

static bool valid_path(const char *path, size_t len)
{
    if (len == 0 || len > MAX_FIELD_BYTES || strlen(path) != len) {
        return false;
    }
    const char *component = path;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || path[i] == '.') {
            if (path + i == component || *component == '$') {
                return false; /* empty component, or an operator where a name belongs */
            }
            component = path + i + 1;
        }
    }
    return true;
}

cc_proj_node_t *cc_proj_build(bson_iter_t *fields, const char *ns, bson_error_t *error)
{
    bson_iter_t it;
    if (!BSON_ITER_HOLDS_ARRAY(fields) || !bson_iter_recurse(fields, &it)) {
        cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID,
                          "ns \"%s\": fields must be an array of field names", ns);
        return NULL;
    }
    cc_proj_node_t *root = bson_malloc0(sizeof *root);
    size_t n = 0;
    while (bson_iter_next(&it)) {
        uint32_t len = 0;
        const char *path = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, &len) : NULL;
        if (!path || !valid_path(path, len) || ++n > MAX_FIELDS) {
            cc_auth_set_error(error, CC_AUTH_CLAIM_INVALID,
                              "ns \"%s\": fields[%s] must be a field name or dotted path "
                              "(\"status\", \"address.city\"), at most %d of them",
                              ns, bson_iter_key(&it), MAX_FIELDS);
            cc_proj_destroy(root);
            return NULL;
        }
        if (strcmp(path, "_id") != 0 && strncmp(path, "_id.", 4) != 0) {
            insert_path(root, path); /* _id is always kept whole */
        }
    }
    return root;
}

static void append_array(const cc_proj_node_t *node, bson_iter_t *iter, bson_t *out);

/* One value under a node that is not whole: documents and arrays are projected, other values
 * have nothing the node names and are left out. */
static void append_partial(const cc_proj_node_t *node, const char *key, bson_iter_t *value,
                           bson_t *out)
{
    bson_iter_t child;
    bson_t sub;
    if (BSON_ITER_HOLDS_DOCUMENT(value) && bson_iter_recurse(value, &child)) {
        bson_append_document_begin(out, key, -1, &sub);
        cc_proj_append(node, &child, &sub, false);
        bson_append_document_end(out, &sub);
    } else if (BSON_ITER_HOLDS_ARRAY(value) && bson_iter_recurse(value, &child)) {
        bson_append_array_begin(out, key, -1, &sub);
        append_array(node, &child, &sub);
        bson_append_array_end(out, &sub);
    }
}

static void append_array(const cc_proj_node_t *node, bson_iter_t *iter, bson_t *out)
{
    uint32_t index = 0;
    while (bson_iter_next(iter)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(iter) && !BSON_ITER_HOLDS_ARRAY(iter)) {
            continue;
        }
        char buf[16];
        const char *key;
        bson_uint32_to_string(index++, &key, buf, sizeof buf);
        append_partial(node, key, iter, out);
    }
}

void cc_proj_append(const cc_proj_node_t *node, bson_iter_t *iter, bson_t *out, bool keep_id)
{
    while (bson_iter_next(iter)) {
        uint32_t len = bson_iter_key_len(iter);
        const char *key = bson_iter_key(iter);
        if (keep_id && strcmp(key, "_id") == 0) {
            bson_append_iter(out, NULL, -1, iter);
            continue;
        }
        const cc_proj_node_t *child = cc_proj_child(node, key, len);
        if (!child) {
            continue;
        }
        if (child->whole) {
            bson_append_iter(out, NULL, -1, iter);
        } else {
            append_partial(child, key, iter, out);
        }
    }
}

void cc_scope_project(const cc_scope_t *scope, const bson_t *doc, bson_t *out)
{
    bson_init(out);
    if (!scope->fields) {
        bson_concat(out, doc);
        return;
    }
    bson_iter_t it;
    if (bson_iter_init(&it, doc)) {
        cc_proj_append(scope->fields, &it, out, true);
    }
}

/* Whether a component is an array index: digits only. */
static bool is_index(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return len > 0;
}

cc_proj_fit_t cc_proj_path_fit(const cc_proj_node_t *root, const char *path,
                               const cc_proj_node_t **at)
{
    const cc_proj_node_t *node = root;
    const char *start = path;
    for (;;) {
        const char *dot = strchr(start, '.');
        size_t len = dot ? (size_t)(dot - start) : strlen(start);
        const cc_proj_node_t *child = cc_proj_child(node, start, len);
        if (!child && node == root && len == 3 && memcmp(start, "_id", 3) == 0) {
            return CC_PROJ_WHOLE;
        }
        if (child && child->whole) {
            return CC_PROJ_WHOLE;
        }
        if (child) {
            node = child;
        } else if (node == root || !is_index(start, len)) {
            return CC_PROJ_OUT;
        }
        /* else an array position under a partial node: its element is projected by the node */
        if (!dot) {
            *at = node;
            return CC_PROJ_PARTIAL;
        }
        start = dot + 1;
    }
}

void cc_proj_append_value(const cc_proj_node_t *node, const char *key, bson_iter_t *value,
                          bson_t *out)
{
    append_partial(node, key, value, out);
}

static void append_paths(const cc_proj_node_t *node, const char *prefix, bson_t *out)
{
    for (size_t i = 0; i < node->count; i++) {
        const cc_proj_node_t *child = &node->children[i];
        char *path =
            *prefix ? bson_strdup_printf("%s.%s", prefix, child->name) : bson_strdup(child->name);
        if (child->whole) {
            BSON_APPEND_INT32(out, path, 1);
        } else {
            append_paths(child, path, out);
        }
        bson_free(path);
    }
}

bool cc_scope_find_projection(const cc_scope_t *scope, bson_t *out)
{
    bson_init(out);
    if (!scope->fields) {
        return false;
    }
    BSON_APPEND_INT32(out, "_id", 1);
    append_paths(scope->fields, "", out);
    return true;
}
