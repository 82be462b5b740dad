#!/usr/bin/env bash
# Two oxcd builds side by side: the same oxcd-bench workloads against each, alternating, so
# that a change's cost on the request path shows against the machine's noise.
#
#   bench/ab.sh OLD_OXCD NEW_OXCD [ROUNDS]
#
# e.g. build the commit before a change into another target dir
#   git worktree add /tmp/before <rev> && (cd /tmp/before && CARGO_TARGET_DIR=/tmp/t-before cargo build --release -p oxcd)
#   bench/ab.sh /tmp/t-before/release/oxcd target/release/oxcd
# Workloads: put with one client on 1 member (fsync-bound), linearizable reads by 64 clients
# on 3 members (read-index round trips). Prints ops/s and p50 per run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OLD=${1:?old oxcd binary} NEW=${2:?new oxcd binary} ROUNDS=${3:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p oxcd-bench --bin oxcd-bench)
BENCH=$CARGO_TARGET_DIR/release/oxcd-bench
PORT=$((20000 + RANDOM % 10000))
PIDS=() EPS= DIR=

start() { # BIN MEMBERS
    local bin=$1 n=$2 i init= cl=() pe=()
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/oxcd-ab.XXXXXX") PIDS=()
    for ((i = 0; i < n; i++)); do
        PORT=$((PORT + 2))
        cl+=("http://127.0.0.1:$PORT") pe+=("http://127.0.0.1:$((PORT + 1))")
        init+="${init:+,}m$i=${pe[i]}"
    done
    for ((i = 0; i < n; i++)); do
        "$bin" --name "m$i" --data-dir "$DIR/m$i" --listen-client-urls "${cl[i]}" \
            --advertise-client-urls "${cl[i]}" --listen-peer-urls "${pe[i]}" \
            --initial-advertise-peer-urls "${pe[i]}" --initial-cluster "$init" \
            --initial-cluster-token "ab-$PORT" >"$DIR/m$i.log" 2>&1 &
        PIDS+=($!)
    done
    EPS=$(IFS=,; echo "${cl[*]}")
    for ep in "${cl[@]}"; do
        until etcdctl --endpoints="$ep" get ab-ready >/dev/null 2>&1; do sleep 0.2; done
    done
}

stop() { kill "${PIDS[@]}"; wait "${PIDS[@]}" 2>/dev/null || true; rm -rf "$DIR"; }

run() { # LABEL BIN MEMBERS SETUP ARGS...
    local label=$1 bin=$2 n=$3 setup=$4
    shift 4
    start "$bin" "$n"
    # shellcheck disable=SC2086
    [[ -z $setup ]] || "$BENCH" --no-progress --endpoints "$EPS" $setup >/dev/null
    echo "$label: $("$BENCH" --no-progress --endpoints "$EPS" "$@" | tail -1 |
        jq -r '"\(.ops_per_s | floor) ops/s, p50 \(.p50_ms) ms"')"
    stop
}

PRELOAD="--target leader --conns 4 --clients 16 --total 1000 put --sequential-keys --key-space-size 1000 --val-size 256"
for ((round = 1; round <= ROUNDS; round++)); do
    for side in old new; do
        bin=$OLD
        [[ $side == new ]] && bin=$NEW
        run "round $round, $side, put 1 client, 1 member" "$bin" 1 "" \
            --target leader --conns 1 --clients 1 --duration=10s put --key-size 8 --val-size 256 --key-space-size 100000
        run "round $round, $side, linearizable range 64 clients, 3 members" "$bin" 3 "$PRELOAD" \
            --target all --conns 3 --clients 64 --duration=10s range --consistency l --key-space-size 1000
    done
done
