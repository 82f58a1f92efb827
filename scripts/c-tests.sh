#!/usr/bin/env bash
# Build libhsm_abi.a, build the C tests of tests/c against it through the generated headers
# only, and run each under valgrind with test certificates, keys and configurations made by
# the openssl CLI in a temporary directory. Exits non-zero on any failure.
#   scripts/c-tests.sh            all tests
#   KEEP_TMP=1 scripts/c-tests.sh keep the temporary directory for inspection
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"
target_dir="$(cargo_target_dir)" || exit 1
lib="$target_dir/debug/libhsm_abi.a"
so="$target_dir/debug/libhsm_abi.so"
src="$root/tests/c"
inc="$root/include"

for tool in cargo gcc g++ openssl valgrind nm; do
    command -v "$tool" >/dev/null || { echo "c-tests: $tool is required" >&2; exit 1; }
done

tmp="$(mktemp -d)"
if [ -z "${KEEP_TMP:-}" ]; then
    trap 'rm -rf "$tmp"' EXIT
else
    echo "c-tests: temporary directory $tmp"
fi

# shellcheck source=lib/steps.sh
source "$root/scripts/lib/steps.sh"

# ---- build ----
echo "c-tests: building hsm-abi and hsmctl"
# hsmctl makes test keys; built on its own so its features do not change the library's.
(cd "$root" && cargo build -p hsmctl && cargo build -p hsm-abi) || exit 1
hsmctl="$target_dir/debug/hsmctl"
# The link line for a Rust staticlib: ask rustc (this also rebuilds only the staticlib).
native_libs="$(cd "$root" && cargo rustc -p hsm-abi --lib --crate-type staticlib -- --print native-static-libs 2>&1 \
    | sed -n 's/.*native-static-libs: //p' | tail -n 1)"
if [ -z "$native_libs" ]; then
    echo "c-tests: could not read native-static-libs from rustc" >&2
    exit 1
fi
echo "c-tests: native libs: $native_libs"
[ -f "$lib" ] || { echo "c-tests: $lib missing" >&2; exit 1; }

# ---- exported symbols ----
check_symbols() {
    local defined
    defined="$(nm -g --defined-only "$1" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u)"
    local ok=0
    for sym in hsm_client_x509_init hsm_client_x509_deinit hsm_client_tpm_init hsm_client_tpm_deinit \
        hsm_client_x509_interface hsm_client_tpm_interface hsm_client_key_interface; do
        grep -qx "$sym" <<<"$defined" || { echo "missing symbol $sym in $1"; ok=1; }
    done
    for sym in initialize_hsm_system deinitialize_hsm_system; do
        if grep -qx "$sym" <<<"$defined"; then
            echo "$1 defines $sym (the SDK defines it)"
            ok=1
        fi
    done
    return $ok
}
check_so_symbols() {
    local defined
    defined="$(nm -D --defined-only "$so" | awk 'NF == 3 { print $3 }')"
    for sym in hsm_client_x509_init hsm_client_key_interface hsm_abi_signer_table hsm_abi_last_error; do
        grep -qx "$sym" <<<"$defined" || { echo "missing $sym in $so"; return 1; }
    done
    ! grep -qx 'initialize_hsm_system' <<<"$defined"
}
run symbols_static check_symbols "$lib"
run symbols_shared check_so_symbols

# ---- test material ----
pki() {
    set -e
    cd "$tmp"
    cat >ca.ext <<'EOF'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    cat >leaf.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out root.key
    openssl req -x509 -new -key root.key -subj "/CN=hsm-abi test root" -days 30 -out root.pem \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out int.key
    openssl req -new -key int.key -subj "/CN=hsm-abi test intermediate" -out int.csr
    openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -days 30 \
        -extfile ca.ext -out int.pem
    for kind in p256 p384 rsa; do
        mkdir -p "$kind"
        case "$kind" in
            p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$kind/key.pem" ;;
            p384) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$kind/key.pem" ;;
            rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$kind/key.pem" ;;
        esac
        openssl req -new -key "$kind/key.pem" -subj "/CN=device-$kind" -out "$kind/leaf.csr"
        openssl x509 -req -in "$kind/leaf.csr" -CA int.pem -CAkey int.key -CAcreateserial -days 30 \
            -extfile leaf.ext -out "$kind/leaf.pem"
        cat "$kind/leaf.pem" int.pem >"$kind/chain.pem"
        openssl verify -CAfile root.pem -untrusted int.pem "$kind/leaf.pem"
        openssl pkey -in "$kind/key.pem" -pubout -out "$kind/pub.pem"
        openssl pkey -in "$kind/key.pem" -pubout -outform DER -out "$kind/pub.der"
        printf '[x509]\nbackend = "file"\ncertificate = "chain.pem"\nprivate_key = "key.pem"\n' >"$kind/hsm.toml"
    done
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256/other-key.pem
    printf 'the message to sign\n' >msg.txt
}
run pki pki
stop_if_failed

