/* SPDX-License-Identifier: Apache-2.0 */
/* Renderings cached on the event (render.h). The first view in the list is
 * the event as captured; scoped views follow, one per fingerprint. An
 * event reaches few distinct scopes, so a list is enough. */
#include "changecast/json.h"
#include "render.h"
#include "encode.h"

#include <stdlib.h>
#include <string.h>

/* bson_t asks for 128-byte alignment, which malloc does not give. */
static cc_view_t *view_new(void)
{
    void *memory = NULL;
    if (posix_memalign(&memory, BSON_ALIGNOF(bson_t), sizeof(cc_view_t)) != 0) {
        abort();
    }
    cc_view_t *view = memory;
    memset(view, 0, sizeof *view);
    return view;
}

static void free_views(void *renderings)
{
    for (cc_view_t *view = renderings, *next; view; view = next) {
        next = view->next;
        for (int w = 0; w < CC_WIRES; w++) {
            for (int f = 0; f < CC_FORMS; f++) {
                cc_buf_unref(view->forms[w][f]);
            }
        }
        if (view->fingerprint) {
            bson_free(view->json);
            bson_destroy(&view->doc);
        }
        bson_free(view->json_default);
        free(view);
    }
}

static cc_view_t *captured_view(cc_event_t *event)
{
    if (!event->renderings) {
        cc_view_t *view = view_new();
        view->verdict = CC_SCOPE_EVENT_VISIBLE;
        /* Borrowed from the event: the same bytes, no copy. */
        bson_init_static(&view->doc, bson_get_data(&event->document), event->document.len);
        view->json = event->json;
        view->json_len = event->json_len;
        event->renderings = view;
        event->free_renderings = free_views;
    }
    return event->renderings;
}

cc_view_t *cc_render_view(cc_event_t *event, const cc_scope_t *scope)
{
    cc_view_t *first = captured_view(event);
    if (!scope) {
        return first;
    }
    const char *fingerprint = cc_scope_fingerprint(scope);
    cc_view_t *view;
    for (view = first->next; view; view = view->next) {
        if (strcmp(view->fingerprint, fingerprint) == 0) {
            return view;
        }
    }
    view = view_new();
    view->fingerprint = fingerprint; /* the scope outlives the event's delivery */
    view->verdict = cc_scope_apply_event(scope, &event->document, &view->doc);
    if (view->verdict != CC_SCOPE_EVENT_HIDDEN) {
        view->json = cc_json_document(&view->doc, &view->json_len);
    }
    view->next = first->next;
    first->next = view;
    return view;
}

const char *cc_render_json(cc_view_t *view, cc_event_t *event, cc_form_t form, size_t *len)
{
    if (form != CC_FORM_CHANGE_DEFAULT || strcmp(event->operation, "update") != 0) {
        *len = view->json_len;
        return view->json;
    }
    if (!view->fingerprint) {
        return cc_event_json_default(event, len); /* cached on the event */
    }
    if (!view->json_default) {
        view->json_default = cc_change_json_without_post_image(&view->doc, &view->json_default_len);
    }
    *len = view->json_default_len;
    return view->json_default;
}

static cc_buf_t *render_change(const cc_event_t *event, const char *json, size_t len,
                               cc_wire_t wire, const char *type)
{
    cc_span_t data = {json, len};
    if (wire == CC_WIRE_SSE) {
        return cc_encode_sse(event->token, type, &data, 1);
    }
    cc_span_t parts[] = {CC_SPAN_LIT("\"type\":\""),
                         cc_span_str(type),
                         CC_SPAN_LIT("\",\"token\":\""),
                         cc_span_str(event->token),
                         CC_SPAN_LIT("\",\"event\":"),
                         data,
                         CC_SPAN_LIT("}")};
    return cc_encode_concat(parts, 7);
}

cc_buf_t *cc_render_state(cc_event_t *event, cc_wire_t wire, bool upsert, const char *doc_json,
                          const char *token)
{
    size_t id_len, doc_len = 0;
    const char *id = cc_event_json_id(event, &id_len);
    const char *doc = NULL;
    if (upsert && doc_json) {
        doc = doc_json;
        doc_len = strlen(doc_json);
    } else if (upsert) {
        doc = cc_event_json_post_image(event, &doc_len);
    }
    bool ws = wire == CC_WIRE_WS;
    cc_span_t parts[8];
    size_t n = 0;
    if (ws) {
        parts[n++] = upsert ? CC_SPAN_LIT("\"type\":\"upsert\",\"_id\":")
                            : CC_SPAN_LIT("\"type\":\"delete\",\"_id\":");
    } else {
        parts[n++] = CC_SPAN_LIT("{\"_id\":");
    }
    parts[n++] = (cc_span_t){id, id_len};
    if (upsert) {
        parts[n++] = CC_SPAN_LIT(",\"doc\":");
        parts[n++] = (cc_span_t){doc, doc_len};
    }
    if (ws && token) {
        parts[n++] = CC_SPAN_LIT(",\"token\":\"");
        parts[n++] = cc_span_str(token);
        parts[n++] = CC_SPAN_LIT("\"");
    }
    parts[n++] = CC_SPAN_LIT("}");
    return ws ? cc_encode_concat(parts, n)
              : cc_encode_sse(token, upsert ? "upsert" : "delete", parts, n);
}

cc_buf_t *cc_render_form(cc_event_t *event, cc_view_t *view, cc_wire_t wire, cc_form_t form)
{
    cc_buf_t **slot = &view->forms[wire][form];
    if (*slot) {
        return *slot;
    }
    size_t len;
    const char *json;
    switch (form) {
    case CC_FORM_CHANGE:
    case CC_FORM_CHANGE_DEFAULT:
        json = cc_render_json(view, event, form, &len);
        *slot = json ? render_change(event, json, len, wire, "change") : NULL;
        break;
    case CC_FORM_LEAVE:
        *slot = view->json ? render_change(event, view->json, view->json_len, wire, "leave") : NULL;
        break;
    case CC_FORM_UPSERT:
    case CC_FORM_DELETE:
        *slot = cc_render_state(event, wire, form == CC_FORM_UPSERT, NULL, NULL);
        break;
    default:
        return NULL;
    }
    return *slot;
}
