#!/usr/bin/env bash
# Runs every fuzz target (fuzz/: cargo-fuzz, libFuzzer) for a bounded time each, starting from
# its seed corpus. Part of the test command; installs cargo-fuzz (and uses the nightly
# toolchain, or stable with RUSTC_BOOTSTRAP) when missing. A crash fails the run, and
# libFuzzer writes the input that caused it under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
for target in decode records launch frames vrpn datagrams; do
    echo "== fuzz $target for ${seconds} s"
    # The seeds stay as committed: new inputs go to a scratch corpus.
    scratch="$(mktemp -d)"
    set +e
    cargo "${toolchain[@]}" fuzz run "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
        | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==|INFO: seed corpus|.*([Ee]rror|panicked|SUMMARY|[Cc]rash|artifact))'
    status="${PIPESTATUS[0]}"
    set -e
    rm -rf "$scratch"
    if [ "$status" -ne 0 ]; then
        echo "== fuzz $target FAILED (exit $status): the input is in fuzz/artifacts/$target/"
        exit 1
    fi
done
echo "== every fuzz target ran ${seconds} s without a failure"
