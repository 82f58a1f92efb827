#!/usr/bin/env bash
# The interoperability suite: the REAL Azure IoT C SDK, built from its source, with libhsm_abi
# as its custom HSM (hsm_custom_lib) exactly as README.md tells users, registering our C device
# program (examples/c-device) with the project's DPS emulator for every identity we support, then
# connecting it to the emulator's IoT Hub (scripts/lib/sdk-interop-hub.sh).
#
#   scripts/sdk-interop.sh               every case, one line each, then "N passed, N failed"
#   scripts/sdk-interop.sh --bench N     then N alternating registrations per TLS path (CPU), over
#                                        HTTPS and over AMQP, and N registrations + hub connection
#                                        and one message
#   KEEP_TMP=1 scripts/sdk-interop.sh    keep the work directory (SDK_INTEROP_DIR, default
#                                        target/sdk-interop) for inspection
#   SDK_INTEROP_ONLY=hub scripts/sdk-interop.sh
#                                        the IoT Hub cases only (after the identities and the
#                                        issued certificate they need); SDK_INTEROP_HUB_TRANSPORTS
#                                        (default "mqtt mqtt-ws amqp amqp-ws") narrows their matrix
#
# The SDK source: the tree named by HSM_ABI_SDK_SRC (check your own SDK version with it), else
# the tarball HSM_ABI_SDK_TARBALL, else ../shared/upstream/azure-iot-sdk-c.tar.xz beside the
# project. It is unpacked into the work directory and never modified in place: the rustls build
# is a second copy whose platform adapter is replaced by examples/platform_tlsio_rustls.c.
# Without a source the suite says so loudly and exits 0, unless CI is set (then it fails).
#
# The SDK dials fixed ports (443 for HTTPS, MQTT over WebSockets and AMQP over WebSockets, 8883
# for MQTT, 5671 for AMQP), so the
# suite runs in a network namespace of its own (unshare -n, as root): the emulator listens on
# 127.0.0.1:443 there, and nothing outside is touched or reachable.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"
target_dir="$(cargo_target_dir)" || exit 1
bench_runs=0
case "${1:-}" in
    --bench) bench_runs="${2:?--bench needs a count}" ;;
    "") ;;
    *) echo "usage: $0 [--bench N]" >&2; exit 2 ;;
esac

# ---- the SDK source ----
sdk_src="${HSM_ABI_SDK_SRC:-}"
tarball="${HSM_ABI_SDK_TARBALL:-$root/../shared/upstream/azure-iot-sdk-c.tar.xz}"
if [ -n "$sdk_src" ]; then
    [ -f "$sdk_src/provisioning_client/CMakeLists.txt" ] ||
        { echo "sdk-interop: HSM_ABI_SDK_SRC=$sdk_src is not an Azure IoT C SDK tree" >&2; exit 1; }
elif [ ! -f "$tarball" ]; then
    echo "############################################################################" >&2
    echo "sdk-interop: NO AZURE IOT C SDK SOURCE: $tarball is absent and" >&2
    echo "sdk-interop: HSM_ABI_SDK_SRC is not set. The tests against the real SDK did NOT run." >&2
    echo "############################################################################" >&2
    if [ -n "${CI:-}" ]; then
        echo "0 passed, 1 failed"
        exit 1
    fi
    exit 0
fi

# ---- a network namespace of our own ----
if [ -z "${SDK_INTEROP_IN_NETNS:-}" ]; then
    if ! unshare -n true 2>/dev/null; then
        echo "sdk-interop: cannot create a network namespace (unshare -n needs root)" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
    exec env SDK_INTEROP_IN_NETNS=1 unshare -n bash "${BASH_SOURCE[0]}" "$@"
fi
ip link set lo up || { echo "sdk-interop: cannot bring up lo in the namespace" >&2; exit 1; }

for tool in cargo cmake make gcc openssl python3 pkg-config softhsm2-util swtpm tinyproxy valgrind; do
    command -v "$tool" >/dev/null || { echo "sdk-interop: $tool is required (scripts/setup.sh)" >&2; exit 1; }
done

