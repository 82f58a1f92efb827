#!/usr/bin/env bash
# No module cycle in any crate of the workspace (issue 22): scripts/module-cycles.rs, built with rustc alone,
# reads every target's module tree (library, binaries, tests, examples, benches of each member) and prints
# each cycle with the lines that make it; exit 1 when there is one. Its own tests run first. Quick: no cargo
# build, a few seconds.
#   bash scripts/check-module-cycles.sh [PACKAGE...]   (default: every workspace member)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/std-checker.sh
source "$root/scripts/lib/std-checker.sh"
checker="$(std_checker module-cycles MODULE_CYCLES_EDGES)"
cd "$root"
cargo metadata --format-version 1 --no-deps --offline |
    python3 -c '
import json, sys
wanted = set(sys.argv[1:])
for p in json.load(sys.stdin)["packages"]:
    if wanted and p["name"] not in wanted:
        continue
    for t in p["targets"]:
        if t["kind"] == ["custom-build"]:
            continue
        print("%s %s\t%s\t%s" % (p["name"], t["name"], "/".join(t["kind"]), t["src_path"]))
' "$@" | "$checker"
