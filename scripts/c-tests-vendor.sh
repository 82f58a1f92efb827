#!/usr/bin/env bash
# C tests of vendor backends (include/hsm_abi.h, HSM_ABI_VENDOR_TABLE), under valgrind:
# the example backend examples/vendor-ecdsa (built here with its Makefile) loaded by path and
# registered from a C program, driven through the SDK's x509 call sequence and the signer table
# (signatures verified with openssl); deliberately broken vendor libraries
# (tests/c/vendor/broken_vendor.c) refused or reported without crashing; and a DPS registration
# from C: the SDK's x509 HSM interface hands the vendor certificate and `vendor:` key token to the
# rustls TLS IO (tests/c/tlsio/test_tlsio.c --from-hsm), which registers with the DPS emulator.
#   scripts/c-tests-vendor.sh            all tests
#   KEEP_TMP=1 scripts/c-tests-vendor.sh keep the temporary directory for inspection
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"
target_dir="$(cargo_target_dir)" || exit 1
lib="$target_dir/debug/libhsm_abi.a"
src="$root/tests/c"
example="$root/examples/vendor-ecdsa"
inc="$root/include"

for tool in cargo gcc make openssl valgrind python3; do
    command -v "$tool" >/dev/null || { echo "c-tests-vendor: $tool is required" >&2; exit 1; }
done

