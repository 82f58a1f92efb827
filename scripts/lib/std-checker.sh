# A checker of the tree written in std-only Rust (scripts/NAME.rs), built with rustc alone: no cargo build
# (sourced, not run; sources lib/cargo.sh).
#   std_checker NAME [VAR...]   build the checker's own tests and run them (with the environment variables
#                               VAR... unset), then the checker; prints its path. Fails, with the tests'
#                               output, when they fail.

# shellcheck source=cargo.sh
source "$(dirname "${BASH_SOURCE[0]}")/cargo.sh"

std_checker() {
    local name="$1" source out log var
    shift
    source="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/$name.rs"
    out="$(cargo_target_dir)/$name"
    mkdir -p "$out"
    rustc --edition 2021 --test -o "$out/$name-tests" "$source" >&2
    local clear=()
    for var in "$@"; do
        clear+=(-u "$var")
    done
    if ! log="$(env "${clear[@]}" "$out/$name-tests" -q 2>&1)"; then
        printf '%s\n' "$log" >&2
        echo "check-$name: the checker's own tests failed" >&2
        return 1
    fi
    rustc --edition 2021 -o "$out/$name" "$source" >&2
    printf '%s\n' "$out/$name"
}
