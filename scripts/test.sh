#!/usr/bin/env bash
# The whole test suite: set-up, formatting, lints, header drift, Rust tests, C tests under valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "generated headers are up to date"
bash scripts/gen-headers.sh --check

step "Rust tests"
cargo test --workspace --all-features --locked 2>&1 | tee target/rust-tests.log
grep -E '^test result:' target/rust-tests.log | awk '
    { p += $4; f += $6 } END { printf "rust: %d passed, %d failed\n", p, f }'

step "C tests (valgrind)"
bash scripts/c-tests.sh
