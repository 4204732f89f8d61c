# SPDX-License-Identifier: Apache-2.0
# PyMongo (Debian's python3-pymongo) writing through changecast for a while
# with retryable writes on, one insert at a time, as an application would
# while its database link is cut and restored; run by wire-outage.test.js.
# Prints one JSON line: the _ids acknowledged, the failures, and the
# slowest operation in milliseconds.
import json
import sys
import time

import pymongo


def main(uri, seconds, first_id):
    client = pymongo.MongoClient(uri, appname="it-outage-pymongo", retryWrites=True)
    coll = client.it_outage.pymongo
    acked, failures, slowest = [], [], 0.0
    deadline = time.monotonic() + seconds
    next_id = first_id
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            coll.insert_one({"_id": next_id})
            acked.append(next_id)
        except pymongo.errors.PyMongoError as err:
            failures.append("%s: %s" % (type(err).__name__, err))
        slowest = max(slowest, (time.monotonic() - started) * 1000)
        next_id += 1
        time.sleep(0.02)
    print(json.dumps({"acked": acked, "failures": failures, "slowest_ms": slowest}), flush=True)
    client.close()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
