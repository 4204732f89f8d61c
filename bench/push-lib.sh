# SPDX-License-Identifier: Apache-2.0
# Sourced by the push scenarios (fanout.sh, idle.sh, catchup.sh): tools,
# build, pinning, starting and stopping every server on 127.0.0.1, and the
# common options. Not a script of its own.
#
# Common options: --quick, --smoke, --runs N, --out DIR, --write-docs.
# CHANGECAST_BENCH_BUILD=DIR uses binaries already built in DIR instead of
# running scripts/build (which builds build/).

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
log() { printf '%s\n' "$*" >&2; }

# --- common options -------------------------------------------------------
# Each scenario sets its defaults, then calls parse_common "$@"; unknown
# options go to scenario_option NAME VALUE (returns 1 when it takes no value).
profile=full runs=3 out="" write_docs=false
parse_common() {
    while (($#)); do
        case "$1" in
            --quick) profile=quick ;;
            --smoke) profile=smoke ;;
            --runs) runs=$2; shift ;;
            --out) out=$2; shift ;;
            --write-docs) write_docs=true ;;
            -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
            *) echo "$(basename "$0"): unknown argument $1 (see --help)" >&2; exit 2 ;;
        esac
        shift
    done
    if [[ $profile == smoke ]]; then
        runs=1
    elif ((runs < 3)); then
        echo "$(basename "$0"): --runs must be at least 3 (medians of one or two runs mean nothing here)" >&2
        exit 2
    fi
    if $write_docs; then
        out=$root/docs/bench
    fi
}

