#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fan-out benchmark: S subscribers on one namespace, events at R per second,
# over SSE and WebSocket; changecast against nchan, a Node `ws` broadcast
# server, a Node SSE broadcast server and a Node watch()+SSE server. The
# cases (SxR): 1000x100 and 10000x10 (100,000 deliveries/s offered), and
# 10000x100 (1,000,000/s, more than this machine carries: overload).
#
# For each round, each case (transport x S x R) and each target (order
# rotated every round), the script starts the target's servers afresh on
# 127.0.0.1, runs bench/fanout_load (S subscribers in one epoll loop, the
# publishers at R events/s: inserts through changecast's wire port or into
# the stand-in, HTTP POSTs for nchan and the Node broadcast servers), and
# stops them. Prints a table of medians and one key line per comparison.
#
#   bench/fanout.sh [--quick | --smoke] [--runs N] [--out DIR] [--write-docs]
#                   [--cases "1000x100 10000x10 10000x100"]
#                   [--subscribers "1000 10000" --rates "100 1000"] (every pair)
#                   [--protos "sse ws"] [--seconds D] [--targets "changecast nchan"]
#                   [--changecast-flags "--push.flush_ms 20"]
#
#   --quick       a rough pass: windows of 2 s (default 3 s, ~14 min), ~10 min
#   --smoke       one round, 100 subscribers x 100 events/s, 1 s windows
#   --out DIR     where the TSVs, key lines and plots go (default: a temp dir)
#   --write-docs  results into docs/bench/ and docs/benchmarks.md
set -euo pipefail
source "$(dirname "$0")/push-lib.sh"

command_line="bench/fanout.sh $*"
cases_list="1000x100 10000x10 10000x100" subs_list="" rates_list=""
protos="sse ws" seconds="" args=() target_filter=""
while (($#)); do
    case "$1" in
        --cases) cases_list=$2; shift ;;
        --subscribers) subs_list=$2; shift ;;
        --rates) rates_list=$2; shift ;;
        --protos) protos=$2; shift ;;
        --seconds) seconds=$2; shift ;;
        --targets) target_filter=$2; shift ;;
        --changecast-flags) read -r -a cc_extra <<<"$2"; shift ;;
        *) args+=("$1") ;;
    esac
    shift
done
parse_common "${args[@]}"
case $profile in
    full) : "${seconds:=3}"; warmup=1 drain=3 ;;
    quick) : "${seconds:=2}"; warmup=0.5 drain=2 ;;
    smoke) : "${seconds:=1}"; warmup=0.3 drain=1 cases_list=100x100 subs_list="" rates_list="" ;;
esac
push_tools

if [[ -n $subs_list || -n $rates_list ]]; then
    cases_list=""
    for s in ${subs_list:-1000 10000}; do
        for r in ${rates_list:-100}; do
            cases_list+=" ${s}x$r"
        done
    done
fi
cases=()
for proto in $protos; do
    for sr in $cases_list; do
        cases+=("$proto ${sr%x*} ${sr#*x}")
    done
done
total=0
for c in "${cases[@]}"; do
    read -r proto _ _ <<<"$c"
    total=$((total + runs * $(wc -w <<<"$(targets_for "$proto")")))
done
log "fanout.sh: servers on CPU $server_cpus, load on CPU $load_cpus; $runs round(s) of ${seconds}s (+${warmup}s warm-up) x $total runs"

begin_scenario fanout proto subscribers rate target
for round in $(seq "$runs"); do
    for c in "${cases[@]}"; do
        read -r proto s r <<<"$c"
        read -r -a tl <<<"$(targets_for "$proto")"
        for i in "${!tl[@]}"; do
            target=${tl[(i + round - 1) % ${#tl[@]}]}
            done_count=$((done_count + 1))
            printf '\r[%d/%d] round %d %s s=%s r=%s %s          ' "$done_count" "$total" \
                "$round" "$proto" "$s" "$r" "$target" >&2
            run_case "$proto"$'\t'"$s"$'\t'"$r"$'\t'"$target" "$target" "$proto" \
                --subscribers "$s" --rate "$r"
        done
    done
done
finish_scenario fanout \
    "$runs round(s) x ${seconds}s measured (+${warmup}s warm-up, up to ${drain}s drain) per case"
