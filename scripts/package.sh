#!/usr/bin/env bash
# The crates as crates.io would receive them: `cargo package` of every publishable workspace
# member (examples/rust-device has `publish = false`), in dependency order (cargo resolves each
# package against the ones packaged before it). --no-verify: the packages are not built again
# here, the workspace build covers the code; what this catches is what only packaging sees: a
# path dependency without a version, a missing readme or license field, a file outside the crate,
# a dependency cycle that is not dev-only. Needs crates.io (the packages' lock files resolve
# against it): without it, skipped loudly outside CI and a failure in CI.
#
#   scripts/package.sh        packages land in target/package/*.crate
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/crates-io.sh
. "$root/scripts/lib/crates-io.sh"
need_crates_io package

cd "$root"
# --allow-dirty: CI checks out a clean tree; a developer runs this before committing.
cargo package --workspace --no-verify --locked --allow-dirty
echo "package: every publishable crate packaged (target/package)"
