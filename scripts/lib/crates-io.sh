# Shared by scripts/fresh-deps.sh and scripts/package.sh (sourced, not run).
#   need_crates_io NAME   returns when crates.io answers; otherwise, in CI (CI set) fails the
#                         script, and elsewhere says loudly that NAME is skipped and exits 0.

need_crates_io() {
    local name="$1" url="https://index.crates.io/config.json" probe
    if command -v curl >/dev/null; then
        probe=(curl -fsS --max-time 20 -o /dev/null "$url")
    else
        url="cargo search (no curl here)"
        probe=(timeout 60 cargo search --limit 1 serde)
    fi
    if "${probe[@]}" >/dev/null 2>"${TMPDIR:-/tmp}/crates-io-probe.$$"; then
        rm -f "${TMPDIR:-/tmp}/crates-io-probe.$$"
        return 0
    fi
    local why
    why="$(cat "${TMPDIR:-/tmp}/crates-io-probe.$$" 2>/dev/null)"
    rm -f "${TMPDIR:-/tmp}/crates-io-probe.$$"
    if [ -n "${CI:-}" ]; then
        echo "$name: FAILED: crates.io cannot be reached ($url: ${why:-no answer}); in CI this check must run" >&2
        exit 1
    fi
    echo "########################################################################" >&2
    echo "## $name: SKIPPED: crates.io cannot be reached" >&2
    echo "## ($url: ${why:-no answer})" >&2
    echo "## Nothing was checked. In CI (CI set) this is a failure." >&2
    echo "########################################################################" >&2
    exit 0
}
