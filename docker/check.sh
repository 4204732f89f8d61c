#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What can be checked of docker/Dockerfile without a container engine: its
# build stage installs exactly the Debian packages of scripts/setup, with the
# same apt-get flags, and configures CMake with the flags of
# `scripts/build release`. Prints each difference; exit 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

words() { tr -s ' \\\n' '\n' | grep -v '^$' | sort; }

# scripts/setup: the words of its packages=( ... ) array.
setup=$(sed -n '/^packages=(/,/)/p' scripts/setup | sed 's/packages=(//; s/)//' | words)
# Dockerfile: the first apt-get install of the build stage, up to its `&&`.
docker=$(sed -n '/AS build/,/^FROM/p' docker/Dockerfile |
    sed -n '/apt-get install/,/&&/p' | sed '1s/.*--no-install-recommends//; $s/&&.*//' | words)

status=0
if [[ "$setup" != "$docker" ]]; then
    echo "check: the Dockerfile's build packages differ from scripts/setup (< setup, > Dockerfile):"
    diff <(echo "$setup") <(echo "$docker") | grep '^[<>]' || true
    status=1
fi
flags='apt-get install -y -qq --no-install-recommends'
for f in scripts/setup docker/Dockerfile; do
    grep -q -- "$flags" "$f" || { echo "check: $f does not run \"$flags\""; status=1; }
done
for flag in -DCC_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo; do
    for f in scripts/build docker/Dockerfile; do
        grep -q -- "$flag" "$f" || { echo "check: $f does not pass $flag"; status=1; }
    done
done
((status == 0)) && echo "check: docker/Dockerfile mirrors scripts/setup and scripts/build"
exit "$status"