# ---- compile ----
cflags=(-Wall -Wextra -Wpedantic -Werror -g -I "$inc")
link=("$lib" $native_libs)
compile_headers() {
    set -e
    gcc -std=c99 "${cflags[@]}" "$src/test_headers.c" "${link[@]}" -o "$tmp/test_headers_c99"
    gcc -std=c11 "${cflags[@]}" "$src/test_headers.c" "${link[@]}" -o "$tmp/test_headers_c11"
    printf '#include "hsm_client_data.h"\n#include "hsm_abi.h"\nint main() { return hsm_client_x509_interface() == 0; }\n' \
        >"$tmp/headers.cpp"
    g++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -I "$inc" -fsyntax-only "$tmp/headers.cpp"
}
run compile_headers compile_headers
for t in test_x509 test_replug test_symm test_bad_input test_threads; do
    run "compile_$t" gcc -std=c11 "${cflags[@]}" "$src/$t.c" "${link[@]}" -pthread -o "$tmp/$t"
done
# -- misused handles (issue 12): stale, double-closed and wrong-kind handles --
run compile_test_handles gcc -std=c11 "${cflags[@]}" "$src/test_handles.c" "${link[@]}" -pthread -o "$tmp/test_handles"
# -- end misused handles --

# ---- run under valgrind ----
vg=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1)

run headers_c99 env -u HSM_ABI_CONFIG "${vg[@]}" "$tmp/test_headers_c99"
run headers_c11 env -u HSM_ABI_CONFIG "${vg[@]}" "$tmp/test_headers_c11"

# x509 via HSM_ABI_CONFIG, one run per key type and scheme; then verify with openssl.
x509_case() {
    local kind="$1" scheme="$2" digest="$3"
    shift 3
    set -e
    local d="$tmp/$kind"
    rm -f "$d/sig.bin" "$d/spki.der"
    HSM_ABI_CONFIG="$d/hsm.toml" "${vg[@]}" "$tmp/test_x509" "device-$kind" "$d/chain.pem" "$d/key.pem" \
        "$scheme" "$tmp/msg.txt" "$d/sig.bin" "$d/spki.der"
    cmp "$d/spki.der" "$d/pub.der"
    openssl dgst "-$digest" "$@" -verify "$d/pub.pem" -signature "$d/sig.bin" "$tmp/msg.txt"
}
run x509_p256 x509_case p256 0x0403 sha256
run x509_p384 x509_case p384 0x0503 sha384
run x509_rsa_pss x509_case rsa 0x0804 sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest
run x509_rsa_pkcs1 x509_case rsa 0x0601 sha512

# The same SDK sequence with the key inside a SoftHSM2 token (PKCS#11) and with the software
# DICE engine: get_key must return a token, and the signature verifies with the leaf's key.
hardware_x509_case() {
    local kind="$1"
    set -e
    local d="$tmp/$kind"
    mkdir -p "$d"
    cd "$d"
    case "$kind" in
        pkcs11)
            eval "$(bash "$root/scripts/softhsm-env.sh" "$d/softhsm" ctest)"
            local uri
            uri=$("$hsmctl" pkcs11 keygen --uri "pkcs11:token=ctest;object=dev?pin-source=file:$PKCS11_PIN_FILE")
            "$hsmctl" pkcs11 csr --uri "$uri" --common-name device-pkcs11 --out dev.csr
            "$hsmctl" certs --out-dir pki --ca-cert "$tmp/int.pem" --ca-key "$tmp/int.key" --csr dev.csr >/dev/null
            cp pki/device-pkcs11.chain.pem chain.pem
            printf '[x509]\nbackend = "pkcs11"\nkey = "%s"\ncertificate_file = "chain.pem"\n' "$uri" >hsm.toml
            ;;
        dice)
            head -c 1024 /dev/urandom >firmware.bin
            "$hsmctl" dice init --uds-file uds.bin >/dev/null
            printf '[x509]\nbackend = "dice"\nuds_file = "uds.bin"\nfirmware_file = "firmware.bin"\nregistration_id = "device-dice"\n' \
                >hsm.toml
            "$hsmctl" dice chain --config hsm.toml --pem >chain.pem
            ;;
    esac
    openssl x509 -in chain.pem -pubkey -noout >pub.pem
    HSM_ABI_CONFIG="$d/hsm.toml" "${vg[@]}" "$tmp/test_x509" "device-$kind" chain.pem - 0x0403 "$tmp/msg.txt" \
        sig.bin spki.der
    openssl pkey -pubin -in pub.pem -outform DER -out pub.der
    cmp spki.der pub.der
    openssl dgst -sha256 -verify pub.pem -signature sig.bin "$tmp/msg.txt"
}
run x509_pkcs11 hardware_x509_case pkcs11
run x509_dice hardware_x509_case dice