w="${SDK_INTEROP_DIR:-$target_dir/sdk-interop}"
rm -rf "$w"
mkdir -p "$w"
tmp="$w/logs"
mkdir -p "$tmp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$w"
}
trap cleanup EXIT
[ -n "${KEEP_TMP:-}" ] && echo "sdk-interop: work directory $w"

# shellcheck source=lib/steps.sh
source "$root/scripts/lib/steps.sh"

# ---- our library, installed like a C library; the tools ----
prefix="$w/prefix"
install_lib() {
    bash "$root/scripts/install-c.sh" --prefix "$prefix" --features tpm
    (cd "$root" && cargo build --locked -p hsmctl -p dps-emulator --all-features)
}
run install install_lib
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
hsmctl="$target_dir/debug/hsmctl"
emulator="$target_dir/debug/dps-emulator"

# The pkg-config file: what it gives is exactly what links, with and without the tpm feature.
pkgconfig_case() {
    local p="$w/prefix-$1"
    if [ "$1" = tpm ]; then p="$prefix"; else bash "$root/scripts/install-c.sh" --prefix "$p"; fi
    printf '#include "hsm_client_data.h"\n#include "hsm_abi.h"\nint main(void) { return hsm_client_x509_interface() == 0; }\n' \
        >"$w/pc-$1.c"
    local custom
    custom="$(PKG_CONFIG_PATH="$p/lib/pkgconfig" pkg-config --variable=hsm_custom_lib hsm_abi)"
    # Static, as the SDK's hsm_custom_lib list: the archive first, then -l of each native.
    # shellcheck disable=SC2046
    gcc -std=c11 $(PKG_CONFIG_PATH="$p/lib/pkgconfig" pkg-config --cflags hsm_abi) "$w/pc-$1.c" \
        $(tr ';' '\n' <<<"$custom" | sed '1!s/^/-l/') -o "$w/pc-static-$1"
    "$w/pc-static-$1"
    ! readelf -d "$w/pc-static-$1" | grep 'libhsm_abi'
    # Shared, through pkg-config --libs: the soname is recorded.
    # shellcheck disable=SC2046
    gcc -std=c11 $(PKG_CONFIG_PATH="$p/lib/pkgconfig" pkg-config --cflags hsm_abi) "$w/pc-$1.c" \
        $(PKG_CONFIG_PATH="$p/lib/pkgconfig" pkg-config --libs hsm_abi) -o "$w/pc-shared-$1"
    readelf -d "$w/pc-shared-$1" | grep 'NEEDED.*\[libhsm_abi.so.0\]'
    LD_LIBRARY_PATH="$p/lib" "$w/pc-shared-$1"
    if [ "$1" = tpm ]; then grep -q '^Requires.private: .*tss2-esys' "$p/lib/pkgconfig/hsm_abi.pc"; fi
    if [ "$1" = notpm ]; then ! grep -q 'tss2' "$p/lib/pkgconfig/hsm_abi.pc"; fi
}
run pkgconfig_tpm pkgconfig_case tpm
run pkgconfig_without_tpm pkgconfig_case notpm

# ---- the SDK, twice: its own OpenSSL tlsio, and our platform adapter (rustls tlsio) ----
unpack() {
    local dest="$1"
    mkdir -p "$dest"
    if [ -n "$sdk_src" ]; then
        cp -a "$sdk_src/." "$dest/"
    else
        tar -xJf "$tarball" -C "$dest" --strip-components=1
    fi
    [ -f "$dest/provisioning_client/CMakeLists.txt" ]
}
build_device() {
    local flavour="$1" src="$w/sdk-$1" build="$w/build-$1"
    unpack "$src"
    if [ "$flavour" = rustls ]; then
        # README.md, "Using the rustls TLS bridge in the C SDK".
        cp "$root/examples/platform_tlsio_rustls.c" "$src/c-utility/adapters/platform_linux.c"
        cp "$prefix/include/hsm_abi/tlsio_rustls.h" "$src/c-utility/inc/"
    fi
    cmake -S "$root/examples/c-device" -B "$build" -DCMAKE_BUILD_TYPE=Release -DAZURE_IOT_SDK_SRC="$src" \
        >"$tmp/cmake-$flavour.out"
    cmake --build "$build" --target prov_device -j 2 >"$tmp/make-$flavour.out"
    [ -x "$build/prov_device" ]
}
run build_sdk_openssl build_device openssl
run build_sdk_rustls build_device rustls
dev_openssl="$w/build-openssl/prov_device"
dev_rustls="$w/build-rustls/prov_device"

