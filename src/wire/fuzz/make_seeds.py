#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the wire fuzz targets (frame/, handshake/ under
corpus/): real handshakes and replies as drivers and servers send them, built
with pymongo's bson (python3-pymongo, installed by scripts/setup). Run it
again after changing it; the files are committed. See docs/fuzzing.md."""
import os
import struct

from bson import Int64, ObjectId, Timestamp, encode

HERE = os.path.dirname(os.path.abspath(__file__))
OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG = 1, 2004, 2012, 2013
CHECKSUM, MORE_TO_COME, EXHAUST = 1, 2, 1 << 16

CLIENT_META = {"driver": {"name": "nodejs", "version": "6.3.0"},
               "os": {"type": "Linux", "name": "linux", "architecture": "x64"},
               "platform": "Node.js v20"}
HELLO = {"hello": 1, "helloOk": True, "client": CLIENT_META,
         "compression": ["zstd", "zlib"], "loadBalanced": True, "$db": "admin"}
OID = ObjectId("65a1b2c3d4e5f60718293a4b")
PRIMARY_REPLY = {
    "topologyVersion": {"processId": OID, "counter": Int64(6)},
    "hosts": ["127.0.0.1:27017"], "setName": "rs0", "setVersion": 1,
    "isWritablePrimary": True, "secondary": False, "primary": "127.0.0.1:27017",
    "me": "127.0.0.1:27017", "electionId": OID, "isreplicaset": False,
    "compression": ["zlib"], "maxBsonObjectSize": 16777216,
    "maxMessageSizeBytes": 48000000, "maxWriteBatchSize": 100000,
    "logicalSessionTimeoutMinutes": 30, "connectionId": 12, "minWireVersion": 0,
    "maxWireVersion": 21, "readOnly": False, "helloOk": True,
    "saslSupportedMechs": ["SCRAM-SHA-256"], "ok": 1.0,
    "$clusterTime": {"clusterTime": Timestamp(1700000000, 1)},
    "operationTime": Timestamp(1700000000, 1)}
ERROR_REPLY = {"ok": 0.0, "errmsg": "client metadata can only be set once",
               "code": 186, "codeName": "ClientMetadataCannotBeMutated"}


def header(body_len, request_id, response_to, opcode):
    return struct.pack("<iiii", 16 + body_len, request_id, response_to, opcode)


def op_msg(body, flags=0, sequences=(), request_id=1, response_to=0, body_first=True):
    sections = b"\x00" + encode(body)
    for ident, docs in sequences:
        payload = ident.encode() + b"\x00" + b"".join(encode(d) for d in docs)
        seq = b"\x01" + struct.pack("<i", 4 + len(payload)) + payload
        sections = sections + seq if body_first else seq + sections
    rest = struct.pack("<I", flags) + sections
    if flags & CHECKSUM:
        rest += b"\x00\x00\x00\x00"  # the codec never checks CRC-32C
    return header(len(rest), request_id, response_to, OP_MSG) + rest


def op_query(collection, query, selector=None, request_id=1):
    rest = struct.pack("<i", 0) + collection.encode() + b"\x00" + struct.pack("<ii", 0, -1)
    rest += encode(query) + (encode(selector) if selector is not None else b"")
    return header(len(rest), request_id, 0, OP_QUERY) + rest


def op_reply(doc, response_to=1):
    rest = struct.pack("<iqii", 8, 0, 0, 1) + encode(doc)
    return header(len(rest), 2, response_to, OP_REPLY) + rest


def op_compressed():
    rest = struct.pack("<iiB", OP_MSG, 5, 0) + b"\x05\x00\x00\x00\x00"
    return header(len(rest), 3, 0, OP_COMPRESSED) + rest


def write(folder, name, data):
    path = os.path.join(HERE, "corpus", folder)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)


# frame: one settings byte (bit 0 upstream, bit 1 small max, bits 2-7 read
# size), then a stream of frames (src/wire/fuzz/frame.c).
CLIENT, SERVER = 0, 1
write("frame", "client-hello-msg", bytes([CLIENT]) + op_msg(HELLO))
write("frame", "client-hello-then-find", bytes([CLIENT | (7 << 2)]) + op_msg(HELLO) +
      op_msg({"find": "orders", "filter": {"status": "A"}, "$db": "shop"}, request_id=2))
write("frame", "client-insert-sequence", bytes([CLIENT]) +
      op_msg({"insert": "orders", "$db": "shop"}, sequences=[("documents", [{"_id": 1}, {"_id": 2}])]))
write("frame", "client-sequence-first", bytes([CLIENT]) +
      op_msg({"isMaster": 1, "$db": "admin"}, sequences=[("documents", [{"a": 1}])],
             body_first=False))
write("frame", "client-checksum-moretocome", bytes([CLIENT | (3 << 2)]) +
      op_msg({"ismaster": 1, "$db": "admin"}, flags=CHECKSUM | MORE_TO_COME))
write("frame", "client-legacy-query", bytes([CLIENT]) +
      op_query("admin.$cmd", {"isMaster": 1, "client": CLIENT_META}))
write("frame", "client-legacy-wrapped", bytes([CLIENT]) +
      op_query("admin.$cmd", {"$query": {"ismaster": 1}, "$readPreference": {"mode": "primary"}},
               selector={"ok": 1}))
write("frame", "client-compressed", bytes([CLIENT]) + op_compressed())
write("frame", "server-hello-msg", bytes([SERVER]) + op_msg(PRIMARY_REPLY, response_to=1))
write("frame", "server-exhaust-hello", bytes([SERVER | 2 | (5 << 2)]) +
      op_msg(PRIMARY_REPLY, flags=MORE_TO_COME | EXHAUST, response_to=1))
write("frame", "server-legacy-reply", bytes([SERVER]) + op_reply(PRIMARY_REPLY))
write("frame", "server-error-reply", bytes([SERVER]) + op_msg(ERROR_REPLY, response_to=1))

# handshake: one settings byte (bit 0 first handshake, bit 1 load-balanced),
# then a document's elements without its length prefix and final NUL.
def elements(doc):
    return encode(doc)[4:-1]


write("handshake", "hello-first-lb", bytes([3]) + elements(HELLO))
write("handshake", "hello-again", bytes([0]) + elements({"isMaster": 1, "client": CLIENT_META}))
write("handshake", "primary-reply", bytes([1]) + elements(PRIMARY_REPLY))
write("handshake", "error-reply", bytes([2]) + elements(ERROR_REPLY))
write("handshake", "legacy-wrapped", bytes([1]) +
      elements({"$query": {"ismaster": 1, "client": CLIENT_META},
                "$readPreference": {"mode": "primaryPreferred"}}))
write("handshake", "legacy-query-key", bytes([0]) + elements({"query": {"hello": 1}, "orderby": {}}))
