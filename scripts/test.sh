#!/usr/bin/env bash
# The whole test suite: installs what is missing, then formatting, lints, every test on the
# default backend (Vulkan; lavapipe without a GPU), the rendering tests again on GL, and every
# fuzz target for a bounded time.
# Nothing is skipped: a missing driver fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests (default backend)"
# The multi-host launcher test needs root and network namespaces; here it must run, not skip.
export LOCKSTEP_REQUIRE_NETNS=1
cargo test --workspace --locked
echo "== rendering tests on the GL backend"
# Selected by name within the workspace, so the build above (same feature set) is reused.
LOCKSTEP_TEST_BACKEND=gl cargo test --workspace --locked --test render --test gltf_import
echo "== fuzzing every network decoder for a bounded time"
bash scripts/fuzz.sh
echo "== all tests passed"