# The PKCS#11 token goes away (its directory moved aside) and comes back, under an open signer.
replug_case() {
    set -e
    local d="$tmp/replug"
    mkdir -p "$d"
    cd "$d"
    eval "$(bash "$root/scripts/softhsm-env.sh" "$d/softhsm" replug)"
    local uri
    uri=$("$hsmctl" pkcs11 keygen --uri "pkcs11:token=replug;object=dev?pin-source=file:$PKCS11_PIN_FILE")
    "$hsmctl" pkcs11 csr --uri "$uri" --common-name device-replug --out dev.csr
    "$hsmctl" certs --out-dir pki --ca-cert "$tmp/int.pem" --ca-key "$tmp/int.key" --csr dev.csr >/dev/null
    printf '[x509]\nbackend = "pkcs11"\nkey = "%s"\ncertificate_file = "pki/device-replug.chain.pem"\n' "$uri" \
        >hsm.toml
    openssl x509 -in pki/device-replug.chain.pem -pubkey -noout >pub.pem
    local token_dir
    token_dir=$(find "$d/softhsm/tokens" -mindepth 1 -maxdepth 1 -type d)
    HSM_ABI_CONFIG="$d/hsm.toml" "${vg[@]}" "$tmp/test_replug" "$token_dir" "$d/away" "$tmp/msg.txt" \
        before.sig after.sig
    openssl dgst -sha256 -verify pub.pem -signature before.sig "$tmp/msg.txt"
    openssl dgst -sha256 -verify pub.pem -signature after.sig "$tmp/msg.txt"
}
run pkcs11_replug replug_case

run symm env -u HSM_ABI_CONFIG "${vg[@]}" "$tmp/test_symm"
run bad_input env -u HSM_ABI_CONFIG "${vg[@]}" "$tmp/test_bad_input" "$tmp/p256"
run threads env -u HSM_ABI_CONFIG "${vg[@]}" "$tmp/test_threads" "$tmp/p256/hsm.toml" "$tmp/p256/chain.pem" \
    "$tmp/p256/key.pem"
# -- misused handles (issue 12), under valgrind --
run handles env -u HSM_ABI_CONFIG "${vg[@]}" "$tmp/test_handles" "$tmp/p256"
# -- end misused handles --

# Logging: silent without HSM_ABI_LOG; failures logged to stderr with it.
logging() {
    local quiet loud
    quiet="$(env -u HSM_ABI_CONFIG -u HSM_ABI_LOG "$tmp/test_symm" 2>&1 >/dev/null)"
    [ -z "$quiet" ] || { echo "stderr without HSM_ABI_LOG: $quiet"; return 1; }
    loud="$(env -u HSM_ABI_CONFIG HSM_ABI_LOG=warn "$tmp/test_symm" 2>&1 >/dev/null)"
    grep -q 'ERROR.*hsm_client_set_symm_key_info: cannot parse symm_key' <<<"$loud" \
        || { echo "expected an error log line, got: $loud"; return 1; }
}
run logging logging

# The rustls TLS IO (include/tlsio_rustls.h): its own script, servers and SoftHSM token.
run tlsio bash "$root/scripts/c-tests-tlsio.sh"
run vendor bash "$root/scripts/c-tests-vendor.sh"
run tpm bash "$root/scripts/c-tests-tpm.sh"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
