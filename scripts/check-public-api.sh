#!/usr/bin/env bash
# A crate's public surface is what other crates use (issue 22): scripts/public-api.rs, built with rustc
# alone, lists every `pub` item of the workspace's library crates that no other crate, test, example,
# binary or doc names, and fails unless scripts/public-api-allowed.txt names it (the deliberate public API,
# each group with its reason). Its own tests run first. Quick: no cargo build, a few seconds.
#   bash scripts/check-public-api.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"
out="$(cargo_target_dir)/public-api"
mkdir -p "$out"
rustc --edition 2021 --test -o "$out/public-api-tests" "$root/scripts/public-api.rs"
if ! log="$("$out/public-api-tests" -q 2>&1)"; then
    printf '%s\n' "$log" >&2
    echo "check-public-api: the checker's own tests failed" >&2
    exit 1
fi
rustc --edition 2021 -o "$out/public-api" "$root/scripts/public-api.rs"
cd "$root"
cargo metadata --format-version 1 --no-deps --offline |
    python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if any(t["kind"] == ["lib"] or "lib" in t["kind"] or "cdylib" in t["kind"] or "rlib" in t["kind"] for t in p["targets"]):
        print("%s\t%s" % (p["name"], os.path.dirname(p["manifest_path"])))
' | "$out/public-api" "$root" "$root/scripts/public-api-allowed.txt"
