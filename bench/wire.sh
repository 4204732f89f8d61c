#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Wire-overhead benchmark: what does changecast add to a MongoDB round trip,
# next to HAProxy in TCP mode as the neutral L4 baseline?
#
# Starts on 127.0.0.1 the minimal C upstream (bench/mini_upstream.c), one
# changecast and one HAProxy in front of it, then drives each target
# (direct, changecast, haproxy) x op (ping, insertfind) x clients (1, 16, 64)
# with bench/wire_load, RUNS rounds, interleaved so that the machine's noise
# hits every target alike. Prints a table of medians and one key line per
# comparison; the ratios and added latencies are medians of per-round
# comparisons (each target against the direct run of the same round).
#
#   bench/wire.sh [--quick | --smoke] [--runs N] [--seconds S] [--warmup-seconds W]
#                 [--clients "1 16 64"] [--ops "ping insertfind"]
#                 [--out DIR] [--standin] [--write-docs]
#
#   --quick       ~1 minute: 3 rounds of 0.6 s (default: 5 rounds of 2 s, ~4 min)
#   --smoke       one round of 0.3 s with 1 and 16 clients (bench/run --smoke)
#   --out DIR     where the TSVs, key lines and plots go (default: a temp dir, kept)
#   --standin     also run everything against the Node stand-in (slow, optional)
#   --write-docs  results into docs/bench/ and docs/benchmarks.md
#
# Servers are pinned to CPU 0 and the load generator to the other CPUs, so
# that a proxy's cost competes with the upstream, not with the clients.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

command_line="bench/wire.sh $*"
runs=5 seconds=2 warmup=0.5 clients_list="1 16 64" ops_list="ping insertfind"
out="" standin=false write_docs=false smoke=false
while (($#)); do
    case "$1" in
        --quick) runs=3 seconds=0.6 warmup=0.3 ;;
        --smoke) smoke=true runs=1 seconds=0.3 warmup=0.1 clients_list="1 16" ;;
        --runs) runs=$2; shift ;;
        --seconds) seconds=$2; shift ;;
        --warmup-seconds) warmup=$2; shift ;;
        --clients) clients_list=$2; shift ;;
        --ops) ops_list=$2; shift ;;
        --out) out=$2; shift ;;
        --standin) standin=true ;;
        --write-docs) write_docs=true ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "wire.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((runs < 3)) && ! $smoke; then
    echo "wire.sh: --runs must be at least 3 (medians of one or two runs mean nothing here)" >&2
    exit 2
fi
if $write_docs; then
    out=$root/docs/bench
fi

log() { printf '%s\n' "$*" >&2; }

