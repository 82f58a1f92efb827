#!/usr/bin/env bash
# C tests of the rustls TLS IO (include/tlsio_rustls.h): tests/c/tlsio/test_tlsio.c drives the
# bridge exactly as the SDK's transports do, under valgrind, against `openssl s_server -Verify`
# on 127.0.0.1 and against the DPS emulator (an HTTP PUT register request over the bridge).
# Client keys: in SoftHSM2 (made with pkcs11-tool in a temporary token), in swtpm (hsmctl tpm keygen;
# libhsm_abi built with its `tpm` feature), from the DICE engine, in a PEM file (`file:`
# token) and inline PEM (compatibility). Negative cases end in the SDK's error callbacks.
#   scripts/c-tests-tlsio.sh            all tests
#   KEEP_TMP=1 scripts/c-tests-tlsio.sh keep the temporary directory for inspection
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"
target_dir="$(cargo_target_dir)" || exit 1
lib="$target_dir/debug/libhsm_abi.a"
src="$root/tests/c/tlsio"
inc="$root/include"
softhsm_module=/usr/lib/softhsm/libsofthsm2.so

for tool in cargo gcc g++ openssl valgrind pkcs11-tool softhsm2-util python3 swtpm swtpm_ioctl pkg-config; do
    command -v "$tool" >/dev/null || { echo "c-tests-tlsio: $tool is required" >&2; exit 1; }
done
[ -f "$softhsm_module" ] || { echo "c-tests-tlsio: $softhsm_module is required (softhsm2)" >&2; exit 1; }