# --- tools ----------------------------------------------------------------
push_tools() {
    local need_apt=()
    command -v nginx >/dev/null || need_apt+=(nginx)
    [[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ]] || need_apt+=(libnginx-mod-nchan)
    command -v gnuplot >/dev/null || need_apt+=(gnuplot-nox)
    command -v taskset >/dev/null || need_apt+=(util-linux)
    if ((${#need_apt[@]})); then
        log "$(basename "$0"): installing ${need_apt[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null ||
            { apt-get update -q >/dev/null &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null; }
    fi
    source_state="$(git rev-parse --short HEAD)"
    if [[ -n $(git status --porcelain -- src include CMakeLists.txt 2>/dev/null) ]]; then
        source_state+=" plus uncommitted changes in src/, include/ or CMakeLists.txt"
    fi
    if [[ -n ${CHANGECAST_BENCH_BUILD:-} ]]; then
        build=$CHANGECAST_BENCH_BUILD
        # CHANGECAST_BENCH_SOURCE says what it was built from (e.g. a commit).
        source_state=${CHANGECAST_BENCH_SOURCE:-"binaries of $CHANGECAST_BENCH_BUILD"}
    else
        build=$(scripts/build)
    fi
    bin=$(cd "$build" && pwd)
    local b
    for b in changecast fanout_load; do
        [[ -x $bin/$b ]] || { log "$(basename "$0"): $bin/$b missing after build"; exit 1; }
    done
    # 10,000 subscribers (100,000 in the idle scenario): as many descriptors
    # in the load generator and in each server, children inherit the limit.
    # As root the hard limit can be raised too.
    ulimit -Hn 250000 2>/dev/null || true
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if (($(ulimit -n) < 12000)); then
        log "$(basename "$0"): the descriptor limit is $(ulimit -n); 10,000 subscribers need more"
    fi
    ncpu=$(nproc)
    if ((ncpu >= 2)); then
        server_cpus=0 load_cpus=$( ((ncpu == 2)) && echo 1 || echo "1-$((ncpu - 1))")
        pin_server=(taskset -c "$server_cpus") pin_load=(taskset -c "$load_cpus")
    else
        server_cpus=all load_cpus=all pin_server=() pin_load=()
    fi
    tmp=$(mktemp -d /tmp/changecast-push.XXXXXX)
    [[ -n $out ]] || out=$tmp/results
    mkdir -p "$out" "$tmp/run"
    pids=()
    trap push_cleanup EXIT
    trap 'exit 130' INT TERM
}

push_cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp/run"
}

# Stops the servers of one run (the pids started since MARK), in reverse.
stop_since() { # MARK
    local i
    for ((i = ${#pids[@]} - 1; i >= $1; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    pids=("${pids[@]:0:$1}")
}

# The start of every push scenario: the load average before, the runs' TSV
# (the case columns, then round and fanout_load's line), and the counters.
begin_scenario() { # NAME CASE_COLUMN...
    load_start=$(cut -d' ' -f1-3 /proc/loadavg)
    runs_tsv=$out/$1-runs.tsv
    shift
    { printf '%s\t' "$@"; printf 'round\tresult\n'; } >"$runs_tsv"
    failures=0 done_count=0
}

# The scenarios' loops count what failed in $failures and go on with the
# next run: a target that would not start (its servers are stopped)...
start_failed() { # TARGET MARK
    log "$(basename "$0"): $1 would not start"
    stop_since "$2"
    failures=$((failures + 1))
}

# ...or a load generator that failed (its first errors are shown).
load_failed() { # WHAT
    log "$(basename "$0"): fanout_load failed: $1"
    sed 's/^/    /' "$tmp/run/load.err" | head -5 >&2
    failures=$((failures + 1))
}

# The end of every push scenario: the machine and run description, the
# report (and docs with --write-docs), and a failing exit if a run failed.
finish_scenario() { # NAME RUN_DESCRIPTION
    printf '\n' >&2
    machine_lines "$command_line" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" "$2" \
        >"$out/$1-machine.txt"
    python3 bench/push-report.py "$1" --out "$out" $($write_docs && echo --write-docs)
    if ((failures)); then
        log "$(basename "$0"): $failures run(s) failed (see above)"
        exit 1
    fi
}

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
    log "$(basename "$0"): no \"$regex\" from pid $pid; its output:"
    sed 's/^/    /' "$file" >&2
    return 1
}

free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 12000))
        if [[ -z $(ss -Hltn "sport = :$port") ]]; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# --- servers ----------------------------------------------------------------
# The stand-in is the database, not a server under test: it runs beside the
# load generator (CPU 1), so CPU 0 holds only the push server measured.
start_standin() { # VAR [ARGS...]
    local var=$1
    shift
    # Removed first: the old file's ready line must not be read as this one's.
    rm -f "$tmp/run/standin.out"
    "${pin_load[@]}" node tests/standin/server.js --port 0 "$@" >"$tmp/run/standin.out" 2>"$tmp/run/standin.err" &
    pids+=($!)
    local line
    line=$(wait_for_line "$tmp/run/standin.out" 'standin ready port=[0-9]+' 20 $!) || return 1
    printf -v "$var" '%s' "${line#*port=}"
}

# Sets cc_wire, cc_push, cc_pid. Defaults everywhere but no token file; the
# ready line is logged at info, which adds a line or two per connection
# (all before the measured window) and nothing per event.
start_changecast() { # UPSTREAM_PORT [FLAGS...]
    local up=$1 err=$tmp/run/changecast.err line
    shift
    # Builds with authorization need it said that subscribers are anonymous;
    # older ones do not know the key (and refuse unknown keys).
    cc_auth_flags=()
    if "$bin/changecast" --help 2>&1 | grep -q -- '--auth.mode'; then
        cc_auth_flags=(--auth.mode none)
    fi
    rm -f "$err"
    (cd "$tmp/run" && exec "${pin_server[@]}" "$bin/changecast" --wire.listen 127.0.0.1:0 \
        --wire.upstream "mongodb://127.0.0.1:$up/?replicaSet=rs0" --push.listen 127.0.0.1:0 \
        --changes.expose bench.events --changes.token_file "" "${cc_auth_flags[@]}" --log.level info "$@") 2>"$err" &
    cc_pid=$!
    pids+=($!)
    line=$(wait_for_line "$err" 'event=ready .*' 15 $!) || true
    if [[ -z $line ]]; then
        return 1
    fi
    cc_wire=${line##*wire=127.0.0.1:}
    cc_wire=${cc_wire%% *}
    cc_push=${line##*push=}
    cc_push=${cc_push##*:}
    cc_push=${cc_push%% *}
}

# nchan in Debian's nginx: one worker (changecast's push loop is one thread),
# channel "bench", published by POST /pub, subscribed on /sub (EventSource
# or WebSocket, nchan picks by the request). Sets nchan_port, nchan_pids.
start_nchan() { # [deflate]: nchan_deflate_message_for_websocket on (where messages are published)
    local dir=$tmp/run/nginx port attempt deflate=""
    [[ ${1:-} != deflate ]] || deflate="nchan_deflate_message_for_websocket on;"
    mkdir -p "$dir"
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        cat >"$dir/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
daemon off;
worker_processes 1;
worker_rlimit_nofile 250000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 220000; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port backlog=4096;
        location = /pub {
            nchan_publisher;
            nchan_channel_id bench;
            nchan_message_buffer_length 1000;
            nchan_message_timeout 60s;
            $deflate
        }
        location = /sub {
            nchan_subscriber;
            nchan_channel_id bench;
            nchan_subscriber_first_message newest;
        }
    }
}
EOF
        "${pin_server[@]}" nginx -e "$dir/startup.log" -p "$dir" -c "$dir/nginx.conf" >"$dir/out" 2>&1 &
        local pid=$!
        local deadline=$((SECONDS + 5))
        while ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null; do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                pids+=("$pid")
                nchan_port=$port
                nchan_pids=$pid
                local child
                for child in $(pgrep -P "$pid"); do
                    nchan_pids+=",$child"
                done
                return 0
            fi
            sleep 0.05
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        log "$(basename "$0"): nginx attempt $attempt on port $port failed: $(cat "$dir/startup.log" "$dir/error.log" "$dir/out" 2>/dev/null | tr '\n' ' ')"
    done
    return 1
}

start_peer() { # MODE [MONGO_URI] [--deflate]; sets peer_port, peer_pid
    local args=(--mode "$1" --port 0)
    [[ -z ${2:-} ]] || args+=(--mongo "$2")
    [[ -z ${3:-} ]] || args+=("$3")
    rm -f "$tmp/run/peer.out"
    "${pin_server[@]}" node bench/fanout_peers.js "${args[@]}" >"$tmp/run/peer.out" 2>"$tmp/run/peer.err" &
    peer_pid=$!
    pids+=($!)
    local line
    line=$(wait_for_line "$tmp/run/peer.out" 'peer ready port=[0-9]+' 20 $!) || return 1
    peer_port=${line#*port=}
}

# Starts TARGET for PROTO (sse|ws) and sets the load generator's arguments in
# target_args (subscribe URL, protocol, publisher, server pids). Extra
# changecast flags come from the array cc_extra.
cc_extra=()
start_target() { # TARGET PROTO
    local target=$1 proto=$2 sp
    target_args=()
    case "$target" in
        changecast | changecast-z)
            # -z: the subscribers ask for compression (changecast's default
            # push.compression on gives it); plain: they do not.
            start_standin sp "${standin_extra[@]}" || return 1
            start_changecast "$sp" "${cc_extra[@]}" || return 1
            if [[ $proto == sse ]]; then
                target_args+=(--url "http://127.0.0.1:$cc_push/v1/events?ns=bench.events")
            else
                target_args+=(--url "http://127.0.0.1:$cc_push/v1/ws" --ws-protocol changecast.v1
                    --ws-subscribe '{"type":"subscribe","id":"a","ns":"bench.events"}')
            fi
            target_args+=(--publish-mongo "mongodb://127.0.0.1:$cc_wire/?directConnection=true"
                --server-pids "$cc_pid")
            ;;
        nchan | nchan-z)
            # -z: nchan_deflate_message_for_websocket (one deflated copy of
            # each message for its permessage-deflate subscribers).
            start_nchan "$([[ $target == nchan-z ]] && echo deflate)" || return 1
            target_args+=(--url "http://127.0.0.1:$nchan_port/sub"
                --publish-http "http://127.0.0.1:$nchan_port/pub" --server-pids "$nchan_pids")
            ;;
        node-sse | node-ws | node-ws-z)
            # -z: npm ws with perMessageDeflate, the usual way (a zlib
            # stream per connection, context kept between messages).
            local mode=${target#node-}
            start_peer "${mode%-z}" "" "$([[ $target == *-z ]] && echo --deflate)" || return 1
            target_args+=(--url "http://127.0.0.1:$peer_port/sub"
                --publish-http "http://127.0.0.1:$peer_port/pub" --server-pids "$peer_pid")
            ;;
        node-watch)
            start_standin sp "${standin_extra[@]}" || return 1
            start_peer watch "mongodb://127.0.0.1:$sp/?directConnection=true" || return 1
            target_args+=(--url "http://127.0.0.1:$peer_port/sub"
                --publish-mongo "mongodb://127.0.0.1:$sp/?directConnection=true"
                --server-pids "$peer_pid")
            ;;
        *) log "unknown target $target"; return 1 ;;
    esac
    target_args+=(--proto "$proto")
    [[ $target != *-z ]] || target_args+=(--compress)
}
standin_extra=()

