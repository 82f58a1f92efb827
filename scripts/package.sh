#!/usr/bin/env bash
# The crates as crates.io would receive them: `cargo package` of every publishable workspace
# member (not examples/rust-device: `publish = false`), in dependency order (cargo resolves each
# package against the ones packaged before it). --no-verify: the packages are not built again
# here, the workspace build covers the code; what this catches is what only packaging sees: a
# path dependency without a version, a missing readme or license field, a file outside the crate,
# a dependency cycle that is not dev-only. Needs crates.io (the packages' lock files resolve
# against it): without it, skipped loudly outside CI and a failure in CI.
#
#   scripts/package.sh        packages land in package/*.crate of the cargo target directory
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/crates-io.sh
. "$root/scripts/lib/crates-io.sh"
# shellcheck source=lib/cargo.sh
. "$root/scripts/lib/cargo.sh"
need_crates_io package

cd "$root"
# The publishable members (`cargo package --workspace` would package `publish = false` ones too).
mapfile -t packages < <(cargo metadata --no-deps --locked --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["publish"] is None or p["publish"]:
        print(p["name"])')
[ "${#packages[@]}" -gt 0 ] || { echo "package: cargo metadata listed no publishable crate" >&2; exit 1; }
echo "package: ${packages[*]}"
# --allow-dirty: CI checks out a clean tree; a developer runs this before committing.
cargo package --no-verify --locked --allow-dirty "${packages[@]/#/--package=}"
echo "package: every publishable crate packaged ($(cargo_target_dir)/package)"