# Which TLS layer each program really has (the symbol the adapter pulls in).
tls_layers() {
    local r o
    r="$(nm "$dev_rustls")"
    o="$(nm "$dev_openssl")"
    grep -q ' T tlsio_rustls_get_interface_description' <<<"$r"
    ! grep -q 'tlsio_openssl_get_interface_description' <<<"$r"
    grep -q ' T tlsio_openssl_get_interface_description' <<<"$o"
}
run tls_layers tls_layers

# ---- our headers against the SDK's: enum values and layouts, asserted at compile time ----
abi_check() {
    local src="$w/sdk-openssl"
    local sdk_inc=(-I "$src/c-utility/inc" -I "$src/deps/azure-macro-utils-c/inc" -I "$src/deps/umock-c/inc"
        -I "$src/provisioning_client/adapters" -I "$src/deps/c-logging/v2/inc")
    # 1. What OUR headers say, compiled alone, printed as #defines.
    gcc -std=c11 -Wall -Werror -I "$prefix/include/hsm_abi" -DOURS "$root/tests/c/sdk_abi_check.c" -o "$w/abi-ours"
    "$w/abi-ours" >"$w/abi_ours.h"
    # 2. The SDK's headers, with those numbers: every _Static_assert must hold.
    gcc -std=c11 -Wall -Werror "${sdk_inc[@]}" -include "$w/abi_ours.h" -c "$root/tests/c/sdk_abi_check.c" \
        -o "$w/abi-sdk.o"
    wc -l <"$w/abi_ours.h"
}
run abi_layout_matches_sdk_headers abi_check
stop_if_failed sdk-interop

# ---- identities ----
scope="0ne00SDKINT"
hub="sdk-interop-hub.azure-devices.net"
id_dir="$w/ids"
mkdir -p "$id_dir"
# shellcheck source=lib/sdk-interop-identities.sh
source "$root/scripts/lib/sdk-interop-identities.sh"
run identities identities
[ -f "$id_dir/softhsm.env" ] && source "$id_dir/softhsm.env"

# A TPM (swtpm): an x509 key inside it, and the SDK's TPM attestation.
export TSS2_LOG=all+NONE
run tpm_identities tpm_identities
[ -f "$id_dir/swtpm.pid" ] && pids+=("$(cat "$id_dir/swtpm.pid")")
stop_if_failed sdk-interop

# ---- the emulator on 127.0.0.1:443 (inside the namespace); a proxy on 127.0.0.1:8888 ----
# start_emulator [options]: (re)start it on 443 (HTTPS, MQTT-WS, AMQP-WS), 8883 (MQTT) and 5671 (AMQP);
# the server CA changes at every start.
emu_pid=""
start_emulator() {
    stop_emulator
    rm -f "$tmp/emulator.out"
    (cd "$id_dir" && exec "$emulator" --config emulator.toml --port 443 --server-ca-out server-ca.pem \
        --issuing-ca issuing-ca.cert.pem --issuing-ca-key issuing-ca.key.pem --mqtt-port 8883 --amqp-port 5671 "$@" \
        >"$tmp/emulator.out" 2>>"$tmp/emulator.log") &
    emu_pid=$!
    pids+=("$emu_pid")
    for _ in $(seq 100); do grep -q '^listening on ' "$tmp/emulator.out" 2>/dev/null && break; sleep 0.1; done
    grep -q '^listening on 127.0.0.1:443' "$tmp/emulator.out" || { cat "$tmp/emulator.log"; return 1; }
}
stop_emulator() {
    if [ -n "$emu_pid" ]; then kill "$emu_pid" 2>/dev/null; wait "$emu_pid" 2>/dev/null; fi
    emu_pid=""
}
start_emulator || { fail emulator; stop_if_failed sdk-interop; }
server_ca="$id_dir/server-ca.pem"

