#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Idle-cost benchmark: memory per idle subscriber. For each round, transport
# (SSE, WebSocket) and target (changecast, nchan, the Node servers of the
# fan-out scenario), starts the target afresh, connects a first 100
# subscribers, reads the server's RSS, connects the rest (10,000 in all),
# waits 2 s, reads it again: (RSS after - RSS before) / added subscribers.
# Nothing is published. RSS is summed over the server's processes (nginx:
# master and worker); the stand-in behind changecast and node-watch is not
# counted. Then 100,000 idle subscribers for changecast and nchan (200
# source addresses, 500 from each; changecast with push.max_connections
# 200000, its default being 20,000), and the server's CPU per second over
# 16 s of idleness (one heartbeat at changecast's default 15 s).
#
#   bench/idle.sh [--quick | --smoke] [--runs N] [--out DIR] [--write-docs]
#                 [--subscribers 10000] [--large 100000]
#
#   --smoke       one round of 300 subscribers, and 1,000 for the large case
#                 (CPU over 2 s)
set -euo pipefail
source "$(dirname "$0")/push-lib.sh"

command_line="bench/idle.sh $*"
subs="" large="" args=()
while (($#)); do
    case "$1" in
        --subscribers) subs=$2; shift ;;
        --large) large=$2; shift ;;
        *) args+=("$1") ;;
    esac
    shift
done
parse_common "${args[@]}"
idle_cpu_seconds=16
[[ $profile == smoke ]] && : "${subs:=300}" "${large:=1000}" && idle_cpu_seconds=2
: "${subs:=10000}" "${large:=100000}"
push_tools

begin_scenario idle proto subscribers target
cases=("sse $subs" "ws $subs")
# Each subscriber is a descriptor in the load process and one in the
# server: a limit below that (a container without CAP_SYS_RESOURCE cannot
# raise its hard limit) leaves the large case out, said plainly.
if (($(ulimit -n) > large + 1000)); then
    cases+=("sse $large" "ws $large")
else
    log "idle.sh: the $large case needs $((large + 1000)) descriptors per process; this one may have $(ulimit -n) (ulimit -Hn $(ulimit -Hn)): not run"
fi
total=$((runs * (7 + 2 * (${#cases[@]} - 2))))
for round in $(seq "$runs"); do
    for run_case in "${cases[@]}"; do
        read -r proto n <<<"$run_case"
        if ((n == subs)); then
            read -r -a tl <<<"$(targets_for "$proto")"
            idle_args=(--subscribers "$n")
            cc_extra=()
        else
            tl=(changecast nchan)
            idle_args=(--subscribers "$n" --source-ips 200 --idle-cpu-seconds "$idle_cpu_seconds")
            cc_extra=(--push.max_connections 200000)
        fi
        for i in "${!tl[@]}"; do
            target=${tl[(i + round - 1) % ${#tl[@]}]}
            done_count=$((done_count + 1))
            printf '\r[%d/%d] round %d %s %s %s          ' "$done_count" "$total" "$round" "$proto" "$n" "$target" >&2
            mark=${#pids[@]}
            if ! start_target "$target" "$proto"; then
                start_failed "$target" "$mark"
                continue
            fi
            if line=$(timeout 300 "${pin_load[@]}" "$bin/fanout_load" --mode idle "${target_args[@]}" \
                "${idle_args[@]}" 2>"$tmp/run/load.err"); then
                printf '%s\t%s\t%s\t%s\t%s\n' "$proto" "$n" "$target" "$round" "$line" >>"$runs_tsv"
            else
                load_failed "$proto $target round $round: $line"
            fi
            stop_since "$mark"
        done
    done
done
finish_scenario idle \
    "$runs round(s); $subs idle subscribers per case (and $large for changecast and nchan), RSS read 2 s after the last connected"
