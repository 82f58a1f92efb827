#!/usr/bin/env bash
# The whole test suite: set-up, formatting, lints, header drift, Rust tests, fuzzing (short), C tests
# under valgrind, the interoperability suite with the real Azure IoT C SDK, and the official Node.js and
# Python SDKs against the emulator. At the end, the wall time of each stage, then the totals.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/cargo.sh
source scripts/lib/cargo.sh

# One full build, never rebuilt piecewise: incremental caches would only take disk (gigabytes).
export CARGO_INCREMENTAL=0

stage_names=()
stage_seconds=()
stage_free=()
# stage NAME CMD...: run CMD as one stage (a heading, its wall time kept for the table at the end);
# returns CMD's status, so a failing stage stops the suite as before (set -e).
stage() {
    local name="$1" start rc=0
    shift
    printf '\n== %s\n' "$name"
    start=$EPOCHREALTIME
    "$@" || rc=$?
    stage_names+=("$name")
    stage_seconds+=("$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')")
    stage_free+=("$(df -Pk . | awk 'NR == 2 { printf "%.1f", $4 / 1048576 }')")
    return "$rc"
}
# The table of stage times (also when a stage stopped the suite).
stage_times() {
    [ "${#stage_names[@]}" -gt 0 ] || return 0
    echo
    printf '%-70s %9s %12s\n' "stage" "seconds" "disk free GB"
    local i
    for i in "${!stage_names[@]}"; do
        printf '%-70s %9s %12s\n' "${stage_names[$i]}" "${stage_seconds[$i]}" "${stage_free[$i]}"
    done
    printf '%-70s %9s\n' "all stages" "$(printf '%s\n' "${stage_seconds[@]}" | awk '{ s += $1 } END { printf "%.1f", s }')"
    [ -z "${target_dir:-}" ] || echo "disk: $(du -sh "$target_dir" 2>/dev/null | cut -f1) in the target directory"
}
trap 'rc=$?; [ "$rc" -eq 0 ] || stage_times' EXIT

stage "set-up (scripts/setup.sh)" bash scripts/setup.sh
target_dir="$(cargo_target_dir)"
mkdir -p "$target_dir"

stage "cargo fmt --check" cargo fmt --all -- --check
stage "cargo clippy (warnings denied)" cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
stage "docs: cargo doc --no-deps, warnings denied (broken links, missing docs where warned)" \
    env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked
stage "generated headers are up to date" bash scripts/gen-headers.sh --check
stage "no module cycles (scripts/check-module-cycles.sh)" bash scripts/check-module-cycles.sh
stage "no unused pub items (scripts/check-public-api.sh)" bash scripts/check-public-api.sh
stage "scripts build where cargo builds (no target/ written out)" bash scripts/check-target-dir.sh

# Packaging and fresh dependencies need crates.io: skipped loudly without it outside CI, a failure in CI.
stage "the crates packaged as crates.io would receive them (scripts/package.sh)" bash scripts/package.sh
stage "fresh dependencies: cargo update in a copy, checked with warnings denied (scripts/fresh-deps.sh)" bash scripts/fresh-deps.sh

rust_tests() {
    cargo test --workspace --all-features --locked --no-fail-fast 2>&1 | tee "$target_dir/rust-tests.log" || true
}
stage "Rust tests" rust_tests
read -r rust_passed rust_failed < <(grep -E '^test result:' "$target_dir/rust-tests.log" | awk '
    { p += $4; f += $6 } END { print p + 0, f + 0 }')
if ! grep -q '^test result:' "$target_dir/rust-tests.log" || grep -qE '^error(\[|:)' "$target_dir/rust-tests.log"; then
    rust_failed=$((rust_failed + 1))
    echo "rust: a test binary did not build or run (see above)"
fi
echo "rust: $rust_passed passed, $rust_failed failed"

stage "fuzzing (corpus replay and a few seconds per target; a crash fails the suite)" bash scripts/fuzz.sh --quick

# suite NAME: scripts/NAME.sh, its output also kept in NAME.log of the target directory; never stops the
# suite (its summary line counts, read by suite_counts).
suite() {
    bash "scripts/$1.sh" 2>&1 | tee "$target_dir/$1.log" || true
}
# suite_counts NAME [SKIPPED]: "PASSED FAILED" from the last "N passed, N failed" line of NAME.log. Without
# one: "0 0" outside CI when the log has the line SKIPPED (the script's loud skip), else "0 1".
suite_counts() {
    local log="$target_dir/$1.log" counts
    counts="$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$log" | tail -n 1)"
    if [ -n "$counts" ]; then
        echo "$counts"
    elif [ -z "${CI:-}" ] && [ -n "${2:-}" ] && grep -q "$2" "$log"; then
        echo "0 0"
    else
        echo "$1: no summary line (the script stopped early)" >&2
        echo "0 1"
    fi
}

stage "C tests (valgrind)" suite c-tests
read -r c_passed c_failed < <(suite_counts c-tests)

stage "the real Azure IoT C SDK with libhsm_abi (scripts/sdk-interop.sh)" suite sdk-interop
# No SDK source (a clone without ../shared): said loudly by the script; a failure only in CI.
read -r i_passed i_failed < <(suite_counts sdk-interop 'NO AZURE IOT C SDK SOURCE')

# The C library as it ships (release-c, built by the SDK suite above): its size against the budget,
# then the Debian packages built, checked with lintian, installed, used from C and purged.
stage "the stripped C library within its size budget (scripts/c-size.sh)" bash scripts/c-size.sh
stage "Debian packages: lintian, dpkg -i, a C program through pkg-config, purge (scripts/deb-test.sh)" bash scripts/deb-test.sh

stage "the official Azure IoT Node.js and Python SDKs against the emulator (scripts/official-sdks.sh)" suite official-sdks
# No registry (said loudly by the script): skipped outside CI, a failure in CI or for any other reason.
read -r o_passed o_failed < <(suite_counts official-sdks 'THE OFFICIAL SDKS COULD NOT BE INSTALLED')

passed=$((rust_passed + c_passed + i_passed + o_passed))
failed=$((rust_failed + c_failed + i_failed + o_failed))
stage_times
echo
echo "rust: $rust_passed passed, $rust_failed failed; C: $c_passed passed, $c_failed failed; SDK interop: $i_passed passed, $i_failed failed; official SDKs: $o_passed passed, $o_failed failed"
echo "total: $passed passed, $failed failed"
trap - EXIT
[ "$failed" -eq 0 ]
