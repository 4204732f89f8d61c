/* SPDX-License-Identifier: Apache-2.0 */
/* push/gate (server layer): a plain-TCP connection's request head is read
 * ahead (MSG_PEEK) before lws sees a byte of it, and judged by head.c. A
 * head lws would cut without a word (lws 4.1 has no answer for a request
 * that outgrows its header space) gets 414, 431 or 400 with the JSON
 * error body of every other refusal, then the connection closes; a head
 * that fits is handed to lws, which reads it as if the connection had just
 * been accepted. TLS connections go to lws at once: their bytes cannot be
 * read ahead. Calls the transports (the error body, origins) and head.c. */
#ifndef CC_PUSH_GATE_H
#define CC_PUSH_GATE_H

#include "head.h"
#include "port.h"

#include <ev.h>

typedef struct cc_gate cc_gate_t;

cc_gate_t *cc_gate_new(cc_port_t *port, struct ev_loop *loop, struct lws_vhost *vhost);
void cc_gate_free(cc_gate_t *gate);
/* At LWS_CALLBACK_FILTER_NETWORK_CONNECTION: takes the accepted socket
 * (a descriptor of its own; lws closes the one it accepted, as for any
 * connection its filter refuses). */
void cc_gate_take(cc_gate_t *gate, int fd);
/* From the one-second tick: heads that did not arrive in time, and
 * answered connections whose client has had time to read. */
void cc_gate_sweep(cc_gate_t *gate, ev_tstamp now);

#endif
