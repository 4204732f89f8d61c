#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Catch-up benchmark: a subscriber that was away while N events (100,000)
# were written reconnects with the token of the event before them; how long
# until it has all N, and how much memory does changecast take for it?
#   ring      changecast keeps every event in its ring (--changes.ring_events
#             and ring_bytes raised to hold them): the replay is served from
#             memory
#   upstream  a small ring (1,000 events): the token is older than the ring,
#             so changecast opens a private catch-up change stream on the
#             upstream (the stand-in, its history raised to hold N events)
# fanout_load does it all: a live subscriber sees a marker event (its token
# kept), N events are inserted through the wire port in batches of 1,000
# and the live subscriber sees them all (so capture has them), it leaves;
# the server's peak RSS is reset (/proc/PID/clear_refs) and a new subscriber
# resumes after the marker (Last-Event-ID, or "after" over WebSocket). Time
# from its connect to its Nth event; peak RSS minus RSS before.
#
#   bench/catchup.sh [--quick | --smoke] [--runs N] [--out DIR] [--write-docs]
#                    [--events 100000] [--protos "sse ws"]
#
#   --quick       20,000 events      --smoke   one round of 2,000 events
set -euo pipefail
source "$(dirname "$0")/push-lib.sh"

command_line="bench/catchup.sh $*"
events="" protos="sse ws" args=()
while (($#)); do
    case "$1" in
        --events) events=$2; shift ;;
        --protos) protos=$2; shift ;;
        *) args+=("$1") ;;
    esac
    shift
done
parse_common "${args[@]}"
case $profile in
    smoke) : "${events:=2000}" ;;
    quick) : "${events:=20000}" ;;
    full) : "${events:=100000}" ;;
esac
push_tools

# The stand-in keeps twice the events for resuming; the big ring holds them
# all with room (each event is ~0.7 KB in its output forms).
standin_extra=(--oplog-size $((events * 2 + 1000)))
ring_flags=(--changes.ring_events $((events * 2 + 1000)) --changes.ring_bytes $((1024 * 1024 * 1024)))
small_flags=(--changes.ring_events 1000)

begin_scenario catchup source proto target
total=$((runs * 2 * $(wc -w <<<"$protos")))
for round in $(seq "$runs"); do
    sources=(ring upstream)
    ((round % 2)) || sources=(upstream ring)
    for source in "${sources[@]}"; do
        for proto in $protos; do
            done_count=$((done_count + 1))
            printf '\r[%d/%d] round %d %s %s          ' "$done_count" "$total" "$round" "$source" "$proto" >&2
            if [[ $source == ring ]]; then cc_extra=("${ring_flags[@]}"); else cc_extra=("${small_flags[@]}"); fi
            mark=${#pids[@]}
            if ! start_target changecast "$proto"; then
                start_failed changecast "$mark"
                continue
            fi
            if line=$(timeout 900 "${pin_load[@]}" "$bin/fanout_load" --mode catchup "${target_args[@]}" \
                --events "$events" 2>"$tmp/run/load.err"); then
                printf '%s\t%s\t%s\t%s\t%s\n' "$source" "$proto" changecast "$round" "$line" >>"$runs_tsv"
            else
                load_failed "$source $proto round $round: $line"
                grep -E 'level=(warn|error)' "$tmp/run/changecast.err" | tail -5 | sed 's/^/    /' >&2
            fi
            stop_since "$mark"
        done
    done
done
cc_extra=()
finish_scenario catchup \
    "$runs round(s); $events events replayed per case; ring: --changes.ring_events $((events * 2 + 1000)) --changes.ring_bytes 1GiB; upstream: --changes.ring_events 1000, stand-in --oplog-size $((events * 2 + 1000))"
