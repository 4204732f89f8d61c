/* SPDX-License-Identifier: Apache-2.0 */
/* auth/event: a scope applied to one change event. The row filter is on documents, and an event
 * carries up to two of them: the post-image (fullDocument) and the pre-image
 * (fullDocumentBeforeChange, MongoDB 6.0+ with changeStreamPreAndPostImages). A holder learns
 * of an event only through an image that matches its filter, and sees only the images that
 * match: a document that enters the holder's rows arrives without its earlier state, one that
 * leaves arrives without its new state. Without a pre-image nothing says a delete or an update
 * concerned the holder's rows, so a row-filtered holder does not get it (docs/security.md).
 * Then the field list projects images, documentKey and the update description. Calls the
 * filter matcher (through the scope) and project.c. */
#include "auth_internal.h"

#include <string.h>

typedef struct drops {
    bool post;
    bool pre;
    bool update;
} drops_t;

static bool image(const bson_t *event, const char *name, bson_t *out)
{
    bson_iter_t it;
    uint32_t len;
    const uint8_t *data;
    if (!bson_iter_init_find(&it, event, name) || !BSON_ITER_HOLDS_DOCUMENT(&it)) {
        return false;
    }
    bson_iter_document(&it, &len, &data);
    return bson_init_static(out, data, len);
}

static void append_kept_paths(const cc_proj_node_t *root, const char *key, bson_iter_t *array,
                              bool entries, bson_t *out)
{
    bson_iter_t it;
    bson_t kept;
    bson_append_array_begin(out, key, -1, &kept);
    uint32_t index = 0;
    if (bson_iter_recurse(array, &it)) {
        while (bson_iter_next(&it)) {
            /* removedFields holds paths; truncatedArrays holds {field, newSize}. */
            bson_iter_t field;
            const cc_proj_node_t *at;
            const char *path = NULL;
            if (!entries && BSON_ITER_HOLDS_UTF8(&it)) {
                path = bson_iter_utf8(&it, NULL);
            } else if (entries && BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &field) &&
                       bson_iter_find(&field, "field") && BSON_ITER_HOLDS_UTF8(&field)) {
                path = bson_iter_utf8(&field, NULL);
            }
            if (path && cc_proj_path_fit(root, path, &at) != CC_PROJ_OUT) {
                char buf[16];
                const char *index_key;
                bson_uint32_to_string(index++, &index_key, buf, sizeof buf);
                bson_append_iter(&kept, index_key, -1, &it);
            }
        }
    }
    bson_append_array_end(out, &kept);
}

static void append_update_description(const cc_proj_node_t *root, bson_iter_t *desc, bson_t *out)
{
    bson_iter_t it, field;
    bson_t projected, sub;
    if (!bson_iter_recurse(desc, &it)) {
        return;
    }
    bson_append_document_begin(out, bson_iter_key(desc), -1, &projected);
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        bool paths_as_keys =
            strcmp(key, "updatedFields") == 0 || strcmp(key, "disambiguatedPaths") == 0;
        if (paths_as_keys && BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &field)) {
            bool values = strcmp(key, "updatedFields") == 0;
            bson_append_document_begin(&projected, key, -1, &sub);
            while (bson_iter_next(&field)) {
                const cc_proj_node_t *at = NULL;
                cc_proj_fit_t fit = cc_proj_path_fit(root, bson_iter_key(&field), &at);
                if (fit == CC_PROJ_WHOLE || (fit == CC_PROJ_PARTIAL && !values)) {
                    bson_append_iter(&sub, NULL, -1, &field);
                } else if (fit == CC_PROJ_PARTIAL) {
                    cc_proj_append_value(at, bson_iter_key(&field), &field, &sub);
                }
            }
            bson_append_document_end(&projected, &sub);
        } else if (strcmp(key, "removedFields") == 0 && BSON_ITER_HOLDS_ARRAY(&it)) {
            append_kept_paths(root, key, &it, false, &projected);
        } else if (strcmp(key, "truncatedArrays") == 0 && BSON_ITER_HOLDS_ARRAY(&it)) {
            append_kept_paths(root, key, &it, true, &projected);
        } else {
            bson_append_iter(&projected, NULL, -1, &it);
        }
    }
    bson_append_document_end(out, &projected);
}

static void project_event(const cc_scope_t *scope, const bson_t *event, drops_t drops, bson_t *out)
{
    bson_init(out);
    bson_iter_t it, child;
    if (!bson_iter_init(&it, event)) {
        return;
    }
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        bool post = strcmp(key, "fullDocument") == 0;
        bool pre = strcmp(key, "fullDocumentBeforeChange") == 0;
        bool update = strcmp(key, "updateDescription") == 0;
        if ((post && drops.post) || (pre && drops.pre) || (update && drops.update)) {
            continue;
        }
        bool document = BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &child);
        if (!scope->fields || !document) {
            bson_append_iter(out, NULL, -1, &it);
        } else if (post || pre || strcmp(key, "documentKey") == 0) {
            bson_t sub;
            bson_append_document_begin(out, key, -1, &sub);
            cc_proj_append(scope->fields, &child, &sub, true);
            bson_append_document_end(out, &sub);
        } else if (update) {
            append_update_description(scope->fields, &it, out);
        } else {
            bson_append_iter(out, NULL, -1, &it);
        }
    }
}

