/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: one WebSocket client message (src/push/ws.c), as text
 * of any shape: JSON parsing, the message types, subscribe with every
 * field (ns, filter, ops, fullDocument, after, snapshot, format, sort,
 * limit), unsubscribe, auth, ping, and the limits. Each input is tried on a
 * fresh socket and then once more on a socket that already holds a
 * subscription, so unsubscribe and duplicate ids are reached too. */
#include "fuzz_push.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run(cc_port_t *port, const char *text, size_t len, bool with_subscription)
{
    cc_conn_t *conn = cc_conn_new(&port->conns, NULL, CC_CONN_WS, &cc_ws_ops, CC_CONN_STREAMING);
    conn->grant = cc_grant_anonymous();
    if (with_subscription) {
        static const char first[] = "{\"type\":\"subscribe\",\"id\":\"a\",\"ns\":\"shop.orders\"}";
        cc_ws_handle_message(port, conn, first, sizeof first - 1);
    }
    cc_ws_handle_message(port, conn, text, len);
    cc_port_release_conn(port, conn); /* never flushed: no socket behind it */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) {
        return 0; /* push.max_message_bytes refuses it before parsing */
    }
    cc_port_t *port = fuzz_port();
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    run(port, text, size, false);
    run(port, text, size, true);
    fuzz_port_settle(port);
    free(text);
    return 0;
}
