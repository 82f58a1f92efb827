#!/usr/bin/env bash
# The scripts build wherever cargo builds (issue 21, item 12): cargo_target_dir (scripts/lib/cargo.sh)
# follows CARGO_TARGET_DIR and CARGO_BUILD_TARGET_DIR and defaults to the workspace's target/, and no
# script names `target/` itself (comments aside). Cheap: no build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"

failed=0
expect() {
    if [ "$2" != "$3" ]; then
        echo "check-target-dir: $1: got '$2', expected '$3'" >&2
        failed=1
    fi
}
elsewhere="$(mktemp -d)"
trap 'rm -rf "$elsewhere"' EXIT
expect "default" "$(unset CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR; cargo_target_dir)" "$root/target"
expect "CARGO_TARGET_DIR" "$(unset CARGO_BUILD_TARGET_DIR; CARGO_TARGET_DIR="$elsewhere/a" cargo_target_dir)" "$elsewhere/a"
expect "CARGO_BUILD_TARGET_DIR" \
    "$(unset CARGO_TARGET_DIR; CARGO_BUILD_TARGET_DIR="$elsewhere/b" cargo_target_dir)" "$elsewhere/b"
# Called from another directory, it still answers for this workspace.
expect "from elsewhere" "$(cd "$elsewhere" && unset CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR && cargo_target_dir)" \
    "$root/target"

# A path into target/ written out in a script (not in a comment) is the bug this guards against.
if grep -nE '(^|[^#]*[^A-Za-z0-9_#${-])target/' "$root"/scripts/*.sh "$root"/scripts/lib/*.sh \
    | grep -vE '^[^:]+:[0-9]+:[[:space:]]*#' | grep -v 'check-target-dir.sh'; then
    echo "check-target-dir: the lines above name target/ directly; use cargo_target_dir (scripts/lib/cargo.sh)" >&2
    failed=1
fi
[ "$failed" -eq 0 ] && echo "check-target-dir: ok"
exit "$failed"
