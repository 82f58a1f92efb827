#!/usr/bin/env bash
# The size of the C library as it ships: the stripped libhsm_abi.so with the default features,
# built with the release-c profile (as scripts/install-c.sh and scripts/deb.sh build it), against a
# budget in bytes. Fails above the budget, so a change that makes the library bigger is seen
# (raise the budget here, with the reason, in the same change). BENCHMARKS.md, "C library size",
# has the table per feature set.
#
#   scripts/c-size.sh [--budget BYTES]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"

# The budget: the target of issue 25, 2 500 000 bytes, reached on 2026-12-06 with 2 499 248 bytes
# (opt-level "s", RELR, our own hex codec, toml 1 without toml_edit, one DER stack: der +
# x509-cert, and LTO actually applied: the library built alone). No room is left: a change that
# grows the library pays for it first (BENCHMARKS.md lists what would: a rustls provider restricted
# to what the C tlsio needs saves 76-116 KB).
budget=2500000
target_goal=2500000
while [ $# -gt 0 ]; do
    case "$1" in
        --budget) budget="${2:?--budget needs a number of bytes}"; shift 2 ;;
        -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "c-size: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

# One DER stack in the C library (RustCrypto der + x509-cert): the crates it replaced stay out of
# hsm-abi's default build (tools and tests may still use them).
for crate in x509-parser rcgen yasna; do
    if (cd "$root" && cargo tree --locked -p hsm-abi -e normal -i "$crate" 2>/dev/null | grep -q .); then
        echo "c-size: $crate is back in the C library's dependencies (cargo tree -p hsm-abi -e normal -i $crate)" >&2
        exit 1
    fi
done

# The shared library alone, as scripts/install-c.sh builds it (alone, so the profile's LTO applies).
(cd "$root" && cargo rustc --locked -p hsm-abi --lib --profile release-c --crate-type cdylib >&2)
so="$(cargo_target_dir)/release-c/libhsm_abi.so"
[ -f "$so" ] || { echo "c-size: $so was not built" >&2; exit 1; }
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
# The profile strips the library already; strip a copy again so the number never includes a
# symbol table whatever the profile says.
strip --strip-all -o "$tmp" "$so"
size="$(stat -c %s "$tmp")"
echo "c-size: stripped libhsm_abi.so (default features, release-c): $size bytes (budget $budget; target $target_goal)"
if [ "$size" -gt "$budget" ]; then
    echo "c-size: $size bytes is above the budget of $budget bytes" >&2
    exit 1
fi
