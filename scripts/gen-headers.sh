#!/usr/bin/env bash
# Generate the C headers of libhsm_abi with a pinned cbindgen.
#   scripts/gen-headers.sh           regenerate include/hsm_client_data.h and include/hsm_abi.h
#   scripts/gen-headers.sh --check   regenerate into a temp dir; fail with a diff if include/ drifted
set -euo pipefail

CBINDGEN_VERSION=0.29.4
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
crate="$root/crates/hsm-abi"
# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"
target_dir="$(cargo_target_dir)"
tools="$target_dir/tools"

check=0
case "${1:-}" in
    --check) check=1 ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

cbindgen_ok() {
    [ -x "$1" ] && [ "$("$1" --version 2>/dev/null)" = "cbindgen $CBINDGEN_VERSION" ]
}

cbindgen=""
if command -v cbindgen >/dev/null && cbindgen_ok "$(command -v cbindgen)"; then
    cbindgen="$(command -v cbindgen)"
elif cbindgen_ok "$tools/bin/cbindgen"; then
    cbindgen="$tools/bin/cbindgen"
else
    echo "installing cbindgen $CBINDGEN_VERSION into $tools" >&2
    cargo install cbindgen --version "$CBINDGEN_VERSION" --locked --root "$tools" >&2
    cbindgen="$tools/bin/cbindgen"
    cbindgen_ok "$cbindgen" || { echo "cbindgen $CBINDGEN_VERSION not usable at $cbindgen" >&2; exit 1; }
fi

out="$root/include"
if [ "$check" = 1 ]; then
    out="$(mktemp -d)"
    trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

"$cbindgen" --quiet --config "$crate/cbindgen-sdk.toml" --output "$out/hsm_client_data.h" "$crate"
"$cbindgen" --quiet --config "$crate/cbindgen-abi.toml" --output "$out/hsm_abi.h" "$crate"
"$cbindgen" --quiet --config "$crate/cbindgen-tlsio.toml" --output "$out/tlsio_rustls.h" "$crate/src/ffi/tlsio.rs"

# The split must be clean: the SDK header declares exactly the SDK's seven functions, ours only
# hsm_abi_* ones. A new export lands in both until it is excluded where it does not belong.
declared() { grep -oE '^[A-Za-z][^#(]*[ *]([a-z_][a-z0-9_]*)\(' "$1" | grep -v '^typedef' |
    sed -E 's/.*[ *]([a-z_][a-z0-9_]*)\($/\1/' | grep -vx 'initialize_hsm_system\|deinitialize_hsm_system' | sort; }
sdk_expected="$(printf '%s\n' hsm_client_key_interface hsm_client_tpm_deinit hsm_client_tpm_init \
    hsm_client_tpm_interface hsm_client_x509_deinit hsm_client_x509_init hsm_client_x509_interface | sort)"
if [ "$(declared "$out/hsm_client_data.h")" != "$sdk_expected" ]; then
    echo "hsm_client_data.h must declare exactly the SDK's seven functions; it declares:" >&2
    declared "$out/hsm_client_data.h" >&2
    echo "(exclude the others in crates/hsm-abi/cbindgen-sdk.toml)" >&2
    exit 1
fi
if declared "$out/hsm_abi.h" | grep -v '^hsm_abi_' >&2; then
    echo "hsm_abi.h declares functions other than hsm_abi_* (above): exclude them in cbindgen-abi.toml" >&2
    exit 1
fi
if [ "$(declared "$out/tlsio_rustls.h")" != tlsio_rustls_get_interface_description ]; then
    echo "tlsio_rustls.h must declare only tlsio_rustls_get_interface_description" >&2
    exit 1
fi
if grep -nE '^(#define HSM_ABI_|typedef .*HSM_ABI_)' "$out/hsm_client_data.h" >&2; then
    echo "hsm_client_data.h declares hsm_abi items: exclude them in cbindgen-sdk.toml" >&2
    exit 1
fi
if grep -nE '^typedef .*HSM_CLIENT_' "$out/hsm_abi.h" >&2; then
    echo "hsm_abi.h declares SDK types: exclude what uses them in cbindgen-abi.toml" >&2
    exit 1
fi

if [ "$check" = 1 ]; then
    status=0
    for h in hsm_client_data.h hsm_abi.h tlsio_rustls.h; do
        if ! diff -u "$root/include/$h" "$out/$h"; then
            echo "include/$h is out of date: run scripts/gen-headers.sh" >&2
            status=1
        fi
    done
    [ "$status" = 0 ] && echo "headers up to date"
    exit "$status"
fi
echo "generated include/hsm_client_data.h include/hsm_abi.h include/tlsio_rustls.h"