cat >"$w/tinyproxy.conf" <<EOF
Port 8888
Listen 127.0.0.1
Timeout 30
Allow 127.0.0.1
ConnectPort 443
LogLevel Connect
LogFile "$tmp/tinyproxy.log"
PidFile "$w/tinyproxy.pid"
MaxClients 20
EOF
tinyproxy -d -c "$w/tinyproxy.conf" >"$tmp/tinyproxy.out" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/8888) 2>/dev/null && break; sleep 0.1; done

# ---- the cases ----
# Every run is bounded: the program gives up after --timeout 60, and a run that outlives that
# (a hang inside the SDK or a wrapper) is killed at case_limit_s and fails its case.
case_limit_s=100
# register NAME DEVICE CONFIG ATTESTATION EXPECT [prov_device options...]
#   EXPECT: "assigned" (exit 0, one "assigned hub=... device=..." line naming our hub) or
#   "error" (the SDK's error path: exit 1, never "assigned", within the program's timeout).
#   A successful run must print no ERROR line from our library or its devices.
register() {
    local name="$1" dev="$2" config="$3" attestation="$4" expect="$5"
    shift 5
    local out="$tmp/$name.stdout" err="$tmp/$name.stderr" rc=0 start end
    start=$(date +%s)
    (cd "$id_dir" && HSM_ABI_CONFIG="$id_dir/$config" HSM_ABI_LOG=warn timeout -k 5 "$case_limit_s" "$@" "$dev" \
        --id-scope "$scope" --endpoint localhost --attestation "$attestation" --timeout 60 "${extra[@]}" \
        >"$out" 2>"$err") || rc=$?
    end=$(date +%s)
    echo "exit $rc after $((end - start)) s"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "hung: killed after $case_limit_s s (the program's own 60 s deadline did not end it)"
        cat "$err"
        return 1
    fi
    if [ "${max_s:-0}" -gt 0 ] && [ $((end - start)) -ge "$max_s" ]; then
        echo "took $((end - start)) s, more than $max_s s"
        return 1
    fi
    case "$expect" in
        assigned)
            [ "$rc" -eq 0 ] || { cat "$err"; return 1; }
            grep -q "^assigned hub=$hub device=" "$out" || { cat "$out" "$err"; return 1; }
            cat "$out"
            if grep -E '(^|[^_])ERROR' "$err" | grep -v '^status:'; then
                echo "a successful run printed ERROR lines (above)"
                return 1
            fi
            ;;
        error)
            [ "$rc" -eq 1 ] || { echo "expected the SDK's error path (exit 1)"; cat "$out" "$err"; return 1; }
            ! grep -q '^assigned' "$out"
            grep -q 'registration failed\|failed' "$err" || { cat "$err"; return 1; }
            tail -n 3 "$err"
            ;;
    esac
}
# case NAME DEVICE CONFIG ATTESTATION EXPECT [prov_device options] [-- wrapper...]
case_() {
    local name="$1" dev="$2" config="$3" attestation="$4" expect="$5"
    shift 5
    extra=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do extra+=("$1"); shift; done
    [ "${1:-}" = -- ] && shift
    run "$name" register "$name" "$dev" "$config" "$attestation" "$expect" "$@"
}
trusted=(--trusted-ca "$server_ca")
vg=(valgrind -q --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite
    --suppressions="$root/tests/c/sdk.supp")

