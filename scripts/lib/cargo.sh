# Where cargo builds (sourced, not run): CARGO_TARGET_DIR, CARGO_BUILD_TARGET_DIR, a
# `build.target-dir` in a .cargo/config.toml, or the default `target/` of the workspace. Scripts
# never name `target/` themselves (scripts/check-target-dir.sh checks that).
#   cargo_target_dir     print the workspace's target directory (absolute), as cargo reports it

cargo_target_dir() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    (cd "$here" && cargo metadata --format-version 1 --no-deps --offline) |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
