#!/usr/bin/env bash
# Side-by-side load test with wrk and a fake Telegram API served by nginx,
# the method of issue 8's reference numbers: the baseline echo bot, then
# Switchboard on the memory store, then on Redis (if redis-server is on
# the PATH), at each connection count. Replies are counted where they
# land (nginx's request counter), during the run and after it drains.
#
#   apt-get install wrk nginx-light     # once
#   cargo build --release -p switchboard --bin switchboard --example baseline
#   gateway/benches/wrk.sh [SECONDS] [CONNECTIONS...]
#
# Binaries come from ${CARGO_TARGET_DIR:-target}/release. Ports: nginx
# 9191, baseline 8070, gateway 8080 (admin 8081), Redis 6399.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
shift || true
conns=("${@:-16 64}")
bin=${CARGO_TARGET_DIR:-target}/release
here=gateway/benches/wrk
for tool in wrk nginx; do
    command -v "$tool" >/dev/null || {
        echo "wrk.sh needs $tool: apt-get install wrk nginx-light" >&2
        exit 1
    }
done
[ -x "$bin/switchboard" ] && [ -x "$bin/examples/baseline" ] || {
    echo "build first: cargo build --release -p switchboard --bin switchboard --example baseline" >&2
    exit 1
}

scratch=$(mktemp -d)
mkdir -p "$scratch/tmp"
nginx -p "$scratch" -c "$PWD/$here/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
pids=("$nginx_pid")
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    redis-cli -p 6399 shutdown nosave >/dev/null 2>&1 || true
    wait 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT
sleep 0.3

replies() {
    # nginx flushes its log every 200 ms.
    sleep 0.3
    wc -l <"$scratch/replies.log" 2>/dev/null || echo 0
}

# Runs wrk against $1 (the webhook URL) and reports replies/s during the
# run, then waits for the replies to drain (at most 30 s).
measure() {
    local url=$1 before after settled
    before=$(replies)
    wrk -t1 -c"$c" -d"${secs}s" --latency -s "$here/telegram.lua" "$url" | tee "$scratch/wrk.out" |
        grep -E "Requests/sec|Non-2xx|requests in|Latency|^ +(50|90|99)%"
    after=$(replies)
    echo "replies during the run: $(((after - before) / secs))/s"
    settled=$after
    for _ in $(seq 30); do
        sleep 1
        local now
        now=$(replies)
        [ "$now" -eq "$settled" ] && break
        settled=$now
    done
    local sent rejected
    sent=$(awk '/requests in/ {print $1}' "$scratch/wrk.out")
    rejected=$(awk '/Non-2xx/ {print $5}' "$scratch/wrk.out")
    echo "acknowledged $((sent - ${rejected:-0})), answered $((settled - before)) (after draining)"
}

gateway_env=(
    SWITCHBOARD__SERVER__BIND=127.0.0.1:8080
    SWITCHBOARD__SERVER__ADMIN_BIND=127.0.0.1:8081
    SWITCHBOARD__SERVER__LOG_LEVEL=error
    SWITCHBOARD__SANDBOX__ENABLED=false
    SWITCHBOARD__PLATFORMS__TELEGRAM__API_BASE=http://127.0.0.1:9191/telegram
    # The abuse limits and the platforms' send rates would cap a load test
    # (the same list as `simulate --spawn-gateway`).
    SWITCHBOARD__ABUSE__SENDER_MESSAGES_PER_MINUTE=1000000
    SWITCHBOARD__ABUSE__SENDER_BURST=1000000
    SWITCHBOARD__ABUSE__CHANNEL_MESSAGES_PER_SECOND=1000000
    SWITCHBOARD__ABUSE__CHANNEL_BURST=1000000
    SWITCHBOARD__SENDER__TELEGRAM_PER_SECOND=100000
    SWITCHBOARD__SENDER__CHAT_PER_SECOND=100000
    SWITCHBOARD__SENDER__GROUP_PER_MINUTE=6000000
)

run_gateway() {
    env "${gateway_env[@]}" "$@" "$bin/switchboard" serve >"$scratch/gateway.log" 2>&1 &
    gateway=$!
    pids+=("$gateway")
    for _ in $(seq 50); do
        curl -sf http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
        sleep 0.1
    done
    measure http://127.0.0.1:8080/webhooks/telegram/demo-telegram
    kill "$gateway"
    wait "$gateway" 2>/dev/null || true
}

for c in ${conns[*]}; do
    echo "=== baseline, $c connections"
    BASELINE_BIND=127.0.0.1:8070 BASELINE_API_BASE=http://127.0.0.1:9191/telegram \
        "$bin/examples/baseline" 2>/dev/null &
    baseline=$!
    pids+=("$baseline")
    sleep 0.5
    measure http://127.0.0.1:8070/webhooks/telegram/demo-telegram
    kill "$baseline"
    wait "$baseline" 2>/dev/null || true

    echo "=== switchboard, memory store, $c connections"
    run_gateway
done

if command -v redis-server >/dev/null; then
    redis-server --port 6399 --save '' --appendonly yes --appendfsync everysec \
        --dir "$scratch" --daemonize yes >/dev/null
    for c in ${conns[*]}; do
        echo "=== switchboard, Redis store, $c connections"
        run_gateway SWITCHBOARD__STORE__URL=redis://127.0.0.1:6399 \
            SWITCHBOARD__STORE__ENCRYPTION_KEYS="k1:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
    done
fi