# ---- the matrix: every identity over each of the SDK's transports, through the rustls tlsio ----
# The emulator serves HTTPS, MQTT over WebSockets and AMQP over WebSockets on 443, MQTT on 8883
# and AMQP on 5671 at once, so the transport is only the device program's --transport argument:
# one SDK build, no restarts.
transports=(http mqtt mqtt-ws amqp amqp-ws)
declare -A dps_cells=()
dps_rows=()
# cell ROW TRANSPORT EXPECT DEVICE CONFIG ATTESTATION [prov_device options] [-- wrapper...]
#   one case, named TRANSPORT_ROW_rustls, whose result fills the matrix cell (ROW, TRANSPORT):
#   "ok" (assigned as expected), "refused" (refused as expected) or "FAIL" (matrix_cell, lib/steps.sh).
cell() {
    local row="$1" transport="$2" expect="$3" before="$failed"
    shift 3
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    case_ "${transport//-/_}_${row}_rustls" "${opts[@]:0:3}" "$expect" "${opts[@]:3}" --transport "$transport" "$@"
    matrix_cell dps "$row" "$transport" "$before" "$expect" assigned
}
print_matrix() {
    matrix_print dps "identity / negative" "${transports[@]}"
    echo "(tpm_attestation over MQTT and MQTT-WS: DPS has no TPM attestation there and the SDK's MQTT"
    echo " transports refuse a TPM device; the suite checks that refusal, hence \"refused\". Over AMQP"
    echo " and AMQP-WS it goes through the SDK's SASL TPM mechanism; \"-\": not run.)"
}

if [ "${SDK_INTEROP_ONLY:-}" != hub ]; then
# Under valgrind, with the whole memory check: valgrind cannot follow ring's AES-GCM assembly
# (it reports the records as uninitialised), so the emulator offers ChaCha20-Poly1305 only here.
start_emulator --chacha20-only || { fail emulator_chacha20; stop_if_failed sdk-interop; }
case_ http_x509_pkcs11_rustls_valgrind "$dev_rustls" pkcs11.toml x509 assigned "${trusted[@]}" -- "${vg[@]}"
case_ http_x509_tpm_key_rustls_valgrind "$dev_rustls" tpm-x509.toml x509 assigned "${trusted[@]}" -- "${vg[@]}"
case_ http_tpm_attestation_rustls_valgrind "$dev_rustls" tpm.toml tpm assigned "${trusted[@]}" -- "${vg[@]}"
case_ mqtt_x509_pkcs11_rustls_valgrind "$dev_rustls" pkcs11.toml x509 assigned "${trusted[@]}" \
    --transport mqtt -- "${vg[@]}"
case_ mqtt_ws_symm_group_rustls_valgrind "$dev_rustls" symm-group.toml symmetric-key assigned "${trusted[@]}" \
    --transport mqtt-ws -- "${vg[@]}"
case_ amqp_x509_pkcs11_rustls_valgrind "$dev_rustls" pkcs11.toml x509 assigned "${trusted[@]}" \
    --transport amqp -- "${vg[@]}"
start_emulator || { fail emulator; stop_if_failed sdk-interop; }

# The SDK's own OpenSSL tlsio, for comparison (PEM keys), and its clear refusal of a token.
case_ http_x509_file_pem_openssl "$dev_openssl" file-pem.toml x509 assigned "${trusted[@]}"
case_ http_x509_pkcs11_openssl_gets_a_clear_error "$dev_openssl" pkcs11.toml x509 error "${trusted[@]}"
case_ http_symm_individual_openssl "$dev_openssl" symm.toml symmetric-key assigned "${trusted[@]}"
case_ mqtt_x509_file_pem_openssl "$dev_openssl" file-pem.toml x509 assigned "${trusted[@]}" --transport mqtt
case_ mqtt_symm_group_openssl "$dev_openssl" symm-group.toml symmetric-key assigned "${trusted[@]}" --transport mqtt
case_ mqtt_ws_x509_file_pem_openssl "$dev_openssl" file-pem.toml x509 assigned "${trusted[@]}" --transport mqtt-ws
case_ amqp_x509_file_pem_openssl "$dev_openssl" file-pem.toml x509 assigned "${trusted[@]}" --transport amqp
case_ amqp_symm_group_openssl "$dev_openssl" symm-group.toml symmetric-key assigned "${trusted[@]}" --transport amqp
case_ amqp_ws_x509_file_pem_openssl "$dev_openssl" file-pem.toml x509 assigned "${trusted[@]}" --transport amqp-ws
case_ neg_symm_wrong_key_openssl "$dev_openssl" symm-wrong.toml symmetric-key error "${trusted[@]}"
case_ neg_untrusted_server_openssl "$dev_openssl" file-pem.toml x509 error