tmp="$(mktemp -d)"
cleanup() { [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"; }
trap cleanup EXIT
[ -n "${KEEP_TMP:-}" ] && echo "c-tests-tlsio: temporary directory $tmp"

# shellcheck source=lib/steps.sh
source "$root/scripts/lib/steps.sh"
# Its own `run`: a step's background servers (pids) are killed when the step ends.
# run NAME CMD...: one step in a subshell with errexit on (a step function stops at its first
# failing command); servers it started are stopped when it ends.
run() {
    local name="$1"
    shift
    (
        set -e
        pids=()
        trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
        "$@"
    ) >"$tmp/$name.log" 2>&1
    if [ "$?" -eq 0 ]; then
        pass "$name"
    else
        fail "$name"
        sed 's/^/    /' "$tmp/$name.log"
    fi
}

# ---- build ----
echo "c-tests-tlsio: building hsm-abi and dps-emulator"
(cd "$root" && cargo build -p hsmctl && cargo build -p dps-emulator && cargo build -p hsm-abi) || exit 1
native_libs="$(cd "$root" && cargo rustc -p hsm-abi --lib --crate-type staticlib -- --print native-static-libs 2>&1 \
    | sed -n 's/.*native-static-libs: //p' | tail -n 1)"
[ -n "$native_libs" ] || { echo "c-tests-tlsio: no native-static-libs from rustc" >&2; exit 1; }
emulator="$target_dir/debug/dps-emulator"
hsmctl="$target_dir/debug/hsmctl"

cflags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Werror -g -I "$inc" -I "$src")
link=("$lib" $native_libs -pthread)
run compile_test_tlsio gcc "${cflags[@]}" "$src/test_tlsio.c" "$src/socket_xio.c" "${link[@]}" -o "$tmp/test_tlsio"
header_cpp() {
    printf '#include "tlsio_rustls.h"\nint main() { return tlsio_rustls_get_interface_description() == 0; }\n' >"$tmp/h.cpp"
    g++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -I "$inc" -fsyntax-only "$tmp/h.cpp"
}
run header_cpp header_cpp
run compile_test_tlsio_sdk gcc "${cflags[@]}" -DWITH_OPTION_HANDLER "$src/test_tlsio.c" "$src/socket_xio.c" \
    "$src/option_handler.c" "${link[@]}" -o "$tmp/test_tlsio_sdk"

# ---- keys and certificates ----
pki() {
    set -e
    cd "$tmp"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
        serverAuth DNS:localhost >server.ext
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext
    for ca in server-root device-root rogue-root; do
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$ca.key"
        openssl req -x509 -new -key "$ca.key" -subj "/CN=$ca" -days 30 -out "$ca.pem" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    done
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key
    openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
    openssl x509 -req -in server.csr -CA server-root.pem -CAkey server-root.key -CAcreateserial -days 30 \
        -extfile server.ext -out server.pem
    # Device keys in files: P-256, P-384, RSA (PSS in TLS 1.3).
    for kind in p256 p384 rsa; do
        case "$kind" in
            p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$kind.key" ;;
            p384) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$kind.key" ;;
            rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$kind.key" ;;
        esac
        openssl req -new -key "$kind.key" -subj "/CN=device-$kind" -out "$kind.csr"
        openssl x509 -req -in "$kind.csr" -CA device-root.pem -CAkey device-root.key -CAcreateserial -days 30 \
            -extfile client.ext -out "$kind.pem"
    done
    openssl req -new -key p256.key -subj "/CN=device-p256" -out rogue.csr
    openssl x509 -req -in rogue.csr -CA rogue-root.pem -CAkey rogue-root.key -CAcreateserial -days 30 \
        -extfile client.ext -out rogue.pem

    # A SoftHSM2 token with a P-256 key made on the token; its certificate carries the token's
    # public key (the CSR's own key is replaced with -force_pubkey).
    mkdir -p tokens
    printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$tmp" >softhsm2.conf
    export SOFTHSM2_CONF="$tmp/softhsm2.conf"
    softhsm2-util --init-token --free --label tlsio --so-pin 87654321 --pin 123456
    printf '123456' >pin
    pkcs11-tool --module "$softhsm_module" --token-label tlsio --login --pin 123456 \
        --keypairgen --key-type EC:prime256v1 --label device-hsm --id 01
    pkcs11-tool --module "$softhsm_module" --token-label tlsio --read-object --type pubkey --label device-hsm \
        -o hsm-pub.der
    openssl pkey -pubin -inform DER -in hsm-pub.der -out hsm-pub.pem
    openssl req -new -key p256.key -subj "/CN=device-hsm" -out hsm.csr
    openssl x509 -req -in hsm.csr -force_pubkey hsm-pub.pem -CA device-root.pem -CAkey device-root.key \
        -CAcreateserial -days 30 -extfile client.ext -out hsm.pem
    # The DPS request of each device.
    for id in device-hsm device-p256 device-dice device-dice-solo; do
        body="{\"registrationId\":\"$id\"}"
        printf 'PUT /0ne00TLSIO/registrations/%s/register?api-version=2021-06-01 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
            "$id" "${#body}" "$body" >"$id.http"
    done
    # A DICE identity (software DICE engine): the DeviceID certificate is signed by device-root.
    head -c 32 /dev/urandom >uds.bin
    chmod 600 uds.bin
    printf '[x509]\nbackend = "dice"\nuds_file = "uds.bin"\nfirmware_digest = "%s"\nregistration_id = "device-dice"\nca_certificate = "device-root.pem"\nca_key = "device-root.key"\n' \
        "$(printf 'firmware 1.0' | sha256sum | cut -d' ' -f1)" >dice.toml
    # A DICE identity with a self-signed DeviceID, enrolled individually by that certificate.
    printf '[x509]\nbackend = "dice"\nuds_file = "uds.bin"\nfirmware_digest = "%s"\nregistration_id = "device-dice-solo"\n' \
        "$(printf 'firmware 1.0' | sha256sum | cut -d' ' -f1)" >dice-solo.toml
    "$hsmctl" dice chain --config dice-solo.toml --out-dir dice-solo >/dev/null
    printf 'hello from the rustls bridge\n' >hello.txt
    cat >emulator.toml <<'EOF'
id_scope = "0ne00TLSIO"

[[enrollment]]
type = "x509-group"
name = "tlsio-devices"
ca = "device-root.pem"

[[enrollment]]
type = "x509-individual"
registration_id = "device-dice-solo"
certificate = "dice-solo/device-id.cert.pem"
EOF
}
run pki pki
export SOFTHSM2_CONF="$tmp/softhsm2.conf"
stop_if_failed

