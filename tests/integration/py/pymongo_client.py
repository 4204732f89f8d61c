# SPDX-License-Identifier: Apache-2.0
# PyMongo 3.11 (Debian's python3-pymongo) as an application would use it,
# through changecast. Prints one JSON line per check; run by pymongo.test.js
# with /usr/bin/python3.
import json
import sys

import pymongo
from pymongo.cursor import CursorType
from pymongo.errors import DuplicateKeyError, InvalidOperation


def report(name, value):
    print(json.dumps({name: value}), flush=True)


def main(uri):
    client = pymongo.MongoClient(uri, appname="it-pymongo", serverSelectionTimeoutMS=10000)
    hello = client.admin.command("ismaster")
    report("hello_msg", hello.get("msg"))
    report("hello_leaks", sorted(k for k in ("hosts", "setName", "topologyVersion", "me") if k in hello))
    # PyMongo 3.x connects directly to a single seed (topology "Single"); what
    # matters is that the one server it knows is a router.
    servers = client._topology.description.server_descriptions().values()
    report("server_types", [s.server_type_name for s in servers])

    coll = client.it_pymongo.items
    coll.drop()
    coll.insert_one({"_id": 1, "name": "widget", "qty": 5})
    coll.update_one({"_id": 1}, {"$inc": {"qty": 2}})
    report("found", coll.find_one({"_id": 1}))
    try:
        coll.insert_one({"_id": 1})
        report("duplicate", None)
    except DuplicateKeyError as err:
        report("duplicate", err.code)
    report("deleted", coll.delete_one({"_id": 1}).deleted_count)

    many = client.it_pymongo.many
    many.drop()
    many.insert_many([{"_id": i} for i in range(300)])
    ids = [d["_id"] for d in many.find(batch_size=50).sort("_id", 1)]
    report("cursor_in_order", ids == list(range(300)))

    try:
        list(many.find(cursor_type=CursorType.EXHAUST))
        report("exhaust", "allowed")
    except InvalidOperation as err:
        report("exhaust", str(err))
    client.close()


if __name__ == "__main__":
    main(sys.argv[1])