# The targets of LIST that $target_filter keeps (all when it is empty).
kept_targets() { # "LIST"
    local t kept=()
    for t in $1; do
        [[ -z ${target_filter:-} || " $target_filter " == *" $t "* ]] && kept+=("$t")
    done
    echo "${kept[*]}"
}

targets_for() { # PROTO
    if [[ $1 == sse ]]; then
        kept_targets "changecast nchan node-sse node-watch"
    else
        kept_targets "changecast nchan node-ws"
    fi
}

# One fan-out run: starts TARGET for PROTO, runs fanout_load --mode fanout
# with the target's arguments, LOAD_ARGS and the scenario's window
# ($seconds, $warmup, $drain), appends COLUMNS, $round and its logfmt line
# to $runs_tsv, stops the target. What fails is counted and the loop goes on.
run_case() { # "COLUMNS" (tab-separated) TARGET PROTO LOAD_ARG...
    local columns=$1 target=$2 proto=$3 mark line limit
    shift 3
    mark=${#pids[@]}
    if ! start_target "$target" "$proto"; then
        start_failed "$target" "$mark"
        return 0
    fi
    limit=$(awk -v s="$seconds" -v w="$warmup" -v d="$drain" 'BEGIN { printf "%d", s + w + d + 200 }')
    if line=$(timeout "$limit" "${pin_load[@]}" "$bin/fanout_load" --mode fanout \
        "${target_args[@]}" "$@" --seconds "$seconds" --warmup-seconds "$warmup" \
        --drain-seconds "$drain" 2>"$tmp/run/load.err"); then
        printf '%s\t%s\t%s\n' "$columns" "$round" "$line" >>"$runs_tsv"
    else
        load_failed "${columns//$'\t'/ } round $round: $line"
        [[ -z $line ]] || printf '%s\t%s\t%s\n' "$columns" "$round" "$line" >>"$runs_tsv"
    fi
    stop_since "$mark"
}

# The machine and the run, for the results.
machine_lines() { # COMMAND LOAD_START LOAD_END RUN_DESCRIPTION
    echo "- CPUs: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(free -g | awk '/^Mem:/ { print $2 }') GiB"
    echo "- kernel: $(uname -r); Debian $(cat /etc/debian_version 2>/dev/null || echo '?')"
    echo "- changecast $source_state, build dir $(basename "$bin")/ ($(grep -m1 CMAKE_BUILD_TYPE "$bin/CMakeCache.txt" | cut -d= -f2)), libwebsockets $(pkg-config --modversion libwebsockets)"
    echo "- peers: $(nginx -v 2>&1 | sed 's/.*: //') with nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null), Node.js $(node --version), ws $(node -p 'require("ws/package.json").version'), mongodb driver $(node -p 'require("mongodb/package.json").version')"
    echo "- pinning: push servers on CPU $server_cpus; fanout_load, publishers and the stand-in (the database) on CPU $load_cpus"
    echo "- load average (1/5/15 min) before: $2; after: $3 (the machine is shared with other engineers' builds and tests)"
    echo "- command: \`$1\`"
    echo "- $4; $(date -u +%Y-%m-%d)"
}
