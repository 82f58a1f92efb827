#!/usr/bin/env bash
# Downstream reality: the workspace built against what a new user gets today. A copy of the
# sources resolves every dependency afresh (`cargo update`: the newest semver-compatible
# versions), then `cargo check --workspace --all-targets --all-features` with warnings denied
# (RUSTFLAGS=-D warnings; cargo caps registry crates' own lints, so only our code is judged).
# An upstream deprecation or semver break fails here before a user meets it; our Cargo.lock
# hides both from every other stage. The repository and its Cargo.lock are not touched.
#
# A check, not the tests: the suite runs the tests on the locked versions, and this stage must
# stay within a few minutes of the CI budget. The copy and its build live in target/fresh-deps
# (kept between runs: after the first, only what changed is checked again).
#
# Needs crates.io: without it, skipped loudly outside CI and a failure in CI.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/crates-io.sh
. "$root/scripts/lib/crates-io.sh"
# shellcheck source=lib/cargo.sh
. "$root/scripts/lib/cargo.sh"
need_crates_io fresh-deps

work="$(cargo_target_dir)/fresh-deps"
copy="$work/src"
rm -rf "$copy"
mkdir -p "$copy"
# The sources, without build output or git data (mtimes kept, so unchanged crates stay checked).
tar -C "$root" --exclude=./target --exclude=./fuzz/target --exclude=./.git --exclude=./tests/c/build \
    -cf - . | tar -C "$copy" -xf -

cd "$copy"
echo "fresh-deps: cargo update in a copy of the workspace (what changed against Cargo.lock:)"
cargo update 2>&1 | sed -n 's/^ *\(Updating\|Adding\|Removing\|Downgrading\) /    \1 /p'
echo "fresh-deps: cargo check --workspace --all-targets --all-features, warnings denied (every failing crate reported: --keep-going)"
start=$SECONDS
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-D warnings" CARGO_TARGET_DIR="$work/target" \
    cargo check --workspace --all-targets --all-features --keep-going
echo "fresh-deps: passed in $((SECONDS - start)) s: no warning and no break with today's dependencies"