tmp="$(mktemp -d)"
cleanup() { [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"; }
trap cleanup EXIT
[ -n "${KEEP_TMP:-}" ] && echo "c-tests-vendor: temporary directory $tmp"

# shellcheck source=lib/steps.sh
source "$root/scripts/lib/steps.sh"

# ---- build ----
echo "c-tests-vendor: building hsm-abi and dps-emulator"
(cd "$root" && cargo build -p hsm-abi && cargo build -p dps-emulator) || exit 1
emulator="$target_dir/debug/dps-emulator"
native_libs="$(cd "$root" && cargo rustc -p hsm-abi --lib --crate-type staticlib -- --print native-static-libs 2>&1 \
    | sed -n 's/.*native-static-libs: //p' | tail -n 1)"
[ -n "$native_libs" ] || { echo "c-tests-vendor: no native-static-libs from rustc" >&2; exit 1; }

cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror -g -I "$inc")
link=("$lib" $native_libs -pthread)
build() {
    make -s -C "$example" OUT="$tmp" CFLAGS="${cflags[*]} -O2"
    for n in 1 2 3 4 5 6 7 8 9 10; do
        gcc "${cflags[@]}" -I "$example" -fPIC -shared -DBROKEN="$n" "$src/vendor/broken_vendor.c" \
            -o "$tmp/libbroken$n.so" -lcrypto
    done
    gcc "${cflags[@]}" -I "$src" "$src/vendor/test_vendor.c" "${link[@]}" -o "$tmp/test_vendor"
    gcc "${cflags[@]}" -I "$src" -DWITH_VENDOR_ECDSA -DVENDOR_ECDSA_ENTRY=vendor_ecdsa_table \
        "$src/vendor/test_vendor.c" "$example/vendor_ecdsa.c" "${link[@]}" -lcrypto -o "$tmp/test_vendor_registered"
    # The SDK's TLS transport: the rustls TLS IO test client (owned by the tlsio tests).
    gcc "${cflags[@]}" -D_GNU_SOURCE -I "$src/tlsio" "$src/tlsio/test_tlsio.c" "$src/tlsio/socket_xio.c" "${link[@]}" \
        -o "$tmp/test_tlsio"
}
run build build

# ---- test material: a P-256 device under a test CA ----
pki() {
    cd "$tmp"
    mkdir -p dev
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
    openssl req -x509 -new -key ca.key -subj "/CN=vendor test CA" -days 30 -out ca.pem \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev/key.pem
    openssl req -new -key dev/key.pem -subj "/CN=device-vendor" -out dev/leaf.csr
    printf 'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n' >leaf.ext
    openssl x509 -req -in dev/leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile leaf.ext \
        -out dev/leaf.pem
    cat dev/leaf.pem ca.pem >dev/chain.pem
    openssl pkey -in dev/key.pem -pubout -out dev/pub.pem
    openssl pkey -in dev/key.pem -pubout -outform DER -out dev/pub.der
    printf 'a message signed by the vendor backend\n' >msg.txt
    conf() { printf '[%s]\nbackend = "vendor"\nlibrary = "%s"\nidentity = "%s"\n' "$1" "$2" "$tmp/dev"; }
    conf x509 libvendor_ecdsa.so >vendor.toml
    { conf symmetric_key libvendor_ecdsa.so; conf tpm libvendor_ecdsa.so; } >groups.toml
    for n in 6 7 8 9 10; do conf x509 "libbroken$n.so" >"broken$n.toml"; done
    # For the built-in table: a file identity with a group-derived symmetric key (test vector).
    printf '[x509]\nbackend = "file"\ncertificate = "dev/chain.pem"\nprivate_key = "dev/key.pem"\n[symmetric_key]\nbackend = "file"\nregistration_id = "device-0001"\ngroup_key = "9okJC6lKhmgI33KikQOMre4DvF+vacd9NUl2ATGVC44YeJfOCvzyC1C6KzfcqEqVG3BG8p7Vq5TwEGGfadbhiQ=="\n' \
        >builtin.toml
    # A TLS server certificate for localhost from the same CA, and a line to send.
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key
    openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
    printf 'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile server.ext \
        -out server.pem
    printf 'hello from a vendor key\n' >hello.txt
    printf 'id_scope = "0ne00VENDR"\n\n[[enrollment]]\ntype = "x509-group"\nname = "vendor-devices"\nca = "ca.pem"\n' \
        >emulator.toml
    body='{"registrationId":"device-vendor"}'
    printf 'PUT /0ne00VENDR/registrations/device-vendor/register?api-version=2021-06-01 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "${#body}" "$body" >register.http
}
run pki pki
stop_if_failed

# "Possibly lost" blocks are the process-wide registries of loaded and registered vendor tables,
# kept for the life of the process by design.
vg=(valgrind -q --leak-check=full --show-possibly-lost=no --errors-for-leak-kinds=definite,indirect --error-exitcode=1)

# The SDK's x509 sequence through the loaded example; signature and public key checked by openssl.
sdk() {
    HSM_ABI_CONFIG="$tmp/vendor.toml" "${vg[@]}" "$tmp/test_vendor" sdk device-vendor "$tmp/dev/chain.pem" \
        "$tmp/msg.txt" "$tmp/sig.bin" "$tmp/spki.der"
    cmp "$tmp/spki.der" "$tmp/dev/pub.der"
    openssl dgst -sha256 -verify "$tmp/dev/pub.pem" -signature "$tmp/sig.bin" "$tmp/msg.txt"
}
run sdk_loaded sdk
run missing_groups env HSM_ABI_CONFIG="$tmp/groups.toml" "${vg[@]}" "$tmp/test_vendor" groups
run sdk_registered env -u HSM_ABI_CONFIG "${vg[@]}" "$tmp/test_vendor_registered" registered "$tmp/dev" \
    device-vendor "$tmp/dev/chain.pem" "$tmp/builtin.toml"

# Broken libraries: refused at load time...
refused() { env -u HSM_ABI_CONFIG "${vg[@]}" "$tmp/test_vendor" refused "$tmp/libbroken$1.so" "$2"; }
run broken_wrong_version refused 1 "version 99 is not supported"
run broken_struct_size refused 2 "struct_size 24 is smaller than"
run broken_null_mandatory refused 3 "mandatory field \`sign\` is NULL"
run broken_partial_tpm_group refused 4 "TPM group is incomplete"
run broken_missing_entry_point refused 5 "does not export \`hsm_abi_vendor_table\`"
run not_a_library refused 999 "cannot load"
# ... or reported when they misbehave.
run broken_bad_signature env HSM_ABI_CONFIG="$tmp/broken6.toml" "${vg[@]}" "$tmp/test_vendor" sign-fails \
    "returned a bad signature"
run broken_length_past_buffer env HSM_ABI_CONFIG="$tmp/broken7.toml" "${vg[@]}" "$tmp/test_vendor" create-fails \
    "bytes written into a"
run broken_key_info env HSM_ABI_CONFIG="$tmp/broken9.toml" "${vg[@]}" "$tmp/test_vendor" create-fails \
    "unsupported key: algorithm 2, curve_or_bits 1024"
run broken_short_buffer_forever env HSM_ABI_CONFIG="$tmp/broken10.toml" "${vg[@]}" "$tmp/test_vendor" \
    create-fails "kept growing"
# A vendor writing past its buffer is caught by the canary (the SDK sequence reports it).
overrun() {
    ! HSM_ABI_CONFIG="$tmp/broken8.toml" "$tmp/test_vendor" sdk device-vendor "$tmp/dev/chain.pem" \
        "$tmp/msg.txt" "$tmp/sig8.bin" "$tmp/spki8.der" 2>"$tmp/overrun.err"
    grep -q "wrote past the end" "$tmp/overrun.err"
}
run broken_writes_past_buffer overrun

# TLS handshake from C against openssl s_server, which requires a client certificate from the CA:
# the SDK's x509 interface gives the certificate and the `vendor:` token, the rustls TLS IO signs
# through the vendor backend; s_server -rev answers the line reversed and logs the client's CN.
handshake() {
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
    openssl s_server -accept "127.0.0.1:$port" -cert "$tmp/server.pem" -key "$tmp/server.key" -CAfile "$tmp/ca.pem" \
        -Verify 1 -verify_return_error -naccept 1 -rev -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 \
        </dev/null >"$tmp/s_server.out" 2>&1 &
    server_pid=$!
    trap 'kill "$server_pid" 2>/dev/null || true' EXIT
    for _ in $(seq 100); do grep -q '^ACCEPT' "$tmp/s_server.out" && break; sleep 0.05; done
    HSM_ABI_CONFIG="$tmp/vendor.toml" "${vg[@]}" "$tmp/test_tlsio" --trusted "$tmp/ca.pem" --from-hsm \
        --send "$tmp/hello.txt" --expect "yek rodnev a morf olleh" localhost "$port"
    wait "$server_pid" || true
    grep -q "CN *= *device-vendor" "$tmp/s_server.out" || { cat "$tmp/s_server.out"; return 1; }
}
run tls_handshake_from_c_with_vendor_key handshake

# DPS registration from C: certificate and key token from the SDK's x509 interface (vendor
# backend), TLS by the rustls TLS IO, the emulator answers 202 "assigning" only to a client
# certificate chaining to the enrolled CA.
provision() {
    "$emulator" --config "$tmp/emulator.toml" --port 0 --server-ca-out "$tmp/dps-ca.pem" >"$tmp/dps.out" 2>&1 &
    emulator_pid=$!
    trap 'kill "$emulator_pid" 2>/dev/null || true' EXIT
    for _ in $(seq 100); do grep -q '^listening on' "$tmp/dps.out" && break; sleep 0.05; done
    local port
    port="$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/dps.out")"
    [ -n "$port" ] || { cat "$tmp/dps.out"; return 1; }
    # ring's software AES-GCM defeats memcheck's definedness tracking (see c-tests-tlsio.sh).
    HSM_ABI_CONFIG="$tmp/vendor.toml" "${vg[@]}" --undef-value-errors=no "$tmp/test_tlsio" --trusted "$tmp/dps-ca.pem" \
        --from-hsm --send "$tmp/register.http" --expect '"status":"assigning"' localhost "$port" 2>&1 |
        tee "$tmp/provision.client"
    grep -q 'HTTP/1.1 202' "$tmp/provision.client"
    kill "$emulator_pid"
    wait "$emulator_pid" || true
}
run provision_from_c_with_vendor_key provision

echo "c-tests-vendor: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
