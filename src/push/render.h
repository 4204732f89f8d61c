/* SPDX-License-Identifier: Apache-2.0 */
/* push/render (pure layer): the renderings of one event, made once and
 * cached on the event for every subscriber that gets the same bytes. A
 * view is the event as one kind of holder may see it: as captured (no
 * scope), or through a token's scope (rows decided and fields projected
 * once per distinct scope, found by its fingerprint, never once per
 * subscriber). Each view renders each wire form at most once into a shared
 * cc_buf_t. Push thread only. Calls encode, buf, libbson and auth's scope
 * functions. */
#ifndef CC_PUSH_RENDER_H
#define CC_PUSH_RENDER_H

#include "buf.h"

#include "changecast/auth.h"
#include "changecast/event.h"

typedef enum cc_form {
    CC_FORM_CHANGE,         /* event: change, the view as it is */
    CC_FORM_CHANGE_DEFAULT, /* the same without fullDocument on updates (fullDocument=default) */
    CC_FORM_LEAVE,          /* event: leave (a live query's row went out of its view) */
    CC_FORM_UPSERT,         /* format=docs: {_id, doc} with the post-image */
    CC_FORM_DELETE,         /* format=docs: {_id} */
    CC_FORMS
} cc_form_t;

typedef enum cc_wire { CC_WIRE_SSE, CC_WIRE_WS, CC_WIRES } cc_wire_t;

typedef struct cc_view {
    const char *fingerprint;  /* NULL: the event as captured */
    cc_scope_event_t verdict; /* HIDDEN: the holder may not learn of it */
    bson_t doc;               /* what subscriber filters run on */
    char *json;               /* the view as JSON (owned, except the captured one's) */
    size_t json_len;
    char *json_default; /* without fullDocument, made on first use */
    size_t json_default_len;
    cc_buf_t *forms[CC_WIRES][CC_FORMS];
    struct cc_view *next;
} cc_view_t;

/* The view of `event` for holders of `scope` (NULL: unrestricted). */
cc_view_t *cc_render_view(cc_event_t *event, const cc_scope_t *scope);

/* The view in one wire form: on SSE a whole event (id, event, data), on
 * WebSocket the body after a subscription's head (`"type":...}`). The
 * caller takes a reference. NULL for UPSERT when the event has no post-
 * image a holder may see. */
cc_buf_t *cc_render_form(cc_event_t *event, cc_view_t *view, cc_wire_t wire, cc_form_t form);

/* A format=docs state: upsert {_id, doc} (doc_json, or NULL for the
 * post-image) or delete {_id}; with a token, the position it brings the
 * subscription to (an SSE id; a "token" field on WebSocket). Shared, via
 * cc_render_form, only without doc_json and token. */
cc_buf_t *cc_render_state(cc_event_t *event, cc_wire_t wire, bool upsert, const char *doc_json,
                          const char *token);

/* The view's JSON in the form's shape (CHANGE_DEFAULT strips fullDocument
 * from updates). */
const char *cc_render_json(cc_view_t *view, cc_event_t *event, cc_form_t form, size_t *len);

#endif