hsm_token="pkcs11:token=tlsio;object=device-hsm;type=private?module-path=$softhsm_module&pin-source=file:$tmp/pin"
missing_token="pkcs11:token=tlsio;object=no-such-key;type=private?module-path=$softhsm_module&pin-source=file:$tmp/pin"
wrong_token="pkcs11:token=no-such-token;object=device-hsm;type=private?module-path=$softhsm_module&pin-source=file:$tmp/pin"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
vg=(valgrind -q --leak-check=full --show-possibly-lost=no --errors-for-leak-kinds=definite,indirect --error-exitcode=1)
# ring's AES-GCM code (no AES-NI here: its constant-time software AES) defeats memcheck's
# definedness tracking: every record it seals is reported as "uninitialised". Servers under full
# memcheck negotiate ChaCha20-Poly1305; AES-GCM runs (DPS emulator, one s_server case) keep the
# memory-error and leak checks with undefined-value errors off.
vg_aes=("${vg[@]}" --undef-value-errors=no)
chacha13=(-ciphersuites TLS_CHACHA20_POLY1305_SHA256)
chacha12=(-cipher ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305)

# s_server NAME PORT [s_server options...]: start openssl s_server requiring a client
# certificate from device-root; its output goes to $tmp/NAME.server.
s_server() {
    local name="$1" port="$2"
    shift 2
    openssl s_server -accept "127.0.0.1:$port" -cert "$tmp/server.pem" -key "$tmp/server.key" \
        -Verify 1 -verify_return_error -naccept 1 -rev "$@" </dev/null >"$tmp/$name.server" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q '^ACCEPT' "$tmp/$name.server" && return 0
        sleep 0.05
    done
    echo "s_server did not start:"
    cat "$tmp/$name.server"
    return 1
}

# serve NAME [s_server options] -- [test_tlsio options]: s_server NAME on a free port with the options
# before `--`, requiring a client certificate from device-root; sets the caller's `port`, and its
# `client_opts` to the options after `--`.
serve() {
    local name="$1" server_opts=()
    shift
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do server_opts+=("$1"); shift; done
    shift
    client_opts=("$@")
    port="$(free_port)"
    s_server "$name" "$port" -CAfile "$tmp/device-root.pem" "${server_opts[@]}"
}

# handshake NAME KEYOPTS [s_server options] -- [test_tlsio options]: a mutual-TLS exchange
# (s_server -rev sends the text back reversed); the server must have seen the client's certificate.
handshake() {
    set -e
    local name="$1" cn="$2"
    shift 2
    local port client_opts=()
    serve "$name" "$@"
    "${vg[@]}" "$tmp/test_tlsio" --trusted "$tmp/server-root.pem" --send "$tmp/hello.txt" \
        --expect "egdirb sltsur eht morf olleh" "${client_opts[@]}" localhost "$port"
    wait "${pids[-1]}" || true
    grep -q "CN *= *$cn" "$tmp/$name.server" || { echo "the server did not report the client certificate CN=$cn:"; cat "$tmp/$name.server"; return 1; }
}

run tls13_softhsm_key handshake tls13_softhsm_key device-hsm -tls1_3 "${chacha13[@]}" -- --cert "$tmp/hsm.pem" --key "$hsm_token" \
    --secret "$tmp/p256.key"
run tls12_softhsm_key_mqtt_names handshake tls12_softhsm_key device-hsm -tls1_2 "${chacha12[@]}" -- --ecc --cert "$tmp/hsm.pem" \
    --key "$hsm_token"
run tls13_file_token_p256 handshake tls13_file_p256 device-p256 -tls1_3 "${chacha13[@]}" -- --cert "$tmp/p256.pem" \
    --key "file:$tmp/p256.key" --secret "$tmp/p256.key"
run tls13_file_token_p384 handshake tls13_file_p384 device-p384 -tls1_3 "${chacha13[@]}" -- --cert "$tmp/p384.pem" \
    --key "file:$tmp/p384.key" --secret "$tmp/p384.key"
run tls13_file_token_rsa_pss handshake tls13_file_rsa device-rsa -tls1_3 "${chacha13[@]}" -- --cert "$tmp/rsa.pem" \
    --key "file:$tmp/rsa.key" --secret "$tmp/rsa.key"
