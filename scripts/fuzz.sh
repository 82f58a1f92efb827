#!/usr/bin/env bash
# Fuzzing kept in the repository: build the cargo-fuzz targets of fuzz/, replay the committed seed corpus
# (fuzz/corpus/TARGET, regression inputs included) and run each target for a bounded time. A crash fails
# the script; libFuzzer leaves the input in fuzz/artifacts/TARGET/: once fixed, commit it to
# fuzz/corpus/TARGET/ as a regression input.
#
#   scripts/fuzz.sh            every target FUZZ_SECONDS seconds (default 20)
#   scripts/fuzz.sh --quick    every target 5 s, no sanitizer (scripts/test.sh); FUZZ_SECONDS still wins
#   FUZZ_TARGETS="pkcs11_uri sas_token" scripts/fuzz.sh     only these
#
# A longer run of one target (new inputs go to a scratch directory, so the committed corpus stays small):
#   cd fuzz && cargo +nightly fuzz run -O TARGET /tmp/fuzz-TARGET corpus/TARGET -- -max_total_time=3600
#
# With a nightly toolchain the targets are built with AddressSanitizer; without one, on stable with
# `-s none` (coverage-guided, no sanitizer).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-20}
if [[ ${1:-} == --quick ]]; then
    seconds=${FUZZ_SECONDS:-5}
fi

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi
# --quick (the test suite) builds on the default toolchain without a sanitizer: fast, and the
# only toolchain a new machine has. The targets are safe Rust: a panic is a crash either way.
if [[ ${1:-} != --quick ]] && rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
    sanitizer=address
else
    fuzz=(cargo fuzz)
    sanitizer=none
fi

"${fuzz[@]}" build -O -s "$sanitizer"
targets=${FUZZ_TARGETS:-$("${fuzz[@]}" list)}
for target in $targets; do
    echo "== fuzz $target (${seconds}s, sanitizer: $sanitizer)"
    scratch=$(mktemp -d)
    mkdir -p "corpus/$target"
    status=0
    "${fuzz[@]}" run -O -s "$sanitizer" "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 2>"$scratch.log" || status=$?
    rm -rf "$scratch"
    if [[ $status -ne 0 ]]; then
        tail -n 60 "$scratch.log"
        rm -f "$scratch.log"
        echo "fuzz: $target failed (status $status); the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^(INFO: seed corpus|#[0-9]+ +DONE)' "$scratch.log" | tail -n 2 || true
    rm -f "$scratch.log"
done
echo "fuzz: every target ran ${seconds}s without a crash"