# --- tools ---------------------------------------------------------------
need_apt=()
command -v haproxy >/dev/null || need_apt+=(haproxy)
command -v gnuplot >/dev/null || need_apt+=(gnuplot-nox)
command -v taskset >/dev/null || need_apt+=(util-linux)
if ((${#need_apt[@]})); then
    log "wire.sh: installing ${need_apt[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null; }
fi
# What the binaries are built from, said in the results: other work in
# progress in the same tree gets built in too.
source_state="$(git rev-parse --short HEAD)"
if [[ -n $(git status --porcelain -- src include CMakeLists.txt 2>/dev/null) ]]; then
    source_state+=" plus uncommitted changes in src/, include/ or CMakeLists.txt"
fi
# CHANGECAST_BENCH_BUILD=DIR: binaries already built there (bench/run).
if [[ -n ${CHANGECAST_BENCH_BUILD:-} ]]; then
    build=$CHANGECAST_BENCH_BUILD
    # CHANGECAST_BENCH_SOURCE says what it was built from (e.g. a commit).
    source_state=${CHANGECAST_BENCH_SOURCE:-"binaries of $CHANGECAST_BENCH_BUILD"}
else
    build=$(scripts/build)
fi
bin=$(cd "$build" && pwd)
for b in changecast mini_upstream wire_load; do
    [[ -x $bin/$b ]] || { log "wire.sh: $bin/$b missing after build"; exit 1; }
done

# 64 clients through a proxy hold 128+ sockets; leave generous room.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

ncpu=$(nproc)
if ((ncpu >= 2)); then
    server_cpus=0 load_cpus=$( ((ncpu == 2)) && echo 1 || echo "1-$((ncpu - 1))")
    pin_server=(taskset -c "$server_cpus") pin_load=(taskset -c "$load_cpus")
else
    server_cpus=all load_cpus=all pin_server=() pin_load=()
fi

tmp=$(mktemp -d /tmp/changecast-wire.XXXXXX)
[[ -n $out ]] || out=$tmp/results
mkdir -p "$out"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp/run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$tmp/run"

# wait_for_line FILE REGEX SECONDS PID: prints the first match, fails if the
# process dies or the time runs out.
wait_for_line() {
    local file=$1 regex=$2 deadline=$((SECONDS + $3)) pid=$4 line
    while ((SECONDS < deadline)); do
        line=$(grep -m1 -oE "$regex" "$file" 2>/dev/null || true)
        if [[ -n $line ]]; then
            printf '%s\n' "$line"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    log "wire.sh: no \"$regex\" from pid $pid; its output:"
    sed 's/^/    /' "$file" >&2
    return 1
}

free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 40000))
        if [[ -z $(ss -Hltn "sport = :$port") ]]; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# Each start_* runs in this shell (so the trap knows the pid) and sets the
# variable named by its first argument to the port the server listens on.
start_mini_upstream() { # VAR
    "${pin_server[@]}" "$bin/mini_upstream" 0 >"$tmp/run/mini_upstream.out" 2>&1 &
    pids+=($!)
    local line
    line=$(wait_for_line "$tmp/run/mini_upstream.out" 'ready port=[0-9]+' 10 $!)
    printf -v "$1" '%s' "${line#*port=}"
}

start_standin() { # VAR
    "${pin_server[@]}" node tests/standin/server.js --port 0 >"$tmp/run/standin.out" 2>&1 &
    pids+=($!)
    local line
    line=$(wait_for_line "$tmp/run/standin.out" 'standin ready port=[0-9]+' 20 $!) || return 1
    printf -v "$1" '%s' "${line#*port=}"
}

# The ready line is logged at info; info adds a few lines per connection,
# nothing per frame.
start_changecast() { # VAR NAME UPSTREAM_PORT
    local err=$tmp/run/changecast-$2.err line
    # Run from the temp dir, so whatever it writes (a resume-token file)
    # lands there. No changes.expose: only the wire proxy is measured.
    (cd "$tmp/run" && exec "${pin_server[@]}" "$bin/changecast" --wire.listen 127.0.0.1:0 \
        --wire.upstream "mongodb://127.0.0.1:$3/?replicaSet=rs0" --log.level info) 2>"$err" &
    pids+=($!)
    line=$(wait_for_line "$err" 'event=ready .*wire=127\.0\.0\.1:[0-9]+' 15 $!)
    line=${line##*wire=127.0.0.1:}
    printf -v "$1" '%s' "${line%% *}"
}

# HAProxy in plain TCP mode, one thread like changecast's wire loop.
start_haproxy() { # VAR NAME UPSTREAM_PORT
    local var=$1
    shift
    local cfg=$tmp/run/haproxy-$1.cfg port attempt
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        cat >"$cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend wire
    bind 127.0.0.1:$port
    default_backend upstream
backend upstream
    server upstream 127.0.0.1:$2
EOF
        "${pin_server[@]}" haproxy -db -f "$cfg" >"$tmp/run/haproxy-$1.out" 2>&1 &
        local pid=$!
        local deadline=$((SECONDS + 5))
        while ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null; do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                pids+=("$pid")
                printf -v "$var" '%s' "$port"
                return 0
            fi
            sleep 0.05
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        log "wire.sh: haproxy attempt $attempt on port $port failed: $(tr '\n' ' ' <"$tmp/run/haproxy-$1.out")"
    done
    return 1
}

# --- servers --------------------------------------------------------------
declare -A uri server_pid
mini_port="" cc_port="" hp_port="" standin_port=""
upstreams=(mini)
start_mini_upstream mini_port
server_pid[mini/upstream]=${pids[-1]}
start_changecast cc_port mini "$mini_port"
server_pid[mini/changecast]=${pids[-1]}
start_haproxy hp_port mini "$mini_port" || { log "wire.sh: haproxy would not start"; exit 1; }
server_pid[mini/haproxy]=${pids[-1]}
uri[mini/direct]="mongodb://127.0.0.1:$mini_port/?directConnection=true"
uri[mini/changecast]="mongodb://127.0.0.1:$cc_port/?directConnection=true"
uri[mini/haproxy]="mongodb://127.0.0.1:$hp_port/?directConnection=true"
if $standin; then
    if start_standin standin_port; then
        upstreams+=(standin)
        server_pid[standin/upstream]=${pids[-1]}
        start_changecast cc_port standin "$standin_port"
        server_pid[standin/changecast]=${pids[-1]}
        start_haproxy hp_port standin "$standin_port"
        server_pid[standin/haproxy]=${pids[-1]}
        uri[standin/direct]="mongodb://127.0.0.1:$standin_port/?directConnection=true"
        uri[standin/changecast]="mongodb://127.0.0.1:$cc_port/?directConnection=true"
        uri[standin/haproxy]="mongodb://127.0.0.1:$hp_port/?directConnection=true"
    else
        log "wire.sh: the Node stand-in did not start; running against mini_upstream only"
    fi
fi
targets=(direct changecast haproxy)
log "wire.sh: servers on CPU $server_cpus, load on CPU $load_cpus; ${upstreams[*]}; ${runs} rounds of ${seconds}s (+${warmup}s warm-up)"

# --- runs -----------------------------------------------------------------
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
runs_tsv=$out/wire-runs.tsv
printf 'upstream\top\tclients\ttarget\tround\tops\tseconds\tthroughput\tp50_us\tp99_us\tmax_us\tproxy_cpu_us_per_op\tupstream_cpu_us_per_op\n' >"$runs_tsv"
limit=$(awk -v s="$seconds" -v w="$warmup" 'BEGIN { printf "%d", s + w + 60 }')
total=$((runs * ${#upstreams[@]} * $(wc -w <<<"$ops_list") * $(wc -w <<<"$clients_list") * ${#targets[@]}))
done_count=0
# CPU time (user + system, all threads) a server has used, in clock ticks.
cpu_ticks() { # PID
    [[ -n $1 ]] || { echo 0; return; }
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}
hz=$(getconf CLK_TCK)
for round in $(seq "$runs"); do
    # Each round starts with a different target, so that whatever the
    # previous run leaves behind (sockets closing, caches) hits all alike.
    order=()
    for i in "${!targets[@]}"; do
        order+=("${targets[(i + round - 1) % ${#targets[@]}]}")
    done
    for up in "${upstreams[@]}"; do
        for op in $ops_list; do
            for c in $clients_list; do
                for target in "${order[@]}"; do
                    done_count=$((done_count + 1))
                    printf '\r[%d/%d] round %d %s %s c=%s %s      ' "$done_count" "$total" \
                        "$round" "$up" "$op" "$c" "$target" >&2
                    proxy=${server_pid[$up/$target]:-}
                    proxy_before=$(cpu_ticks "$proxy")
                    upstream_before=$(cpu_ticks "${server_pid[$up/upstream]}")
                    if ! line=$(timeout "$limit" "${pin_load[@]}" "$bin/wire_load" \
                        --uri "${uri[$up/$target]}" --clients "$c" --op "$op" \
                        --seconds "$seconds" --warmup-seconds "$warmup" 2>"$tmp/run/load.err"); then
                        log "wire.sh: wire_load failed: $up $target $op c=$c round $round"
                        sed 's/^/    /' "$tmp/run/load.err" | head -20 >&2
                        exit 1
                    fi
                    proxy_ticks=$(($(cpu_ticks "$proxy") - proxy_before))
                    upstream_ticks=$(($(cpu_ticks "${server_pid[$up/upstream]}") - upstream_before))
                    awk -v u="$up" -v o="$op" -v c="$c" -v t="$target" -v r="$round" -v hz="$hz" \
                        -v pt="$proxy_ticks" -v ut="$upstream_ticks" 'BEGIN { OFS = "\t" } {
                            for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                            per_op = 1e6 / hz / (f["all_ops"] > 0 ? f["all_ops"] : 1)
                            print u, o, c, t, r, f["ops"], f["seconds"], f["throughput"], f["p50_us"],
                                f["p99_us"], f["max_us"], sprintf("%.2f", pt * per_op),
                                sprintf("%.2f", ut * per_op)
                        }' <<<"$line" >>"$runs_tsv"
                done
            done
        done
    done
done
printf '\n' >&2
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- medians, table, key lines ----------------------------------------------
awk -f bench/wire-report.awk -v summary="$out/wire-summary.tsv" -v keys="$out/wire-keys.txt" \
    "$runs_tsv" >"$out/wire-table.txt"
cat "$out/wire-table.txt"
echo
cat "$out/wire-keys.txt"

# --- plot -------------------------------------------------------------------
plot_dir=$out
for up in "${upstreams[@]}"; do
    for op in $ops_list; do
        for target in "${targets[@]}"; do
            awk -F'\t' -v u="$up" -v o="$op" -v t="$target" \
                'NR > 1 && $1 == u && $2 == o && $4 == t { print $3, $7, $8 }' \
                "$out/wire-summary.tsv" | sort -n >"$tmp/run/plot-$target.dat"
        done
        name=wire-$op.svg
        [[ $up == mini ]] || name=wire-$up-$op.svg
        gnuplot -e "data='$tmp/run/plot'; title='$op, upstream $up (median of $runs rounds)'; out='$plot_dir/$name'" \
            bench/wire-plot.gp
    done
done

# --- machine ------------------------------------------------------------------
{
    echo "- CPUs: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- kernel: $(uname -r); Debian $(cat /etc/debian_version 2>/dev/null || echo '?')"
    echo "- changecast $source_state, build dir $(basename "$bin")/ ($(grep -m1 CMAKE_BUILD_TYPE "$bin/CMakeCache.txt" | cut -d= -f2)), $(cc --version | head -1)"
    echo "- libmongoc $(pkg-config --modversion libmongoc-1.0), libevent $(pkg-config --modversion libevent), $(haproxy -v | head -1 | cut -d' ' -f1-3)"
    echo "- pinning: servers (upstream, changecast, haproxy) on CPU $server_cpus, wire_load on CPU $load_cpus"
    echo "- load average (1/5/15 min; the benchmark's own client threads count too) before: $load_start; after: $load_end"
    echo "- command: \`$command_line\`"
    echo "- $runs rounds x ${seconds}s measured (+${warmup}s warm-up) per case; $(date -u +%Y-%m-%d)"
} >"$out/wire-machine.txt"

if $write_docs; then
    doc=$root/docs/benchmarks.md
    {
        echo '<!-- wire-results:begin (generated by bench/wire.sh --write-docs; edits here are overwritten) -->'
        echo
        echo 'Machine and run:'
        echo
        cat "$out/wire-machine.txt"
        echo
        echo 'Key lines:'
        echo
        echo '```'
        cat "$out/wire-keys.txt"
        echo '```'
        echo
        echo 'Medians per case (latency of one operation; insertfind is two round trips):'
        echo
        echo '```'
        cat "$out/wire-table.txt"
        echo '```'
        echo
        for up in "${upstreams[@]}"; do
            for op in $ops_list; do
                name=wire-$op.svg
                [[ $up == mini ]] || name=wire-$up-$op.svg
                echo "![$op latency against clients, upstream $up](bench/$name)"
                echo
            done
        done
        echo '<!-- wire-results:end -->'
    } >"$tmp/run/block.md"
    awk -v block="$tmp/run/block.md" '
        /<!-- wire-results:begin/ { while ((getline l < block) > 0) print l; skip = 1; next }
        /<!-- wire-results:end -->/ { skip = 0; next }
        !skip { print }' "$doc" >"$tmp/run/doc.md"
    cat "$tmp/run/doc.md" >"$doc"
    log "wire.sh: wrote $doc and $out"
else
    log "wire.sh: results in $out"
fi
