/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: one WebSocket client message (src/push/ws.c), as text
 * of any shape: JSON parsing, the message types, subscribe with every
 * field (ns, filter, ops, fullDocument, after, snapshot, format, sort,
 * limit), unsubscribe, auth, ping, and the limits. Each input is tried on a
 * fresh socket and then once more on a socket that already holds a
 * subscription, so unsubscribe and duplicate ids are reached too. */
#include "fuzz_push.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run(struct cc_push *push, const char *text, size_t len, bool with_subscription)
{
    cc_conn_t *conn = cc_conn_new(push, NULL, CC_CONN_WS);
    conn->grant = cc_grant_new_anonymous();
    if (with_subscription) {
        static const char first[] = "{\"type\":\"subscribe\",\"id\":\"a\",\"ns\":\"shop.orders\"}";
        cc_ws_handle_message(conn, first, sizeof first - 1);
    }
    cc_ws_handle_message(conn, text, len);
    conn->dirty = false; /* never flushed: no socket behind it */
    TAILQ_INIT(&push->dirty);
    cc_conn_free(conn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) {
        return 0; /* push.max_message_bytes refuses it before parsing */
    }
    struct cc_push *push = fuzz_push();
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    run(push, text, size, false);
    run(push, text, size, true);
    fuzz_push_settle(push);
    free(text);
    return 0;
}
