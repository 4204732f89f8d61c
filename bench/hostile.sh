#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The hostile-trial scenario (push engine issue): 10 subscribers that read,
# a writer inserting 2 KiB documents at 200/s through changecast's wire
# port, then 1,000 more push connections (500 SSE, 500 WebSocket, 100 per
# source address 127.0.1.x) that subscribe and never read. For each round
# and reader transport, starts the stand-in and changecast afresh (their
# defaults: push.max_queue_bytes 1 MiB, push.stall_timeout_ms 30 s) and runs
# bench/fanout_load --mode hostile: 5 s of baseline, 45 s with the
# non-readers, 5 s after. Reports the readers' latency before and with the
# non-readers, readers dropped and events they lost, non-readers changecast
# dropped (slow_consumer, from /metrics), and changecast's RSS before, at
# its peak and after.
#
#   bench/hostile.sh [--quick | --smoke] [--runs N] [--out DIR] [--write-docs]
#                    [--stalled 1000] [--changecast-flags "--push.unsent_bytes 0"]
#
#   --quick   windows of 3 s / 40 s / 3 s
#   --smoke   one round, 100 non-readers, push.stall_timeout_ms 1000,
#             windows of 1 s / 5 s / 1 s
set -euo pipefail
source "$(dirname "$0")/push-lib.sh"

command_line="bench/hostile.sh $*"
stalled="" args=() flags=()
while (($#)); do
    case "$1" in
        --stalled) stalled=$2; shift ;;
        --changecast-flags) read -r -a flags <<<"$2"; shift ;;
        *) args+=("$1") ;;
    esac
    shift
done
parse_common "${args[@]}"
base=5 during=45 after=5
case $profile in
    quick) base=3 during=40 after=3 ;;
    smoke) base=1 during=5 after=1 cc_extra=(--push.stall_timeout_ms 1000); : "${stalled:=100}" ;;
esac
cc_extra+=("${flags[@]}")
: "${stalled:=1000}"
push_tools

begin_scenario hostile proto readers stalled
total=$((runs * 2))
for round in $(seq "$runs"); do
    for proto in sse ws; do
        done_count=$((done_count + 1))
        printf '\r[%d/%d] round %d readers %s          ' "$done_count" "$total" "$round" "$proto" >&2
        mark=${#pids[@]}
        if ! start_target changecast "$proto"; then
            start_failed changecast "$mark"
            continue
        fi
        if line=$(timeout 600 "${pin_load[@]}" "$bin/fanout_load" --mode hostile "${target_args[@]}" \
            --subscribers 10 --rate 200 --pad 2048 --publishers 2 --warmup-seconds 1 \
            --seconds "$base" --stalled-seconds "$during" --after-seconds "$after" \
            --stalled "$stalled" --stalled-sse-path "/v1/events?ns=bench.events" \
            --stalled-ws-path /v1/ws \
            --ws-subscribe '{"type":"subscribe","id":"a","ns":"bench.events"}' \
            --ws-protocol changecast.v1 2>"$tmp/run/load.err"); then
            slow=$(curl -s "http://127.0.0.1:$cc_push/metrics" |
                awk '/^changecast_drops_total\{reason="slow_consumer"\}/ { print $2 }')
            printf '%s\t10\t%s\t%s\t%s slow_drops=%s\n' "$proto" "$stalled" "$round" "$line" "${slow:-0}" >>"$runs_tsv"
        else
            load_failed "$proto round $round: $line"
        fi
        stop_since "$mark"
    done
done
finish_scenario hostile \
    "$runs round(s); 10 readers, 200 inserts/s of 2 KiB, $stalled non-readers; windows ${base} s / ${during} s / ${after} s"
