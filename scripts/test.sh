#!/usr/bin/env bash
# Runs every test of vpcgate on a fresh Debian machine (root): installs what it needs,
# then formatting, lints, unit/integration/differential/fuzz tests, the real
# third-party client tests, and (as root, where AF_XDP works) the live tests.
#
# Sizes for CI; bigger runs: VPCGATE_DIFF_CONFIGS, VPCGATE_DIFF_FRAMES, VPCGATE_FUZZ_SECS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VPCGATE_ROOT"

[ "$(id -u)" = 0 ] && install_debs
ensure_rust
ensure_venv

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features -q -- -D warnings

say "tests (release build: the differential and fuzz tests want speed)"
export VPCGATE_DIFF_CONFIGS="${VPCGATE_DIFF_CONFIGS:-60}"
export VPCGATE_DIFF_FRAMES="${VPCGATE_DIFF_FRAMES:-500}"
export VPCGATE_FUZZ_SECS="${VPCGATE_FUZZ_SECS:-20}"
cargo test --workspace --all-features --release -q

if [ -x .venv/bin/pytest ] && [ -d tests/clients ]; then
  say "third-party clients (flowlogs-reader, DuckDB, moto, prometheus-client)"
  .venv/bin/pytest -q tests/clients
fi

say "all tests passed"