fi

# The issued identity: hsmctl has the emulator issue a certificate for a key made on the token,
# then the SDK registers with it ([x509] backend = "issued").
issue_certificate() {
    (cd "$id_dir" && "$hsmctl" --log error provision --config issued.toml --issue-certificate \
        --attestation symmetric-key --id-scope "$scope" --global-endpoint localhost:443 \
        --trusted-ca "$server_ca" --timeout 60) || return 1
    (cd "$id_dir" && "$hsmctl" certificate status --config issued.toml) | grep -q '^subject: *CN=sdk-issued$'
}
run issue_certificate_with_hsmctl issue_certificate

if [ "${SDK_INTEROP_ONLY:-}" != hub ]; then
for t in "${transports[@]}"; do
    cell x509_pkcs11 "$t" assigned "$dev_rustls" pkcs11.toml x509 "${trusted[@]}"
    cell x509_tpm_key "$t" assigned "$dev_rustls" tpm-x509.toml x509 "${trusted[@]}"
    cell x509_file_token "$t" assigned "$dev_rustls" file-token.toml x509 "${trusted[@]}"
    cell x509_dice_group "$t" assigned "$dev_rustls" dice-group.toml x509 "${trusted[@]}"
    cell x509_dice_individual "$t" assigned "$dev_rustls" dice-solo.toml x509 "${trusted[@]}"
    cell x509_vendor "$t" assigned "$dev_rustls" vendor.toml x509 "${trusted[@]}"
    cell x509_issued_pkcs11 "$t" assigned "$dev_rustls" issued.toml x509 "${trusted[@]}"
    cell symm_individual "$t" assigned "$dev_rustls" symm.toml symmetric-key "${trusted[@]}"
    cell symm_group "$t" assigned "$dev_rustls" symm-group.toml symmetric-key "${trusted[@]}"
    case "$t" in
        # AMQP and AMQP-WS: the SDK's SASL TPM mechanism (prov_sasl_tpm.c) with our hsm_client_tpm
        # functions, against the emulator's (AMQP on 5671, AMQP-WS on 443).
        http | amqp | amqp-ws) cell tpm_attestation "$t" assigned "$dev_rustls" tpm.toml tpm "${trusted[@]}" ;;
        mqtt | mqtt-ws) cell tpm_attestation "$t" error "$dev_rustls" tpm.toml tpm "${trusted[@]}" ;;
    esac
done
# Negatives, each of which must end in the SDK's error path on every transport, within seconds
# (max_s: a refusal the SDK only notices at the program's timeout fails its case).
max_s=20
for t in "${transports[@]}"; do
    cell neg_wrong_key "$t" error "$dev_rustls" wrong-key.toml x509 "${trusted[@]}"
    cell neg_symm_wrong_key "$t" error "$dev_rustls" symm-wrong.toml symmetric-key "${trusted[@]}"
    cell neg_untrusted_chain "$t" error "$dev_rustls" rogue.toml x509 "${trusted[@]}"
    cell neg_untrusted_server "$t" error "$dev_rustls" pkcs11.toml x509
done
max_s=0
case_ neg_cn_mismatch_rustls "$dev_rustls" file-token.toml x509 error "${trusted[@]}" --registration-id sdk-not-the-cn

# Through a real HTTP proxy (tinyproxy): HTTPS, MQTT and AMQP over WebSockets all tunnel by CONNECT.
case_ http_proxy_x509_pkcs11_rustls "$dev_rustls" pkcs11.toml x509 assigned "${trusted[@]}" --proxy 127.0.0.1:8888
case_ mqtt_ws_proxy_x509_pkcs11_rustls "$dev_rustls" pkcs11.toml x509 assigned "${trusted[@]}" \
    --transport mqtt-ws --proxy 127.0.0.1:8888