run tls12_inline_pem_key handshake tls12_inline_pem device-p256 -tls1_2 "${chacha12[@]}" -- --cert "$tmp/p256.pem" \
    --key-file "$tmp/p256.key"
with_aes() {
    vg=("${vg_aes[@]}")
    "$@"
}
run tls13_aes_gcm_softhsm_key with_aes handshake tls13_aes device-hsm -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256 -- \
    --cert "$tmp/hsm.pem" --key "$hsm_token"
# The SDK's x509 HSM interface hands the certificate and the key option (a `dice:` token).
with_config() {
    export HSM_ABI_CONFIG="$1"
    shift
    "$@"
}
run tls13_dice_key_via_x509_interface with_config "$tmp/dice.toml" handshake tls13_dice device-dice \
    -tls1_3 "${chacha13[@]}" -- --from-hsm
run tls13_underlying_io handshake tls13_underlying device-hsm -tls1_3 "${chacha13[@]}" -- --underlying --cert "$tmp/hsm.pem" \
    --key "$hsm_token" --tls 13

# retrieveoptions with the SDK's OptionHandler API linked: the copy holds the token (never a key)
# and reconnects a second IO; an inline PEM key is not copied out.
retrieve() {
    set -e
    local port
    port="$(free_port)"
    s_server retrieve "$port" -CAfile "$tmp/device-root.pem" -tls1_3 "${chacha13[@]}" -naccept 2
    "${vg[@]}" "$tmp/test_tlsio_sdk" --retrieve --trusted "$tmp/server-root.pem" --send "$tmp/hello.txt" \
        --expect "egdirb sltsur eht morf olleh" --cert "$tmp/hsm.pem" --key "$hsm_token" --tls 13 \
        --secret "$tmp/p256.key" localhost "$port"
    wait "${pids[-1]}" || true
    [ "$(grep -c 'CN *= *device-hsm' "$tmp/retrieve.server")" -ge 2 ] || { cat "$tmp/retrieve.server"; return 1; }
}
run retrieveoptions_reconnects retrieve
retrieve_pem() {
    set -e
    local port
    port="$(free_port)"
    s_server retrieve_pem "$port" -CAfile "$tmp/device-root.pem" -tls1_3 "${chacha13[@]}"
    "${vg[@]}" "$tmp/test_tlsio_sdk" --retrieve --trusted "$tmp/server-root.pem" --send "$tmp/hello.txt" \
        --expect "egdirb sltsur eht morf olleh" --cert "$tmp/p256.pem" --key-file "$tmp/p256.key" \
        --secret "$tmp/p256.key" localhost "$port"
}
run retrieveoptions_keeps_pem_keys_in retrieve_pem

# DPS emulator: PUT register over the bridge, 202 expected, with the SoftHSM key, a file key
# and the DICE identity (certificate and key token from the SDK's x509 interface).
emulator_case() {
    set -e
    local id="$1"
    shift
    "$emulator" --config "$tmp/emulator.toml" --port 0 --server-ca-out "$tmp/dps-ca.pem" >"$tmp/dps-$id.out" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do grep -q '^listening on' "$tmp/dps-$id.out" && break; sleep 0.05; done
    local port
    port="$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/dps-$id.out")"
    [ -n "$port" ] || { cat "$tmp/dps-$id.out"; return 1; }
    "${vg_aes[@]}" "$tmp/test_tlsio" --trusted "$tmp/dps-ca.pem" "$@" --send "$tmp/$id.http" \
        --expect '"status":"assigning"' localhost "$port" 2>&1 | tee "$tmp/dps-$id.client"
    grep -q 'HTTP/1.1 202' "$tmp/dps-$id.client"
    kill "$pid"
    wait "$pid"
}
run dps_emulator_softhsm_key emulator_case device-hsm --cert "$tmp/hsm.pem" --key "$hsm_token"
run dps_emulator_file_key emulator_case device-p256 --cert "$tmp/p256.pem" --key "file:$tmp/p256.key"
run dps_emulator_dice_group with_config "$tmp/dice.toml" emulator_case device-dice --from-hsm
run dps_emulator_dice_individual with_config "$tmp/dice-solo.toml" emulator_case device-dice-solo --from-hsm

