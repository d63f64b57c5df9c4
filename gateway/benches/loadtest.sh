#!/usr/bin/env bash
# Side-by-side load test: the baseline echo bot, then Switchboard (memory
# store, then Redis if redis-server is on the PATH), each driven by
# `switchboard simulate` with the same Telegram workload (secret token
# check, parse, answer via sendMessage), at each connection count.
#
#   cargo build --release -p switchboard --bin switchboard --example baseline
#   gateway/benches/loadtest.sh [SECONDS] [CONNECTIONS...]
#
# Binaries come from ${CARGO_TARGET_DIR:-target}/release. Extra gateway
# settings pass through the environment (SWITCHBOARD__...).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
shift || true
conns=("${@:-16 64}")
bin=${CARGO_TARGET_DIR:-target}/release
workload=(--platforms telegram --taps 0 --locations 0 --rate 0 --chats 20000 --duration "$secs" --quiet)

for c in ${conns[*]}; do
    echo "=== baseline, $c connections"
    BASELINE_BIND=127.0.0.1:8070 BASELINE_API_BASE=http://127.0.0.1:9191/telegram \
        "$bin/examples/baseline" 2>/dev/null &
    baseline=$!
    sleep 0.5
    "$bin/switchboard" simulate --gateway http://127.0.0.1:8070 --listen 127.0.0.1:9191 \
        --connections "$c" --drain 5 "${workload[@]}" || true
    kill "$baseline"; wait "$baseline" 2>/dev/null || true

    echo "=== switchboard, memory store, $c connections"
    "$bin/switchboard" simulate --spawn-gateway --listen 127.0.0.1:0 \
        --connections "$c" "${workload[@]}" || true
done

if command -v redis-server >/dev/null; then
    dir=$(mktemp -d)
    redis-server --port 6399 --save '' --appendonly yes --appendfsync everysec \
        --dir "$dir" --daemonize yes >/dev/null
    for c in ${conns[*]}; do
        echo "=== switchboard, Redis store, $c connections"
        SWITCHBOARD__STORE__ENCRYPTION_KEYS="k1:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=" \
            "$bin/switchboard" simulate --spawn-gateway --store redis://127.0.0.1:6399 \
            --listen 127.0.0.1:0 --connections "$c" "${workload[@]}" || true
    done
    redis-cli -p 6399 shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$dir"
fi
