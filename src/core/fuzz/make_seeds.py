#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the binary seeds of the core fuzz targets: corpus/event/ (a resume
token, a NUL byte, then a change event as BSON elements without length prefix
and final NUL). The config and expose seeds are plain text files. Run it again
after changing it; the files are committed. See docs/fuzzing.md."""
import os

from bson import Int64, Timestamp, encode

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "event")
TOKEN = "8265A1B2C3000000012B022C0100296E5A1004"
EVENTS = {
    "insert": {"_id": {"_data": TOKEN}, "operationType": "insert",
               "clusterTime": Timestamp(1700000000, 1), "ns": {"db": "shop", "coll": "orders"},
               "documentKey": {"_id": 1}, "fullDocument": {"_id": 1, "n": Int64(2)}},
    "update": {"_id": {"_data": TOKEN.lower()}, "operationType": "update",
               "ns": {"db": "shop", "coll": "orders"}, "documentKey": {"_id": 1},
               "updateDescription": {"updatedFields": {"n": 3}, "removedFields": []},
               "fullDocument": {"_id": 1, "n": 3}},
    "drop-database": {"_id": {"_data": TOKEN}, "operationType": "dropDatabase",
                      "ns": {"db": "shop"}},
    "invalidate": {"_id": {"_data": TOKEN}, "operationType": "invalidate"},
    "no-token": {"operationType": "insert", "ns": {"db": "a", "coll": "b"}},
}
os.makedirs(OUT, exist_ok=True)
for name, event in EVENTS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(TOKEN.encode() + b"\x00" + encode(event)[4:-1])
for name, token in [("token-lower", "82ab01"), ("token-odd", "8"), ("token-not-hex", "82zz")]:
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(token.encode())
