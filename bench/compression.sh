#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Compression benchmark: bytes on the wire and server CPU per delivery with
# compression off and on, for change events of realistic documents (an
# order with line items: repeated field names, as real data has), 1 KiB and
# 10 KiB, in the fan-out cases 1000x100 and 10000x10.
#
# Targets (bench/push-lib.sh):
#   changecast      subscribers ask for nothing: plain frames and streams
#   changecast-z    subscribers ask for compression (WebSocket
#                   permessage-deflate, SSE Accept-Encoding gzip); changecast
#                   compresses each event once and sends the same bytes to all
#   nchan           plain;  nchan-z: nchan_deflate_message_for_websocket (WS)
#   node-ws         plain;  node-ws-z: npm ws with perMessageDeflate, a
#                   compressor per connection (the usual way)
#   node-sse        plain SSE broadcast (no gzip: compressing a stream per
#                   connection in Node means a gzip stream per subscriber)
#   node-watch      plain SSE from a Node server with its own change stream
# fanout_load asks for compression for the `-z` targets and counts the bytes
# its sockets carried; one subscriber in 10 inflates and parses what it gets
# (latency, order, drops come from those), the others count deliveries
# without inflating (--inflate-every 10): inflating 100,000 events a second
# on the load generator's one core would make it, not the server, what
# limits the run. changecast runs with --push.watermark_ms 0 so that only
# events are compressed messages (a watermark carries a 182-character token
# and would be compressed too).
#
#   bench/compression.sh [--quick | --smoke] [--runs N] [--out DIR] [--write-docs]
#                        [--cases "1000x100 10000x10"] [--docs "1024 10240"]
#                        [--protos "sse ws"] [--targets "changecast changecast-z"]
#
#   --quick   windows of 2 s (default 3 s)   --smoke  one round, 100x100, 1 KiB
set -euo pipefail
source "$(dirname "$0")/push-lib.sh"

command_line="bench/compression.sh $*"
cases_list="1000x100 10000x10" docs_list="1024 10240" protos="sse ws" args=() target_filter=""
while (($#)); do
    case "$1" in
        --cases) cases_list=$2; shift ;;
        --docs) docs_list=$2; shift ;;
        --protos) protos=$2; shift ;;
        --targets) target_filter=$2; shift ;;
        *) args+=("$1") ;;
    esac
    shift
done
parse_common "${args[@]}"
case $profile in
    full) seconds=3 warmup=1 drain=3 ;;
    quick) seconds=2 warmup=0.5 drain=2 ;;
    smoke) seconds=1 warmup=0.3 drain=1 cases_list=100x100 docs_list=1024 ;;
esac
push_tools
cc_extra=(--push.watermark_ms 0)

compression_targets() { # PROTO
    if [[ $1 == sse ]]; then
        kept_targets "changecast changecast-z nchan node-sse node-watch"
    else
        kept_targets "changecast changecast-z nchan nchan-z node-ws node-ws-z"
    fi
}

cases=()
for proto in $protos; do
    for doc in $docs_list; do
        for sr in $cases_list; do
            cases+=("$proto $doc ${sr%x*} ${sr#*x}")
        done
    done
done
total=0
for c in "${cases[@]}"; do
    read -r proto _ _ _ <<<"$c"
    total=$((total + runs * $(wc -w <<<"$(compression_targets "$proto")")))
done
log "compression.sh: servers on CPU $server_cpus, load on CPU $load_cpus; $runs round(s) of ${seconds}s (+${warmup}s warm-up) x $total runs"

begin_scenario compression proto doc_bytes subscribers rate target
for round in $(seq "$runs"); do
    for c in "${cases[@]}"; do
        read -r proto doc s r <<<"$c"
        read -r -a tl <<<"$(compression_targets "$proto")"
        for i in "${!tl[@]}"; do
            target=${tl[(i + round - 1) % ${#tl[@]}]}
            done_count=$((done_count + 1))
            printf '\r[%d/%d] round %d %s doc=%s s=%s r=%s %s          ' "$done_count" "$total" \
                "$round" "$proto" "$doc" "$s" "$r" "$target" >&2
            run_case "$proto"$'\t'"$doc"$'\t'"$s"$'\t'"$r"$'\t'"$target" "$target" "$proto" \
                --doc-bytes "$doc" --inflate-every 10 --subscribers "$s" --rate "$r"
        done
    done
done
finish_scenario compression \
    "$runs round(s) x ${seconds}s measured (+${warmup}s warm-up, up to ${drain}s drain) per case"
