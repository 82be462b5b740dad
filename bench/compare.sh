#!/usr/bin/env bash
# oxcd and Debian's etcd 3.4 side by side: the same workloads through the same client
# (oxcd-bench), one server set at a time, fresh data dirs, default fsync, on loopback.
# Samples each server's CPU (utime+stime) and peak RSS (VmHWM) per workload, measures disk
# use after a bulk load and after delete + compact + defrag, and writes a Markdown table with
# the oxcd/etcd ratio to docs/benchmarks.md (and prints it).
#
#   bench/compare.sh              full run: 1 and 3 members, ~12 s per workload, 100k keys
#   bench/compare.sh --quick      smoke test: 1 member, ~2 s per workload, 10k keys
#   bench/compare.sh --out FILE   write the Markdown to FILE instead
#   bench/compare.sh --members "3"  only these cluster sizes (with --quick: smoke-test 3)
#   bench/compare.sh --scale-keys N  keys for the scale rows (1,000,000; --quick: 20,000;
#                                    0 leaves the scale rows out)
#
# The "TLS" rows serve the client port over https (--cert-file/--key-file, a certificate
# from a CA made with openssl for the run) and run the client with --cacert.
# Builds oxcd and oxcd-bench in release (CARGO_TARGET_DIR is honoured); installs
# etcd-server, etcd-client and jq with apt-get if they are missing. Run it on a quiet
# machine: the load generator shares the cores with the servers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=full
MEMBERS=()
SCALE_KEYS=
OUT=$ROOT/docs/benchmarks.md
while (($#)); do
    case $1 in
        --quick) MODE=quick ;;
        --out) OUT=$2; shift ;;
        --members) read -r -a MEMBERS <<<"$2"; shift ;;
        --scale-keys) SCALE_KEYS=$2; shift ;;
        -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ $MODE == quick ]]; then
    DURATION=2s SIZES=(1) LOAD_KEYS=10000 SCALE_KEYS=${SCALE_KEYS:-20000}
else
    DURATION=12s SIZES=(1 3) LOAD_KEYS=100000 SCALE_KEYS=${SCALE_KEYS:-1000000}
