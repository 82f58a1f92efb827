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
read -r rust_passed rust_failed < <(grep -E '^test result:' target/rust-tests.log | awk '
    { p += $4; f += $6 } END { print p + 0, f + 0 }')
echo "rust: $rust_passed passed, $rust_failed failed"

step "fuzzing (corpus replay and a few seconds per target; a crash fails the suite)"
bash scripts/fuzz.sh --quick

step "C tests (valgrind)"
bash scripts/c-tests.sh 2>&1 | tee target/c-tests.log
read -r c_passed c_failed < <(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' target/c-tests.log | tail -n 1)

echo
echo "total: $((rust_passed + c_passed)) passed, $((rust_failed + c_failed)) failed"