# ---- negative cases: each ends in the SDK's error callback ----
# fails NAME [s_server options] -- [test_tlsio options]
fails() {
    set -e
    local name="$1"
    shift
    local port client_opts=()
    serve "$name" "$@"
    "${vg[@]}" "$tmp/test_tlsio" "${client_opts[@]}" "$port"
    kill "${pids[-1]}" 2>/dev/null || true
}
hsm_client=(--cert "$tmp/hsm.pem" --key "$hsm_token")
run untrusted_server fails untrusted -tls1_3 "${chacha13[@]}" -- --trusted "$tmp/rogue-root.pem" "${hsm_client[@]}" \
    --expect-open-error localhost
run wrong_hostname fails wrong_hostname -tls1_3 "${chacha13[@]}" -- --trusted "$tmp/server-root.pem" "${hsm_client[@]}" \
    --expect-open-error 127.0.0.1
run tls12_server_rejects_client_cert fails rejects12 -tls1_2 "${chacha12[@]}" -- --trusted "$tmp/server-root.pem" \
    --cert "$tmp/rogue.pem" --key "file:$tmp/p256.key" --expect-open-error localhost
# TLS 1.3: the server checks the client certificate after the client's Finished: the open
# succeeds and the rejection arrives as on_io_error.
run tls13_server_rejects_client_cert fails rejects13 -tls1_3 "${chacha13[@]}" -- --trusted "$tmp/server-root.pem" \
    --cert "$tmp/rogue.pem" --key "file:$tmp/p256.key" --send "$tmp/hello.txt" --expect-io-error localhost
run invalid_token fails invalid_token -tls1_3 "${chacha13[@]}" -- --trusted "$tmp/server-root.pem" --cert "$tmp/hsm.pem" \
    --key "$wrong_token" --expect-open-error localhost
run token_for_missing_key fails missing_key -tls1_3 "${chacha13[@]}" -- --trusted "$tmp/server-root.pem" --cert "$tmp/hsm.pem" \
    --key "$missing_token" --expect-open-error localhost
run key_not_matching_certificate fails mismatch -tls1_3 "${chacha13[@]}" -- --trusted "$tmp/server-root.pem" --cert "$tmp/p384.pem" \
    --key "$hsm_token" --expect-open-error localhost
run malformed_token env "${vg[@]}" "$tmp/test_tlsio" --bad-key "not a token" localhost 443
run close_during_open fails close_during_open -tls1_3 "${chacha13[@]}" -- --trusted "$tmp/server-root.pem" "${hsm_client[@]}" \
    --close-during-open localhost
run destroy_in_close_callback fails destroy_in_callback -tls1_3 "${chacha13[@]}" -- --trusted "$tmp/server-root.pem" \
    "${hsm_client[@]}" --underlying --destroy-in-callback localhost
run connection_refused env "${vg[@]}" "$tmp/test_tlsio" --trusted "$tmp/server-root.pem" --expect-open-error \
    localhost "$(free_port)"