void cc_scope_project_event(const cc_scope_t *scope, const bson_t *event, bson_t *out)
{
    drops_t none = {false, false, false};
    project_event(scope, event, none, out);
}

/* Whether a value equals the one at `path` in `doc`, compared as BSON. */
static bool same_value_at(const bson_t *doc, const char *path, const bson_iter_t *value)
{
    bson_iter_t it, found;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &found)) {
        return false;
    }
    bson_t a = BSON_INITIALIZER, b = BSON_INITIALIZER;
    bson_append_iter(&a, "", 0, value);
    bson_append_iter(&b, "", 0, &found);
    bool same = bson_equal(&a, &b);
    bson_destroy(&a);
    bson_destroy(&b);
    return same;
}

/* Whether an update's description agrees with the post-image: every
 * updated field has that value in it, every removed field is absent. A
 * post-image from updateLookup is read later than the update; when a later
 * change has moved on, the description shows values the document had at
 * the update's time, perhaps while it was outside the holder's rows. */
static bool description_agrees(const bson_t *event, const bson_t *post)
{
    bson_iter_t it, list;
    if (bson_iter_init(&it, event) &&
        bson_iter_find_descendant(&it, "updateDescription.updatedFields", &list) &&
        bson_iter_recurse(&list, &it)) {
        while (bson_iter_next(&it)) {
            if (!same_value_at(post, bson_iter_key(&it), &it)) {
                return false;
            }
        }
    }
    if (bson_iter_init(&it, event) &&
        bson_iter_find_descendant(&it, "updateDescription.removedFields", &list) &&
        bson_iter_recurse(&list, &it)) {
        while (bson_iter_next(&it)) {
            bson_iter_t probe, found;
            if (BSON_ITER_HOLDS_UTF8(&it) && bson_iter_init(&probe, post) &&
                bson_iter_find_descendant(&probe, bson_iter_utf8(&it, NULL), &found)) {
                return false;
            }
        }
    }
    return true;
}

static bool is_op(const char *op, const char *name)
{
    return op && strcmp(op, name) == 0;
}

/* The decision, and which images the holder may not see. */
static cc_scope_event_t decide(const cc_scope_t *scope, const bson_t *event, drops_t *drops)
{
    *drops = (drops_t){false, false, false};
    if (!scope->matcher) {
        return CC_SCOPE_EVENT_VISIBLE;
    }
    bson_iter_t it;
    const char *op = NULL;
    if (bson_iter_init_find(&it, event, "operationType") && BSON_ITER_HOLDS_UTF8(&it)) {
        op = bson_iter_utf8(&it, NULL);
    }
    bson_t post, pre;
    bool post_in = image(event, "fullDocument", &post) && cc_filter_matches(scope->matcher, &post);
    bool pre_in =
        image(event, "fullDocumentBeforeChange", &pre) && cc_filter_matches(scope->matcher, &pre);
    drops->post = !post_in;
    drops->pre = !pre_in;
    if (is_op(op, "insert") || is_op(op, "update") || is_op(op, "replace")) {
        if (post_in) {
            /* Unless the document was in the rows before, the description
             * must not say more than the post-image shows. */
            drops->update = is_op(op, "update") && !pre_in && !description_agrees(event, &post);
            return CC_SCOPE_EVENT_VISIBLE;
        }
        drops->update = true; /* the new values belong to a row the holder does not have */
        return pre_in ? CC_SCOPE_EVENT_LEFT : CC_SCOPE_EVENT_HIDDEN;
    }
    if (is_op(op, "delete")) {
        return pre_in ? CC_SCOPE_EVENT_VISIBLE : CC_SCOPE_EVENT_HIDDEN;
    }
    /* Collection-level events (drop, rename, dropDatabase, invalidate) name no row; an unknown
     * event that does carry one is not guessed at. */
    if (bson_has_field(event, "documentKey") || bson_has_field(event, "fullDocument") ||
        bson_has_field(event, "fullDocumentBeforeChange") ||
        bson_has_field(event, "updateDescription")) {
        return CC_SCOPE_EVENT_HIDDEN;
    }
    return CC_SCOPE_EVENT_VISIBLE;
}

cc_scope_event_t cc_scope_classify_event(const cc_scope_t *scope, const bson_t *event)
{
    drops_t drops;
    return decide(scope, event, &drops);
}

cc_scope_event_t cc_scope_apply_event(const cc_scope_t *scope, const bson_t *event, bson_t *out)
{
    drops_t drops;
    cc_scope_event_t decision = decide(scope, event, &drops);
    if (decision == CC_SCOPE_EVENT_HIDDEN) {
        bson_init(out);
        return decision;
    }
    project_event(scope, event, drops, out);
    return decision;
}
