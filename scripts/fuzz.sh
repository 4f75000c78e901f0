#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a short time each.
#
#   scripts/fuzz.sh [SECONDS]          # default 30 seconds per target
#   FUZZ_TARGETS="decoder" scripts/fuzz.sh 600
#
# Installs cargo-fuzz (from crates.io) if it is missing. cargo-fuzz builds with nightly-only
# compiler flags (-Zsanitizer=address and friends); this machine has only the stable toolchain, so
# the script sets RUSTC_BOOTSTRAP=1, which lets stable rustc accept them (on a nightly toolchain it
# changes nothing). The fuzz build has its own target directory (fuzz/target, or
# $FUZZ_TARGET_DIR) so its sanitizer flags never invalidate an ordinary build.
#
# Each target starts from its committed seeds (fuzz/seeds/TARGET, if any) and from what earlier
# runs kept (fuzz/corpus/TARGET, not committed). A crash stops that target, leaves the input in
# fuzz/artifacts/TARGET/, and makes the script exit non-zero after the other targets have run;
# `cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...` replays it. A crash becomes a
# regression test (in tests/, or beside the code it found wrong) before it is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
targets="${FUZZ_TARGETS:-decoder handshake chat_request extensions}"

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

failed=()
for target in $targets; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    dirs=("$corpus")
    if [ -d "fuzz/seeds/$target" ]; then
        dirs+=("fuzz/seeds/$target")
    fi
    log="$(mktemp)"
    echo "=== $target: ${seconds}s"
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: the read path must never
    # allocate without bound, so a run over 2 GiB is a finding too.
    if cargo fuzz run "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E '^Done [0-9]+ runs' "$log" || true
        grep -E 'stat::(number_of_executed_units|peak_rss_mb|new_units_added)' "$log" || true
    else
        tail -n 40 "$log"
        echo "=== $target FAILED; the input is in fuzz/artifacts/$target/"
        failed+=("$target")
    fi
    rm -f "$log"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets with findings: ${failed[*]}"
    exit 1
fi
echo "all fuzz targets ran ${seconds}s each without a finding"
