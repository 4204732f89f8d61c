// SPDX-License-Identifier: Apache-2.0
// Found by fuzzing (fuzz_push_ws_message): an error reply that quotes text
// that is not UTF-8 made libbson write no JSON, and the reply code wrote
// from a NULL pointer. On SSE such text arrives through percent-encoding in
// the query (lws decodes it); WebSocket text frames are checked for UTF-8
// by lws and JSON escapes of lone surrogates are refused by the parser.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { usePush, openWs, openSse, waitUntil } = require('./push-support');

const stack = usePush();

test('a WebSocket message with a lone surrogate escape is refused as bad_message and the socket stays', async () => {
  const ws = await openWs(stack.wsUrl);
  ws.send('{"type":"subscribe","id":"b","ns":"shop.x","format":"\\udc00"}');
  const error = await waitUntil(() => ws.of('error')[0], 'an error');
  assert.equal(error.code, 'bad_message');
  assert.equal((await ws.subscribe('ok', 'shop.x')).type, 'subscribed', 'the socket goes on');
  ws.close();
});

test('an SSE request whose error quotes bytes that are not UTF-8 gets a JSON error body, and the port goes on', async () => {
  for (const query of ['format=%FF%FE', 'ops=%C3%28', 'fullDocument=%ED%B0%80', 'ns=%FF.x']) {
    const res = await openSse(`${stack.pushUrl}/v1/events?ns=shop.x&${query}`);
    assert.ok(res.status === 400 || res.status === 404, `${query}: ${res.status}`);
    assert.ok(res.json && (res.json.error || res.json.code), `${query}: a JSON body, got ${res.body}`);
  }
  const health = await fetch(`${stack.pushUrl}/healthz`);
  assert.equal(health.status, 200);
});
