#!/usr/bin/env bash
# A crate's public surface is what other crates use (issue 22): scripts/public-api.rs, built with rustc
# alone, lists every `pub` item of the workspace's library crates that no other crate, test, example,
# binary or doc names, and fails unless scripts/public-api-allowed.txt names it (the deliberate public API,
# each group with its reason). Its own tests run first. Quick: no cargo build, a few seconds.
#   bash scripts/check-public-api.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/std-checker.sh
source "$root/scripts/lib/std-checker.sh"
checker="$(std_checker public-api)"
cd "$root"
cargo metadata --format-version 1 --no-deps --offline |
    python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if any(t["kind"] == ["lib"] or "lib" in t["kind"] or "cdylib" in t["kind"] or "rlib" in t["kind"] for t in p["targets"]):
        print("%s\t%s" % (p["name"], os.path.dirname(p["manifest_path"])))
' | "$checker" "$root" "$root/scripts/public-api-allowed.txt"