# Peers that misbehave at the TCP level (python3 servers on 127.0.0.1).
# mid_handshake: read the ClientHello, then close. reset: complete the TLS handshake (client
# certificate required), then reset the connection (SO_LINGER 0).
peer() {
    local mode="$1" port="$2"
    python3 - "$mode" "$port" "$tmp" <<'PY' &
import socket, ssl, struct, sys
mode, port, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(1)
open(f"{tmp}/peer-{mode}.ready", "w").close()
srv.settimeout(20)
conn, _ = srv.accept()
conn.settimeout(20)
if mode == "mid_handshake":
    conn.recv(5)
    conn.close()
else:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(f"{tmp}/server.pem", f"{tmp}/server.key")
    ctx.load_verify_locations(f"{tmp}/device-root.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    tls = ctx.wrap_socket(conn, server_side=True)
    tls.recv(100)
    tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    tls.close()
PY
    pids+=($!)
    for _ in $(seq 100); do [ -f "$tmp/peer-$mode.ready" ] && return 0; sleep 0.05; done
    return 1
}
misbehaving_peer() {
    set -e
    local mode="$1"
    shift
    local port
    port="$(free_port)"
    rm -f "$tmp/peer-$mode.ready"
    peer "$mode" "$port"
    # The peer must listen before the client connects (python starts slowly on a busy machine).
    for _ in $(seq 200); do [ -f "$tmp/peer-$mode.ready" ] && break; sleep 0.05; done
    [ -f "$tmp/peer-$mode.ready" ] || { echo "the $mode peer did not start"; return 1; }
    "${vg[@]}" "$tmp/test_tlsio" --trusted "$tmp/server-root.pem" "${hsm_client[@]}" "$@" localhost "$port"
    wait "${pids[-1]}"
}
run server_closes_mid_handshake misbehaving_peer mid_handshake --expect-open-error
run peer_reset_after_open misbehaving_peer reset --send "$tmp/hello.txt" --expect-io-error

# ---- a key in a TPM (swtpm): libhsm_abi built with its `tpm` feature in target/c-tpm ----
tpm_case() {
    set -e
    local tpm_target="$target_dir/c-tpm"
    (cd "$root" && CARGO_TARGET_DIR="$tpm_target" cargo build -p hsm-abi --features tpm && cargo build -p hsmctl)
    local tpm_native
    tpm_native="$(cd "$root" && CARGO_TARGET_DIR="$tpm_target" cargo rustc -p hsm-abi --features tpm --lib \
        --crate-type staticlib -- --print native-static-libs 2>&1 | sed -n 's/.*native-static-libs: //p' | tail -n 1)"
    gcc "${cflags[@]}" "$src/test_tlsio.c" "$src/socket_xio.c" "$tpm_target/debug/libhsm_abi.a" $tpm_native \
        $(pkg-config --libs tss2-esys tss2-tctildr tss2-mu tss2-sys) -pthread -o "$tmp/test_tlsio_tpm"
    start_swtpm "$tmp/tpmstate" "$tmp/swtpm.log"
    pids+=("$swtpm_pid")
    local tpm_port=$swtpm_port
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$tpm_port") 2>/dev/null && break
        sleep 0.1
    done
    export TSS2_LOG=all+NONE
    "$target_dir/debug/hsmctl" tpm keygen --tcti "swtpm:host=127.0.0.1,port=$tpm_port" --handle 0x81000200 \
        >"$tmp/tpm-keygen.out"
    local token
    token="$(sed -n 's/^token: //p' "$tmp/tpm-keygen.out")"
    case "$token" in tpm:*) ;; *) echo "no tpm: token from hsmctl tpm keygen"; cat "$tmp/tpm-keygen.out"; return 1 ;; esac
    sed -n '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/p' "$tmp/tpm-keygen.out" >"$tmp/tpm-pub.pem"
    openssl req -new -key "$tmp/p256.key" -subj "/CN=device-tpm" -out "$tmp/tpm.csr"
    openssl x509 -req -in "$tmp/tpm.csr" -force_pubkey "$tmp/tpm-pub.pem" -CA "$tmp/device-root.pem" \
        -CAkey "$tmp/device-root.key" -CAcreateserial -days 30 -extfile "$tmp/client.ext" -out "$tmp/tpm.pem"
    local port
    port="$(free_port)"
    s_server tpm "$port" -CAfile "$tmp/device-root.pem" -tls1_3 "${chacha13[@]}"
    "${vg[@]}" "$tmp/test_tlsio_tpm" --trusted "$tmp/server-root.pem" --cert "$tmp/tpm.pem" --key "$token" \
        --send "$tmp/hello.txt" --expect "egdirb sltsur eht morf olleh" localhost "$port"
    grep -q "CN *= *device-tpm" "$tmp/tpm.server" || { cat "$tmp/tpm.server"; return 1; }
    swtpm_ioctl --tcp "127.0.0.1:$((tpm_port + 1))" -s >/dev/null 2>&1 || true
}
run tls13_tpm_key tpm_case

echo "c-tests-tlsio: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