fi
((${#MEMBERS[@]})) && SIZES=("${MEMBERS[@]}")
VAL=256             # value size for every workload
RANGE_KEYS=1000     # keys loaded before the range and mixed workloads
WATCHERS=1000
WATCH_RATE=100      # puts per second feeding the watchers

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools and build -------------------------------------------------------------------

missing=()
[[ -x /usr/bin/etcd ]] || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
ETCD=/usr/bin/etcd
export ETCDCTL_API=3

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# The source the binaries are built from (read now: the tree may change while they run).
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || GIT_REV+=" (with uncommitted changes)"
log "building oxcd and oxcd-bench (release) into $CARGO_TARGET_DIR"
(cd "$ROOT" && cargo build --release -q -p oxcd --bin oxcd -p oxcd-bench --bin oxcd-bench)
OXCD=$CARGO_TARGET_DIR/release/oxcd
BENCH=$CARGO_TARGET_DIR/release/oxcd-bench

WORK=$(mktemp -d "${TMPDIR:-/tmp}/oxcd-compare.XXXXXX")
RESULTS=$WORK/results.jsonl
COMMANDS=$WORK/commands.txt
: >"$RESULTS"
: >"$COMMANDS"
: >"$WORK/bench-commands.txt"
CLK_TCK=$(getconf CLK_TCK)

# --- TLS -------------------------------------------------------------------------------

# A CA and a server certificate for 127.0.0.1 (ECDSA P-256, what both servers take), made
# once per run in $WORK/tls.
CERTS=$WORK/tls
make_certs() {
    mkdir -p "$CERTS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=oxcd-bench-ca -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$CERTS/ca-key.pem" -out "$CERTS/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=oxcd-bench \
        -keyout "$CERTS/server-key.pem" -out "$CERTS/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$CERTS/ext"
    openssl x509 -req -in "$CERTS/server.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca-key.pem" \
        -CAcreateserial -days 2 -extfile "$CERTS/ext" -out "$CERTS/server.pem" 2>/dev/null
}
# Set by workload() for the TLS rows: the client URLs are https, the servers get the
# certificate, etcdctl and oxcd-bench the CA.
SECURE=0
tls_server_args() { ((SECURE)) && echo "--cert-file $CERTS/server.pem --key-file $CERTS/server-key.pem"; true; }
tls_client_args() { ((SECURE)) && echo "--cacert $CERTS/ca.pem"; true; }

# --- clusters --------------------------------------------------------------------------

PIDS=()
ENDPOINTS=
DATA_DIRS=()
RUN=0
# Below Linux's ephemeral range (32768 and up by default), where the benchmark's own client
# connections take their local ports: a server could not bind a port one of them holds.
PORT=$((20000 + RANDOM % 10000))

# Sets PORT to the next port no socket uses (listening or connected).
next_port() {
    PORT=$((PORT + 1))
    while ss -Htan "sport = :$PORT" | grep -q .; do PORT=$((PORT + 1)); done
}

# start_cluster KIND MEMBERS: starts oxcd or etcd with fresh data dirs, waits until every
# member serves linearizable reads. Sets PIDS, ENDPOINTS, DATA_DIRS, CLUSTER_DIR.
start_cluster() {
    local kind=$1 n=$2 bin=$OXCD i
    [[ $kind == etcd ]] && bin=$ETCD
    RUN=$((RUN + 1))
    CLUSTER_DIR=$WORK/run$RUN-$kind-$n
    mkdir -p "$CLUSTER_DIR"
    local clients=() peers=() initial= scheme=http
    ((SECURE)) && scheme=https
    for ((i = 0; i < n; i++)); do
        next_port; clients+=("$scheme://127.0.0.1:$PORT")
        next_port; peers+=("http://127.0.0.1:$PORT")
        initial+="${initial:+,}m$i=${peers[i]}"
    done
    PIDS=() DATA_DIRS=()
    for ((i = 0; i < n; i++)); do
        local args=(--name "m$i" --data-dir "$CLUSTER_DIR/m$i.etcd"
            --listen-client-urls "${clients[i]}" --advertise-client-urls "${clients[i]}"
            --listen-peer-urls "${peers[i]}" --initial-advertise-peer-urls "${peers[i]}"
            --initial-cluster "$initial" --initial-cluster-state new
            --initial-cluster-token "bench-$kind-$RUN")
        # shellcheck disable=SC2207
        args+=($(tls_server_args))
        "$bin" "${args[@]}" >"$CLUSTER_DIR/m$i.log" 2>&1 &
        PIDS+=($!)
        ((i == 0)) && LAUNCH=("$bin" "${args[@]}")
        DATA_DIRS+=("$CLUSTER_DIR/m$i.etcd")
        if ((i == 0)) && ! grep -q "^$kind $n member(s)$(((SECURE)) && echo ", TLS")" "$COMMANDS"; then
            echo "$kind $n member(s)$(((SECURE)) && echo ", TLS"), member m0: $bin ${args[*]}" >>"$COMMANDS"
        fi
    done
    ENDPOINTS=$(IFS=,; echo "${clients[*]}")
    local deadline=$((SECONDS + 60)) started=$EPOCHREALTIME ep ready
    while :; do
        ready=1
        for ((i = 0; i < n; i++)); do
            kill -0 "${PIDS[i]}" 2>/dev/null || die "$kind member m$i exited at start: $(tail -5 "$CLUSTER_DIR/m$i.log")"
        done
        for ep in "${clients[@]}"; do
            # shellcheck disable=SC2046
            etcdctl $(tls_client_args) --endpoints="$ep" --command-timeout=2s get bench-ready >/dev/null 2>&1 || { ready=0; break; }
        done
        if ((ready)); then
            log "$kind, $n member(s): serving after $(elapsed_since "$started") s"
            return 0
        fi
        ((SECONDS < deadline)) || die "$kind cluster of $n not ready within 60 s (logs in $CLUSTER_DIR)"
        sleep 0.2
    done
}

# Starts the single member again on its data dir after SIGTERM; sets RESTART_S to the seconds
# from its start to its first answered linearizable read (each try an etcdctl process: the
# same cost for both servers), or null. Not called in a subshell: it replaces PIDS.
restart_member() {
    local pid=${PIDS[0]} started
    RESTART_S=null
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
    wait "$pid" 2>/dev/null || true
    started=$EPOCHREALTIME
    "${LAUNCH[@]}" >>"$CLUSTER_DIR/m0.log" 2>&1 &
    PIDS=($!)
    local deadline=$((SECONDS + 300))
    until etcdctl --endpoints="$ENDPOINTS" --command-timeout=2s get bench-ready >/dev/null 2>&1; do
        kill -0 "${PIDS[0]}" 2>/dev/null || { log "restart failed: $(tail -3 "$CLUSTER_DIR/m0.log")"; return; }
        ((SECONDS < deadline)) || return
        sleep 0.02
    done
    RESTART_S=$(echo "$started $EPOCHREALTIME" | awk '{printf "%.3f", $2 - $1}')
}

# Prints the member's RSS (KiB) every 50 ms until killed.
sample_rss() {
    while :; do
        awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true
        sleep 0.05
    done
}

# Stops the running cluster (TERM, then KILL after 10 s) and removes its data.
stop_cluster() {
    local pid deadline started=$EPOCHREALTIME
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + 10))
    for pid in "${PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    log "stopped after $(elapsed_since "$started") s"
    PIDS=()
    [[ -n ${CLUSTER_DIR:-} && -d $CLUSTER_DIR ]] && rm -rf "$CLUSTER_DIR"
    CLUSTER_DIR=
}

# Seconds since an $EPOCHREALTIME reading.
elapsed_since() { echo "$1 $EPOCHREALTIME" | awk '{printf "%.1f", $2 - $1}'; }

cleanup() {
    local status=$?
    ((${#PIDS[@]})) && stop_cluster
    if ((status == 0)); then rm -rf "$WORK"; else log "kept $WORK for inspection"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- sampling --------------------------------------------------------------------------

# CPU ticks (utime + stime) of every member, summed.
cpu_ticks() {
    local pid total=0 f
    for pid in "${PIDS[@]}"; do
        read -r -a f < <(sed 's/^.*) //' "/proc/$pid/stat")
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# Peak RSS (VmHWM, KiB) of the largest member.
peak_rss_kib() {
    local pid kib max=0
    for pid in "${PIDS[@]}"; do
        kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
        ((kib > max)) && max=$kib
    done
    echo "$max"
}

members_alive() {
    local pid
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || return 1; done
}

# bench KIND SIZE WORKLOAD ARGS...: runs oxcd-bench against the running cluster, sampling the
# servers around it, and appends one record to $RESULTS.
bench() {
    local kind=$1 size=$2 workload=$3
    shift 3
    local out=$WORK/$workload-$kind-$size.out t0 t1 status=0
    # shellcheck disable=SC2046
    set -- $(tls_client_args) "$@"
    echo "$size member(s), $workload: oxcd-bench --endpoints \$ENDPOINTS $*" >>"$WORK/bench-commands.txt"
    t0=$(cpu_ticks)
    "$BENCH" --no-progress --endpoints "$ENDPOINTS" "$@" >"$out" 2>"$out.err" || status=$?
    if ! members_alive; then
        record_failure "$kind" "$size" "$workload" "a server died: $(tail -3 "$CLUSTER_DIR"/*.log | tr '\n' ' ')"
        return 1
    fi
    t1=$(cpu_ticks)
    if ((status != 0)); then
        record_failure "$kind" "$size" "$workload" "oxcd-bench exited $status: $(tail -3 "$out.err" | tr '\n' ' ')"
        return 1
    fi
    tail -n1 "$out" | jq -c --arg kind "$kind" --argjson size "$size" --arg workload "$workload" \
        --argjson cpu_s "$(echo "$t0 $t1 $CLK_TCK" | awk '{printf "%.3f", ($2 - $1) / $3}')" \
        --argjson rss_mib "$(echo "$(peak_rss_kib)" | awk '{printf "%.1f", $1 / 1024}')" \
        '. + {kind: $kind, size: $size, workload: $workload, cpu_s: $cpu_s, rss_mib: $rss_mib}' >>"$RESULTS"
    log "$(tail -n1 "$RESULTS" | jq -r '"\(.size) member(s) \(.workload) \(.kind): \(.ops_per_s | floor) ops/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, \(.errors) errors, cpu \(.cpu_s) s, rss \(.rss_mib) MiB"')"
    if [[ $workload == watch ]]; then
        # The same run, with delivery latency measured from the put's send instead of its ack
        # (most events arrive before the ack, so from-ack percentiles are mostly ~0).
        tail -n1 "$RESULTS" | jq -c '.workload = "watch-send" | .p50_ms = .extra.from_send_p50_ms
            | .p99_ms = .extra.from_send_p99_ms' >>"$RESULTS"
    fi
}

record_failure() {
    log "$3 on $1 ($2 members) failed: $4"
    jq -nc --arg kind "$1" --argjson size "$2" --arg workload "$3" --arg error "$4" \
        '{kind: $kind, size: $size, workload: $workload, failed: $error}' >>"$RESULTS"
}

# --- workloads -------------------------------------------------------------------------

D=--duration=$DURATION
WORKLOADS=(put-1 put-64 put-256 range-l range-s mixed watch put-64-auth range-l-auth put-64-tls range-l-tls put-64-gw range-l-gw)
TABLE_ROWS=(put-1 put-64 put-256 range-l range-s mixed watch watch-send load put-64-auth range-l-auth put-64-tls range-l-tls put-64-gw range-l-gw)
declare -A LABEL SETUP ARGS
LABEL[put-1]="put, 1 client"
ARGS[put-1]="--target leader --conns 1 --clients 1 $D put --key-size 8 --val-size $VAL --key-space-size 100000"
LABEL[put-64]="put, 64 clients, 1 conn"
ARGS[put-64]="--target leader --conns 1 --clients 64 $D put --key-size 8 --val-size $VAL --key-space-size 100000"
LABEL[put-256]="put, 256 clients, 16 conns"
ARGS[put-256]="--target leader --conns 16 --clients 256 $D put --key-size 8 --val-size $VAL --key-space-size 100000"
PRELOAD="--target leader --conns 4 --clients 16 --total $RANGE_KEYS put --sequential-keys --key-space-size $RANGE_KEYS --val-size $VAL"
LABEL[range-l]="range 1 key, linearizable, 64 clients"
SETUP[range-l]=$PRELOAD
ARGS[range-l]="--target all --conns 3 --clients 64 $D range --consistency l --key-space-size $RANGE_KEYS"
LABEL[range-s]="range 1 key, serializable, 64 clients"
SETUP[range-s]=$PRELOAD
ARGS[range-s]="--target all --conns 3 --clients 64 $D range --consistency s --key-space-size $RANGE_KEYS"
LABEL[mixed]="mixed 90% reads (l) / 10% puts, 64 clients"
SETUP[mixed]=$PRELOAD
ARGS[mixed]="--target all --conns 3 --clients 64 $D mixed --read-ratio 0.9 --key-space-size $RANGE_KEYS --val-size $VAL"
LABEL[put-64-tls]="put, 64 clients, 1 conn, TLS"
ARGS[put-64-tls]=${ARGS[put-64]}
LABEL[range-l-tls]="range 1 key, linearizable, 64 clients, TLS"
SETUP[range-l-tls]=$PRELOAD
ARGS[range-l-tls]=${ARGS[range-l]}
LABEL[watch]="watch fan-out: $WATCHERS watchers / 10 streams, $WATCH_RATE puts/s (events/s; latency put ack → event)"
LABEL[watch-send]="watch fan-out, same run (latency put send → event)"
ARGS[watch]="--target all --conns 10 --clients 1 --rate $WATCH_RATE $D watch --watchers $WATCHERS --streams 10 --val-size $VAL"
# With auth on, as a user whose one role grants read-write on the benchmark's prefix: every
# request carries a simple token and is checked against the role's permissions.
AUTH_USER="--user bench:bench-password"
LABEL[put-64-auth]="put, 64 clients, 1 conn, auth on (token, prefix role)"
ARGS[put-64-auth]="$AUTH_USER ${ARGS[put-64]}"
LABEL[range-l-auth]="range 1 key, linearizable, 64 clients, auth on (token, prefix role)"
SETUP[range-l-auth]="$AUTH_USER $PRELOAD"
ARGS[range-l-auth]="$AUTH_USER ${ARGS[range-l]}"
# Through the JSON gateway: the same requests as JSON over HTTP/1.1, a connection per client.
LABEL[put-64-gw]="put, 64 clients, JSON gateway (HTTP/1.1, a connection each)"
ARGS[put-64-gw]="--target leader --conns 1 --clients 64 $D gateway-put --key-size 8 --val-size $VAL --key-space-size 100000"
LABEL[range-l-gw]="range 1 key, linearizable, 64 clients, JSON gateway"
SETUP[range-l-gw]=$PRELOAD
ARGS[range-l-gw]="--target all --conns 3 --clients 64 $D gateway-range --consistency l --key-space-size $RANGE_KEYS"
LABEL[load]="load $LOAD_KEYS keys × $VAL B, 64 clients"
ARGS[load]="--target leader --conns 8 --clients 64 load --keys $LOAD_KEYS --val-size $VAL --no-scan"
ARGS[scan]="--target leader load --keys $LOAD_KEYS --scan-only --page-limit 500"
ARGS[scale-load]="--target leader --conns 8 --clients 64 load --keys $SCALE_KEYS --val-size $VAL --no-scan"
ARGS[scale-scan]="--target leader load --keys $SCALE_KEYS --scan-only --page-limit 500"

# Turns auth on in the running cluster: root, and the user `bench` with read-write on bench/.
enable_auth() {
    local ctl=(etcdctl --endpoints="$ENDPOINTS" --command-timeout=30s) step
    for step in "user add root:root-password" "user add bench:bench-password" "role add bench" \
        "role grant-permission bench readwrite bench/ --prefix" "user grant-role bench bench" \
        "auth enable"; do
        # shellcheck disable=SC2086
        "${ctl[@]}" $step >/dev/null || die "auth setup step '$step' failed"
    done
}

# workload KIND SIZE NAME: a fresh cluster, the setup step unmeasured, the workload measured.
workload() {
    local kind=$1 size=$2 name=$3
    SECURE=0
    [[ $name == *-tls ]] && SECURE=1
    start_cluster "$kind" "$size"
    [[ $name == *-auth ]] && enable_auth
    if [[ -n ${SETUP[$name]:-} ]]; then
        # shellcheck disable=SC2086,SC2046
        "$BENCH" --no-progress --endpoints "$ENDPOINTS" $(tls_client_args) ${SETUP[$name]} >"$WORK/setup.out" 2>&1 ||
            log "setup for $name on $kind failed: $(tail -3 "$WORK/setup.out")"
    fi
    # shellcheck disable=SC2086
    bench "$kind" "$size" "$name" ${ARGS[$name]} || true
    stop_cluster
    SECURE=0
}

# storage KIND SIZE: load, scan, then disk use after load and after deleting half of the
# keys, compacting and defragmenting.
storage() {
    local kind=$1 size=$2 width half rev t
    start_cluster "$kind" "$size"
    # shellcheck disable=SC2086
    if bench "$kind" "$size" load ${ARGS[load]} && bench "$kind" "$size" scan ${ARGS[scan]}; then
        local loaded deleted db_loaded db_deleted
        loaded=$(disk_mib) db_loaded=$(db_size_mib)
        local last=$((LOAD_KEYS - 1)) # keys are numbered 0 .. LOAD_KEYS-1, zero-padded
        width=${#last}
        half=$(printf "%0${width}d" $((LOAD_KEYS / 2)))
        local ctl=(etcdctl --endpoints="$ENDPOINTS" --command-timeout=300s)
        t=$(timed "${ctl[@]}" del bench/load/ "bench/load/$half")
        local del_s=$t
        rev=$("${ctl[@]}" endpoint status -w json | jq '[.[].Status.header.revision] | max')
        t=$(timed "${ctl[@]}" compact --physical "$rev"); local compact_s=$t
        t=$(timed "${ctl[@]}" defrag); local defrag_s=$t
        deleted=$(disk_mib) db_deleted=$(db_size_mib)
        if ! grep -q "^storage:" "$COMMANDS"; then
            echo "storage: etcdctl --endpoints=\$ENDPOINTS del bench/load/ bench/load/$half; etcdctl compact --physical \$REV; etcdctl defrag; du -sb <data dir>" >>"$COMMANDS"
        fi
        jq -nc --arg kind "$kind" --argjson size "$size" \
            --argjson disk_loaded "$loaded" --argjson disk_deleted "$deleted" \
            --argjson db_loaded "$db_loaded" --argjson db_deleted "$db_deleted" \
            --argjson del_s "$del_s" --argjson compact_s "$compact_s" --argjson defrag_s "$defrag_s" \
            '{kind: $kind, size: $size, workload: "storage", disk_loaded: $disk_loaded,
              disk_deleted: $disk_deleted, db_loaded: $db_loaded, db_deleted: $db_deleted,
              del_s: $del_s, compact_s: $compact_s, defrag_s: $defrag_s}' >>"$RESULTS"
        log "$size member(s) storage $kind: $loaded MiB after load, $deleted MiB after delete+compact+defrag"
    fi
    stop_cluster
}

# scale KIND: one member loaded with SCALE_KEYS keys, then its memory, database and data dir
# size, `etcdctl snapshot save` (time, file size, the server's peak RSS meanwhile), a full
# paged scan, and a restart to the first linearizable read.
scale() {
    local kind=$1 t
    start_cluster "$kind" 1
    # shellcheck disable=SC2086
    if bench "$kind" 1 scale-load ${ARGS[scale-load]}; then
        local rss_loaded db disk snap_s snap_mib snap_rss restart_s
        rss_loaded=$(peak_rss_kib | awk '{printf "%.1f", $1 / 1024}')
        sleep 2 # oxcd measures its database once a second
        db=$(db_size_mib) disk=$(disk_mib)
        sample_rss "${PIDS[0]}" >"$WORK/rss.samples" &
        local sampler=$!
        snap_s=$(timed etcdctl --endpoints="$ENDPOINTS" --command-timeout=600s snapshot save "$WORK/scale.db")
        kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
        snap_rss=$(sort -n "$WORK/rss.samples" | tail -1 | awk '{printf "%.1f", $1 / 1024}')
        snap_mib=$(stat -c %s "$WORK/scale.db" 2>/dev/null | awk '{printf "%.1f", $1 / 1048576}')
        rm -f "$WORK/scale.db"
        # shellcheck disable=SC2086
        bench "$kind" 1 scale-scan ${ARGS[scale-scan]} || true
        restart_member
        restart_s=$RESTART_S
        if ! grep -q "^scale:" "$COMMANDS"; then
            echo "scale: etcdctl snapshot save <file> (RSS sampled every 50 ms); SIGTERM, start again, etcdctl get until it answers" >>"$COMMANDS"
        fi
        jq -nc --arg kind "$kind" --argjson rss_loaded "$rss_loaded" --argjson db "$db" \
            --argjson disk "$disk" --argjson snap_s "$snap_s" --argjson snap_mib "${snap_mib:-null}" \
            --argjson snap_rss "${snap_rss:-null}" --argjson restart_s "$restart_s" \
            '{kind: $kind, size: 1, workload: "scale", rss_loaded: $rss_loaded, db: $db,
              disk: $disk, snap_s: $snap_s, snap_mib: $snap_mib, snap_rss: $snap_rss,
              restart_s: $restart_s}' >>"$RESULTS"
        log "scale $kind: rss $rss_loaded MiB, db $db MiB, disk $disk MiB, snapshot $snap_s s (peak rss $snap_rss MiB), restart $restart_s s"
    fi
    stop_cluster
}

# Seconds a command took (its output discarded; a failure is logged and gives null).
timed() {
    local started=$EPOCHREALTIME
    if ! "$@" >"$WORK/timed.out" 2>&1; then
        log "failed: $* : $(tail -2 "$WORK/timed.out")"
        echo null
        return
    fi
    echo "$started $EPOCHREALTIME" | awk '{printf "%.3f", $2 - $1}'
}

# On-disk size of the largest member's data dir, MiB.
disk_mib() {
    du -sb "${DATA_DIRS[@]}" | awk '$1 > max {max = $1} END {printf "%.1f", max / 1048576}'
}

# The largest dbSize any member reports, MiB.
db_size_mib() {
    etcdctl --endpoints="$ENDPOINTS" endpoint status -w json 2>/dev/null |
        jq '[.[].Status.dbSize] | max / 1048576 * 10 | round / 10' 2>/dev/null || echo null
}

# --- the run ---------------------------------------------------------------------------

make_certs
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
log "mode $MODE, members ${SIZES[*]}, $DURATION per workload; work dir $WORK"
for size in "${SIZES[@]}"; do
    for name in "${WORKLOADS[@]}"; do
        for kind in oxcd etcd; do workload "$kind" "$size" "$name"; done
    done
    for kind in oxcd etcd; do storage "$kind" "$size"; done
done
if ((SCALE_KEYS > 0)); then
    for kind in oxcd etcd; do scale "$kind"; done
fi

# --- the report ------------------------------------------------------------------------

report() {
    cat <<EOF
# oxcd vs etcd 3.4: side-by-side benchmark

Mode: **$MODE**$([[ $MODE == quick ]] && echo " (smoke test: ${DURATION} per workload, numbers are not meaningful)"), started $STARTED.
Ratio columns are oxcd / etcd: above 1 means oxcd is higher (better for ops/s, worse for
latency, CPU and memory).

| machine | |
| --- | --- |
| nproc | $(nproc) |
| memory | $(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) |
| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') |
| kernel | $(uname -r) |
| load average at start | $LOADAVG |
| oxcd | $GIT_REV |
| etcd | $("$ETCD" --version | head -1 | sed 's/etcd Version: //') (Debian etcd-server) |
| client | oxcd-bench (etcd-client crate over its own HTTP/2 connections, spread over one event-loop thread per CPU), on the same machine as the servers |

EOF
    for size in "${SIZES[@]}"; do
        echo "## $size member(s)"
        echo
        echo "ops/s, latency percentiles (ms), server CPU per operation (µs, all members), peak RSS (MiB, largest member; VmHWM)."
        echo
        echo "| workload | ops/s oxcd | ops/s etcd | × | p50 oxcd | p50 etcd | × | p99 oxcd | p99 etcd | × | CPU µs/op oxcd | CPU µs/op etcd | × | RSS oxcd | RSS etcd | × | errors oxcd / etcd |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        for name in "${TABLE_ROWS[@]}"; do
            jq -rs --argjson size "$size" --arg name "$name" --arg title "${LABEL[$name]}" -f <(table_row_jq) "$RESULTS"
        done
        echo
        echo "Storage: $LOAD_KEYS keys × $VAL B loaded, then a full scan by prefix in pages of 500; then half the keys deleted (one range delete), compacted (--physical) and defragmented."
        echo
        echo "The data dir (du) includes etcd's WAL, which preallocates 64 MiB segment files; dbSize is what each server's Status reports for its backend."
        echo
        echo "| | oxcd | etcd | × |"
        echo "| --- | ---: | ---: | ---: |"
        jq -rs --argjson size "$size" -f <(storage_rows_jq) "$RESULTS"
        echo
    done
    if ((SCALE_KEYS > 0)); then
        echo "## Scale: 1 member, $SCALE_KEYS keys × $VAL B"
        echo
        echo "Loaded by 64 clients; then peak RSS (VmHWM), dbSize (Status) and the data dir (du); etcdctl snapshot save (time, file size, the server's peak RSS while it runs, sampled every 50 ms); a full scan in pages of 500; SIGTERM and a restart on the same data dir, timed to the first answered linearizable read."
        echo
        echo "| | oxcd | etcd | × |"
        echo "| --- | ---: | ---: | ---: |"
        jq -rs --argjson size 1 -f <(scale_rows_jq) "$RESULTS"
        echo
    fi
    echo "## Failures"
    echo
    jq -rs '[.[] | select(.failed)] | if length == 0 then "none" else .[] | "- \(.size) member(s) \(.workload) on \(.kind): \(.failed)" end' "$RESULTS"
    echo
    echo "## Commands"
    echo
    echo '```'
    cat "$COMMANDS"
    sort -u "$WORK/bench-commands.txt"
    echo '```'
}

# jq program: one table row from the oxcd and etcd records of one workload.
table_row_jq() {
    cat <<'JQ'
def num: if . == null then "–" elif . >= 100 then (. | round | tostring)
  elif . >= 10 then (. * 10 | round / 10 | tostring)
  elif . >= 1 then (. * 100 | round / 100 | tostring)
  else (. * 1000 | round / 1000 | tostring) end;
def ratio(a; b): if a == null or b == null or b == 0 then "–" else (a / b * 100 | round / 100 | tostring) end;
def pick(kind): [.[] | select(.size == $size and .workload == $name and .kind == kind)] | last;
(pick("oxcd")) as $o | (pick("etcd")) as $e
| def cpu(r): if r == null or r.failed or r.ops == 0 then null else r.cpu_s * 1e6 / r.ops end;
  def f(r; field): if r == null or r.failed then null else r[field] end;
  def errs(r): if r == null then "–" elif r.failed then "failed" else (r.errors | tostring) end;
  "| \($title) | \(f($o; "ops_per_s") | num) | \(f($e; "ops_per_s") | num) | \(ratio(f($o; "ops_per_s"); f($e; "ops_per_s")))"
  + " | \(f($o; "p50_ms") | num) | \(f($e; "p50_ms") | num) | \(ratio(f($o; "p50_ms"); f($e; "p50_ms")))"
  + " | \(f($o; "p99_ms") | num) | \(f($e; "p99_ms") | num) | \(ratio(f($o; "p99_ms"); f($e; "p99_ms")))"
  + " | \(cpu($o) | num) | \(cpu($e) | num) | \(ratio(cpu($o); cpu($e)))"
  + " | \(f($o; "rss_mib") | num) | \(f($e; "rss_mib") | num) | \(ratio(f($o; "rss_mib"); f($e; "rss_mib")))"
  + " | \(errs($o)) / \(errs($e)) |"
JQ
}

# jq program: the storage table's rows for one cluster size.
storage_rows_jq() {
    cat <<'JQ'
def num: if . == null then "–" elif . >= 100 then (. | round | tostring)
  elif . >= 10 then (. * 10 | round / 10 | tostring)
  elif . >= 1 then (. * 100 | round / 100 | tostring)
  else (. * 1000 | round / 1000 | tostring) end;
def ratio(a; b): if a == null or b == null or b == 0 then "–" else (a / b * 100 | round / 100 | tostring) end;
def pick(kind; w): [.[] | select(.size == $size and .workload == w and .kind == kind and (.failed | not))] | last;
def row(title; w; get):
  (pick("oxcd"; w) | if . == null then null else get end) as $o
  | (pick("etcd"; w) | if . == null then null else get end) as $e
  | "| \(title) | \($o | num) | \($e | num) | \(ratio($o; $e)) |";
row("full scan, s"; "scan"; .extra.scan_s),
row("full scan, keys/s"; "scan"; .extra.scan_keys_per_s),
row("scan page p50, ms"; "scan"; .p50_ms),
row("scan page p99, ms"; "scan"; .p99_ms),
row("scan server CPU, s"; "scan"; .cpu_s),
row("keys seen by the scan"; "scan"; .extra.scan_keys),
row("data dir after load, MiB (du)"; "storage"; .disk_loaded),
row("dbSize after load, MiB (Status)"; "storage"; .db_loaded),
row("delete half (one range delete), s"; "storage"; .del_s),
row("compact --physical, s"; "storage"; .compact_s),
row("defrag, s"; "storage"; .defrag_s),
row("data dir after delete + compact + defrag, MiB (du)"; "storage"; .disk_deleted),
row("dbSize after delete + compact + defrag, MiB (Status)"; "storage"; .db_deleted)
JQ
}

# jq program: the scale table's rows.
scale_rows_jq() {
    storage_rows_jq | sed -n '1,10p' # its definitions: num, ratio, pick, row
    cat <<'JQ'
row("load, keys/s"; "scale-load"; .ops_per_s),
row("peak RSS after load, MiB"; "scale"; .rss_loaded),
row("dbSize after load, MiB (Status)"; "scale"; .db),
row("data dir after load, MiB (du)"; "scale"; .disk),
row("snapshot save, s"; "scale"; .snap_s),
row("snapshot file, MiB"; "scale"; .snap_mib),
row("peak RSS during snapshot save, MiB"; "scale"; .snap_rss),
row("full scan, s"; "scale-scan"; .extra.scan_s),
row("full scan, keys/s"; "scale-scan"; .extra.scan_keys_per_s),
row("restart to first linearizable read, s"; "scale"; .restart_s)
JQ
}

mkdir -p "$(dirname "$OUT")"
report >"$OUT"
cat "$OUT"
log "wrote $OUT"
