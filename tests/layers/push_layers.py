#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Checks that no file of src/push/ calls a function defined in a file of a
layer above it (docs/architecture.md), from the symbols of the compiled
objects: for each object, the names it needs (nm -u) that another push
object defines. Prints each file's calls into the other push files, then
every upward call, and fails on one, or on a file no layer names.

    push_layers.py OBJECT...
"""
import os
import subprocess
import sys

LAYERS = [
    ("pure", "assets buf encode render subscription sub_live pending position verdict sse_request head wsframe deflate"),
    ("queue", "conn"),
    ("rules", "emit deliver livequery"),
    ("ordering", "txn fanout"),
    ("transports", "access hangup reply http sse ws_read ws"),
    ("server", "gate server"),
]
LAYER_OF = {name: i for i, (_, names) in enumerate(LAYERS) for name in names.split()}


def stem(path):
    return os.path.basename(path).split(".")[0]


def symbols(obj, *flags):
    out = subprocess.run(["nm", "-P", *flags, obj], check=True, capture_output=True, text=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def main(objects):
    unknown = sorted(stem(o) for o in objects if stem(o) not in LAYER_OF)
    defined = {}
    for obj in objects:
        for name in symbols(obj, "--defined-only", "--extern-only"):
            defined[name] = stem(obj)
    upward = []
    for obj in sorted(objects, key=lambda o: (LAYER_OF.get(stem(o), -1), stem(o))):
        caller = stem(obj)
        calls = {}
        for name in symbols(obj, "-u"):
            callee = defined.get(name)
            if callee and callee != caller:
                calls.setdefault(callee, []).append(name)
        layer = LAYERS[LAYER_OF[caller]][0] if caller in LAYER_OF else "?"
        print(f"{caller}.c ({layer})")
        for callee in sorted(calls, key=lambda c: (LAYER_OF.get(c, -1), c)):
            print(f"  -> {callee}.c: {', '.join(sorted(calls[callee]))}")
            if caller in LAYER_OF and callee in LAYER_OF and LAYER_OF[callee] > LAYER_OF[caller]:
                upward.append(f"{caller}.c ({layer}) calls up into {callee}.c "
                              f"({LAYERS[LAYER_OF[callee]][0]}): {', '.join(sorted(calls[callee]))}")
    for line in upward:
        print("UPWARD: " + line)
    for name in unknown:
        print(f"UNPLACED: {name}.c is in no layer of {sys.argv[0]}")
    if upward or unknown:
        return 1
    print(f"ok: {len(objects)} files, no call goes to a layer above")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
