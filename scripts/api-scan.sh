#!/usr/bin/env bash
# API security scan: schemathesis against a gateway running on loopback,
# driven by the gateway's own OpenAPI document (GET /admin/openapi.json).
#
#   scripts/api-scan.sh [EXAMPLES_PER_OPERATION]
#
# CI runs `scripts/api-scan.sh 20`; the documented long run is
# `scripts/api-scan.sh 1000` (docs/SECURITY.md, "API scanning"). Every
# check is on (no 5xx, responses match their schemas, status codes and
# content types documented, authentication enforced, ...), in every phase
# (examples, coverage, fuzzing, stateful). Any finding fails the script;
# the report (JUnit and NDJSON) is left in $SCAN_REPORT_DIR.
#
# The gateway runs its demo (embedded defaults, sandbox on) with every
# platform API pointed at its own sandbox, so nothing leaves 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${1:-${SCAN_EXAMPLES:-20}}
version=4.32.5

# CPython 3.11 before 3.11.8 raises "AST constructor recursion depth
# mismatch" inside schemathesis's schema walker (CPython gh-106905), so a
# newer Python is preferred when the machine has one (pyenv's too).
pick_python() {
    if [ -n "${SCAN_PYTHON:-}" ]; then echo "$SCAN_PYTHON"; return; fi
    local candidate root
    root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    for candidate in python3.13 python3.12 "$root"/versions/3.13*/bin/python3 "$root"/versions/3.12*/bin/python3 python3; do
        if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11, 8) and sys.version_info[:2] == (3, 11))' >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
    done
    echo python3
}
python=$(pick_python)
python_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv=${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/schemathesis-$version-py$python_version}
report_dir=${SCAN_REPORT_DIR:-${CARGO_TARGET_DIR:-target}/api-scan}
token=dev-admin-token

if [ ! -x "$venv/bin/st" ]; then
    echo "installing schemathesis $version into $venv ($python)"
    "$python" -m venv "$venv" || {
        echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv) and retry" >&2
        exit 1
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

echo "building the gateway"
cargo build --quiet --bin switchboard
bin="${CARGO_TARGET_DIR:-target}/debug/switchboard"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
public_port=$(free_port)
admin_port=$(free_port)
public="http://127.0.0.1:$public_port"
admin="http://127.0.0.1:$admin_port"

mkdir -p "$report_dir"
log="$report_dir/gateway.log"
SWITCHBOARD__SERVER__BIND="127.0.0.1:$public_port" \
SWITCHBOARD__SERVER__ADMIN_BIND="127.0.0.1:$admin_port" \
SWITCHBOARD__PLATFORMS__TELEGRAM__API_BASE="$public/sandbox/telegram" \
SWITCHBOARD__PLATFORMS__MESSENGER__API_BASE="$public/sandbox/messenger" \
SWITCHBOARD__PLATFORMS__WHATSAPP__API_BASE="$public/sandbox/whatsapp" \
SWITCHBOARD__STORE__URL=memory \
SWITCHBOARD__REGISTRATION__PUBLIC_URL="https://bot.example.com" \
RUST_LOG=warn \
    "$bin" serve >"$log" 2>&1 &
gateway=$!
trap 'kill "$gateway" 2>/dev/null || true; wait "$gateway" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
    curl -fsS "$public/healthz" >/dev/null 2>&1 && break
    kill -0 "$gateway" 2>/dev/null || {
        echo "the gateway did not start; its log:" >&2
        cat "$log" >&2
        exit 1
    }
    sleep 0.1
done

status=0
scan() {
    local name=$1 base=$2
    shift 2
    echo "== schemathesis: $name listener ($examples examples per operation)"
    "$venv/bin/st" run "$admin/admin/openapi.json" \
        --url "$base" \
        --header "Authorization: Bearer $token" \
        --checks all \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples "$examples" \
        --seed "${SCAN_SEED:-20261129}" \
        --request-timeout 10 \
        --workers 2 \
        --suppress-health-check all \
        --report junit,ndjson \
        --report-junit-path "$report_dir/$name.junit.xml" \
        --report-ndjson-path "$report_dir/$name.ndjson" \
        --warnings off \
        "$@" || status=1
}
# SCAN_ONLY=public or SCAN_ONLY=admin scans one listener.
if [ "${SCAN_ONLY:-public}" = public ] || [ -z "${SCAN_ONLY:-}" ]; then
    scan public "$public" --include-path-regex '^/(healthz|webhooks|sandbox)'
fi
if [ "${SCAN_ONLY:-admin}" = admin ] || [ -z "${SCAN_ONLY:-}" ]; then
    scan admin "$admin" --exclude-path-regex '^/(healthz|webhooks|sandbox)'
fi

# The scan must not have hurt the service.
if ! curl -fsS "$public/healthz" >/dev/null || ! kill -0 "$gateway" 2>/dev/null; then
    echo "the gateway stopped answering during the scan; its log: $log" >&2
    status=1
fi
if grep -q "panicked" "$log"; then
    echo "the gateway panicked during the scan; its log: $log" >&2
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "API scan found problems: see above and $report_dir" >&2
else
    echo "API scan: no findings"
fi
exit "$status"
