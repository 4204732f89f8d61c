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
# fanout_load inflates what it receives (one zlib stream per connection) and
# counts the bytes its sockets carried.
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
    local all t kept=()
    if [[ $1 == sse ]]; then
        all="changecast changecast-z nchan node-sse"
    else
        all="changecast changecast-z nchan nchan-z node-ws node-ws-z"
    fi
    for t in $all; do
        [[ -z $target_filter || " $target_filter " == *" $t "* ]] && kept+=("$t")
    done
    echo "${kept[*]}"
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
            mark=${#pids[@]}
            if ! start_target "$target" "$proto"; then
                start_failed "$target" "$mark"
                continue
            fi
            limit=$(awk -v s="$seconds" -v w="$warmup" -v d="$drain" 'BEGIN { printf "%d", s + w + d + 200 }')
            if line=$(timeout "$limit" "${pin_load[@]}" "$bin/fanout_load" --mode fanout \
                "${target_args[@]}" --doc-bytes "$doc" --inflate-every 10 --subscribers "$s" --rate "$r" \
                --seconds "$seconds" --warmup-seconds "$warmup" --drain-seconds "$drain" \
                2>"$tmp/run/load.err"); then
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$proto" "$doc" "$s" "$r" "$target" "$round" "$line" >>"$runs_tsv"
            else
                load_failed "$proto doc=$doc s=$s r=$r $target round $round: $line"
                [[ -z $line ]] || printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$proto" "$doc" "$s" "$r" "$target" "$round" "$line" >>"$runs_tsv"
            fi
            stop_since "$mark"
        done
    done
done
finish_scenario compression \
    "$runs round(s) x ${seconds}s measured (+${warmup}s warm-up, up to ${drain}s drain) per case"