case_ amqp_ws_proxy_x509_pkcs11_rustls "$dev_rustls" pkcs11.toml x509 assigned "${trusted[@]}" \
    --transport amqp-ws --proxy 127.0.0.1:8888
proxy_used() {
    local n
    n="$(grep -c 'CONNECT localhost:443' "$tmp/tinyproxy.log")" || true
    [ "$n" -ge 3 ] || { echo "$n CONNECT lines, expected one per proxied case (3)"; cat "$tmp/tinyproxy.log"; return 1; }
}
run proxy_was_used_by_http_mqtt_ws_and_amqp_ws proxy_used

# Nothing listening (the emulator stopped: no 443, no 8883, no 5671): refused at once, and the SDK must
# report it within seconds on every transport, not wait for the program's timeout (max_s).
stop_emulator
max_s=20
for t in "${transports[@]}"; do
    cell neg_nothing_listening "$t" error "$dev_rustls" file-token.toml x509 "${trusted[@]}"
done
case_ neg_mqtt_nothing_listening_openssl "$dev_openssl" file-pem.toml x509 error "${trusted[@]}" --transport mqtt
max_s=0
start_emulator || { fail emulator; stop_if_failed sdk-interop; }
# ---- no private key bytes in the device's memory after a PKCS#11 registration ----
# The device holds after registering; its memory is read through /proc/PID/mem and searched for
# the key's private scalar (both byte orders) and its PEM text. The PEM run through the SDK's
# OpenSSL tlsio must be found (the scan works); the PKCS#11 run through the rustls tlsio not.
memory_scan() {
    local dev="$1" config="$2" expect="$3"
    cd "$id_dir"
    rm -f hold.fifo
    mkfifo hold.fifo
    HSM_ABI_CONFIG="$id_dir/$config" "$dev" --id-scope "$scope" --endpoint localhost --attestation x509 \
        --timeout 60 --trusted-ca "$server_ca" --hold <hold.fifo >"$tmp/scan-$expect.out" 2>"$tmp/scan-$expect.err" &
    local pid=$!
    exec 5>hold.fifo
    for _ in $(seq 600); do grep -q '^holding' "$tmp/scan-$expect.out" && break; sleep 0.1; done
    grep -q '^holding' "$tmp/scan-$expect.out" || { cat "$tmp/scan-$expect.err"; kill "$pid"; exec 5>&-; return 1; }
    local found=0
    python3 "$root/tests/c/scan_memory.py" "$pid" scan.d.bin scan.key.pem >"$tmp/scan-$expect.result" || found=$?
    exec 5>&-
    wait "$pid"
    cat "$tmp/scan-$expect.result"
    grep -q "^assigned hub=$hub" "$tmp/scan-$expect.out"
    if [ "$expect" = found ]; then [ "$found" -eq 1 ]; else [ "$found" -eq 0 ]; fi
}
run memory_scan_finds_pem_key_openssl memory_scan "$dev_openssl" pem-scan.toml found
run memory_scan_no_key_pkcs11_rustls memory_scan "$dev_rustls" pkcs11-scan.toml absent

fi

# ---- after provisioning, the IoT Hub: every identity connects, sends, reads its twin ----
# shellcheck source=lib/sdk-interop-hub.sh
source "$root/scripts/lib/sdk-interop-hub.sh"
hub_cases

[ "${SDK_INTEROP_ONLY:-}" = hub ] || print_matrix
echo "sdk-interop: $passed passed, $failed failed"

# ---- client CPU per registration: rustls + SoftHSM key vs OpenSSL + PEM key ----
# The emulator answers "assigned" at the first poll (Retry-After 0), so what is measured is the
# connection and its TLS work rather than the device idling between polls.
if [ "$bench_runs" -gt 0 ]; then
    start_emulator --retry-after 0 || { echo "sdk-interop: the emulator did not restart for the benchmark"; exit 1; }
    for t in http amqp; do
        python3 "$root/tests/c/bench_registration.py" "$bench_runs" "$id_dir" "$scope" "$server_ca" \
            "$dev_rustls" pkcs11.toml "$dev_openssl" file-pem.toml --transport "$t"
    done
    hub_bench "$bench_runs"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
