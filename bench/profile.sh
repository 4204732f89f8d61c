#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Where changecast's fan-out CPU goes: starts the stand-in and changecast as
# fanout.sh does, runs one fan-out case with bench/fanout_load, and samples
# changecast with perf (Debian linux-perf) during the measured window.
# Prints fanout_load's line, the hottest symbols (self time), the split
# between kernel and user space, and changecast's system calls per delivery
# (perf stat's raw_syscalls:sys_enter over the same window).
#
#   bench/profile.sh [--proto sse|ws] [--subscribers 1000] [--rate 100]
#                    [--seconds 6] [--out DIR] [-- CHANGECAST_FLAGS...]
#
# perf.data and the full report stay in --out DIR (default: a temp dir).
set -euo pipefail
source "$(dirname "$0")/push-lib.sh"
proto=sse subs=1000 rate=100 seconds=6
while (($#)); do
    case "$1" in
        --proto) proto=$2; shift ;;
        --subscribers) subs=$2; shift ;;
        --rate) rate=$2; shift ;;
        --seconds) seconds=$2; shift ;;
        --out) out=$2; shift ;;
        --) shift; cc_extra=("$@"); break ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null
push_tools
start_target changecast "$proto"
"${pin_load[@]}" "$bin/fanout_load" --mode fanout "${target_args[@]}" --subscribers "$subs" \
    --rate "$rate" --seconds "$seconds" --warmup-seconds 2 >"$out/load.out" 2>"$out/load.err" &
load=$!
# Connecting takes a while with many subscribers: start sampling once the
# first events flow (the warm-up), for most of the window.
sleep $((3 + subs / 4000))
perf stat -e raw_syscalls:sys_enter -x, -o "$out/syscalls.csv" -p "$cc_pid" -- sleep $((seconds - 2)) &
stat=$!
perf record -F 2000 -g -p "$cc_pid" -o "$out/perf.data" -- sleep $((seconds - 2)) 2>/dev/null >/dev/null
wait "$stat" || true
wait "$load" || true
cat "$out/load.out" "$out/load.err"
syscalls=$(awk -F, '/raw_syscalls:sys_enter/ { print $1 }' "$out/syscalls.csv")
awk -v n="$syscalls" -v s=$((seconds - 2)) '{ for (i = 1; i <= NF; i++) if ($i ~ /^deliveries_per_s=/) { split($i, kv, "="); d = kv[2] } }
    END { if (d > 0) printf "syscalls: %d in %d s, %.3f per delivery\n", n, s, n / (d * s) }' "$out/load.out"
perf report -i "$out/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null >"$out/report.txt"
perf report -i "$out/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' | head -30
perf report -i "$out/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -8
log "profile.sh: $out/perf.data, $out/report.txt"
