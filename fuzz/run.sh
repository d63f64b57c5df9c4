#!/usr/bin/env bash
# Runs the fuzz targets one after another, each for a bounded time, and
# fails on the first crash, leak, timeout or out-of-memory. CI runs
# `fuzz/run.sh 25`; the documented long run is `fuzz/run.sh 600`
# (docs/SECURITY.md, "Fuzzing").
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# cargo-fuzz needs nightly-only flags (-Zsanitizer, sancov passes); with no
# nightly toolchain on the machine, RUSTC_BOOTSTRAP=1 lets the stable
# compiler accept them. FUZZ_SANITIZER=none skips AddressSanitizer (faster,
# and the code under test forbids `unsafe`; ASan guards the dependencies).
set -euo pipefail
cd "$(dirname "$0")"
fuzz_dir=$PWD

seconds=${1:-25}
shift || true
all_targets=(messenger_webhook whatsapp_webhook telegram_webhook render config_loader shop_file redact_pii)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$fuzz_dir/target}"
sanitizer=${FUZZ_SANITIZER:-address}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

fixtures=${SWITCHBOARD_FIXTURES:-$fuzz_dir/../../shared/fixtures}
if [ ! -d "$fixtures" ]; then
    echo "no fixtures at $fixtures: place shared/ beside the checkout or set SWITCHBOARD_FIXTURES" >&2
    exit 1
fi

# Seeds: every fixture as a correctly signed webhook (first byte 0, see
# WebhookInput::split), a few as unsigned and wrongly signed ones, the
# config examples and the demo shop. Copied at run time so the fixtures
# stay in one place; the corpus directories keep what earlier runs found.
seed() {
    local target=$1 platform=$2
    mkdir -p "corpus/$target"
    for file in "$fixtures/$platform"/*.json; do
        local name
        name=$(basename "$file" .json)
        { printf '\x00'; cat "$file"; } >"corpus/$target/seed-signed-$name"
    done
    local first
    first=$(ls "$fixtures/$platform"/*.json | head -n 1)
    { printf '\x01'; cat "$first"; } >"corpus/$target/seed-unsigned"
    { printf '\x03'; cat "$first"; } >"corpus/$target/seed-wrong-secret"
    { printf '\x02\x0bsha256=00ff'; cat "$first"; } >"corpus/$target/seed-arbitrary-header"
}
seed messenger_webhook messenger
seed whatsapp_webhook whatsapp
seed telegram_webhook telegram
mkdir -p corpus/render corpus/config_loader corpus/shop_file
cp seeds/config_loader/*.toml corpus/config_loader/
cp ../gateway/src/defaults.toml corpus/config_loader/seed-defaults.toml
cp ../core-bot/data/demo_shop.toml corpus/shop_file/seed-demo-shop.toml
mkdir -p corpus/redact_pii
cp seeds/redact_pii/* corpus/redact_pii/

dict_for() {
    case $1 in
        *_webhook) echo "dicts/json.dict" ;;
        config_loader | shop_file) echo "dicts/toml.dict" ;;
        *) echo "" ;;
    esac
}

echo "== building fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer" >/dev/null

mkdir -p logs
failed=()
for target in "${targets[@]}"; do
    dict=$(dict_for "$target")
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1)
    [ -n "$dict" ] && args+=(-dict="$dict")
    echo "== $target for ${seconds}s"
    if cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- "${args[@]}" \
        >"logs/$target.log" 2>&1; then
        # "#N DONE cov: C ft: F corp: K/..." is libFuzzer's last status line.
        grep -E '^#[0-9]+\s+DONE' "logs/$target.log" | tail -n 1 || true
        grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' "logs/$target.log" || true
    else
        echo "!! $target failed; last lines of fuzz/logs/$target.log:"
        tail -n 40 "logs/$target.log"
        ls -1 "artifacts/$target" 2>/dev/null | sed "s|^|   reproduce: cargo fuzz run $target fuzz/artifacts/$target/|" || true
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found problems in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzzing: no crashes in ${targets[*]}"
