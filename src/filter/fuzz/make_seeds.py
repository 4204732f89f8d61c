#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of the filter fuzz target (corpus/filter/): a
subscriber filter as Extended JSON, a NUL byte, then a change event, either
as Extended JSON or as BSON elements (no length prefix, no final NUL). Run it
again after changing it; the files are committed. See docs/fuzzing.md."""
import json
import os

from bson import Decimal128, Int64, ObjectId, Regex, Timestamp, encode

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "filter")

INSERT = {
    "_id": {"_data": "8265A1B2C3000000012B022C0100296E5A1004"},
    "operationType": "insert", "clusterTime": {"$timestamp": {"t": 1700000000, "i": 1}},
    "ns": {"db": "shop", "coll": "orders"}, "documentKey": {"_id": 42},
    "fullDocument": {"_id": 42, "status": "paid", "total": {"$numberDecimal": "19.90"},
                     "customerId": "c42", "items": [{"sku": "a1", "qty": 2}, {"sku": "b7", "qty": 1}],
                     "tags": ["new", "gift"], "updatedAt": {"$date": "2024-01-12T10:00:00Z"}}}
UPDATE = {
    "_id": {"_data": "8265A1B2C3000000022B022C0100296E5A1004"},
    "operationType": "update", "ns": {"db": "shop", "coll": "orders"},
    "documentKey": {"_id": {"$oid": "65a1b2c3d4e5f60718293a4b"}},
    "updateDescription": {"updatedFields": {"status": "shipped", "total": 21.5},
                          "removedFields": ["coupon"], "truncatedArrays": []}}
DELETE = {"_id": {"_data": "82"}, "operationType": "delete", "ns": {"db": "chat", "coll": "m"},
          "documentKey": {"_id": None}}

FILTERS = [
    ("eq", {"fullDocument.status": "paid"}, INSERT),
    ("and-range", {"$and": [{"fullDocument.total": {"$gte": 10}},
                            {"fullDocument.total": {"$lt": {"$numberLong": "100"}}}]}, INSERT),
    ("or-in", {"$or": [{"operationType": {"$in": ["insert", "replace"]}},
                       {"updateDescription.updatedFields.status": {"$exists": True}}]}, UPDATE),
    ("nor-ne-nin", {"$nor": [{"ns.coll": {"$ne": "orders"}},
                             {"fullDocument.tags": {"$nin": ["spam", None]}}]}, INSERT),
    ("regex", {"fullDocument.customerId": {"$regex": "^c4", "$options": "i"}}, INSERT),
    ("regex-in", {"fullDocument.tags": {"$in": [{"$regularExpression":
                                                 {"pattern": "gi.t", "options": "s"}}]}}, INSERT),
    ("elemmatch", {"fullDocument.items": {"$elemMatch": {"sku": "a1", "qty": {"$gt": 1}}}}, INSERT),
    ("elemmatch-value", {"fullDocument.tags": {"$elemMatch": {"$gte": "g", "$lt": "z"}}}, INSERT),
    ("all-size", {"fullDocument.tags": {"$all": ["new"], "$size": 2}}, INSERT),
    ("type-mod", {"fullDocument._id": {"$type": ["int", "long"], "$mod": [7, 0]}}, INSERT),
    ("not", {"fullDocument.status": {"$not": {"$regex": "^canc"}}}, INSERT),
    ("pinned-id", {"documentKey._id": {"$in": [42, 43.0, {"$oid": "65a1b2c3d4e5f60718293a4b"}]}},
     UPDATE),
    ("null-missing", {"documentKey._id": None, "fullDocument": {"$exists": False}}, DELETE),
    ("dbref", {"fullDocument.ref": {"$ref": "users", "$id": 1}}, INSERT),
    ("comment", {"$comment": "why", "ns.db": "shop"}, INSERT),
    ("array-index", {"fullDocument.items.0.sku": "a1", "fullDocument.items.qty": 1}, INSERT),
]

os.makedirs(OUT, exist_ok=True)
for name, query, event in FILTERS:
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(json.dumps(query).encode() + b"\x00" + json.dumps(event).encode())

# Events as BSON, with types Extended JSON text rarely reaches.
BSON_EVENT = {
    "_id": {"_data": "8265"}, "operationType": "insert", "ns": {"db": "shop", "coll": "x"},
    "clusterTime": Timestamp(1700000000, 3),
    "fullDocument": {"_id": ObjectId("65a1b2c3d4e5f60718293a4b"), "n": Int64(7), "d": 7.0,
                     "dec": Decimal128("7"), "nan": float("nan"), "s": "seven", "b": True,
                     "r": Regex("^s", "i"), "bin": b"\x01\x02", "arr": [1, [2, 3], {"x": 4}]}}
for name, query in [("bson-numbers", {"fullDocument.n": 7}),
                    ("bson-nan", {"fullDocument.nan": {"$lte": float("nan")}}),
                    ("bson-nested-array", {"fullDocument.arr": [2, 3]})]:
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(json.dumps(query).encode() + b"\x00" + encode(BSON_EVENT)[4:-1])
