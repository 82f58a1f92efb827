#!/usr/bin/env bash
# C test of the SDK's TPM ("sastoken") call sequence (tests/c/test_tpm.c), under valgrind:
# libhsm_abi.a built with the TPM backend (its own target dir, so the other C tests keep the
# default library) on a fresh swtpm, registering with the DPS emulator over HTTPS (libcurl):
# 401 challenge, activate_identity_key, SAS token signed in the TPM, 202, poll, assignment with
# the hub key activated; malformed blobs and NULL arguments in the same run. The registration id
# comes from `hsmctl enrollment` on the same TPM and must come back as the assigned deviceId.
#   scripts/c-tests-tpm.sh            run
#   KEEP_TMP=1 scripts/c-tests-tpm.sh keep the temporary directory for inspection
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"
target_dir="$(cargo_target_dir)" || exit 1
tpm_target="$target_dir/c-tpm"
lib="$tpm_target/debug/libhsm_abi.a"
bin="$target_dir/debug"
src="$root/tests/c"
inc="$root/include"
scope="0ne00000C7P"

for tool in cargo gcc valgrind pkg-config python3 swtpm swtpm_ioctl; do
    command -v "$tool" >/dev/null || { echo "c-tests-tpm: $tool is required" >&2; exit 1; }
done
for pc in tss2-esys tss2-tctildr tss2-mu tss2-sys libcurl; do
    pkg-config --exists "$pc" || { echo "c-tests-tpm: pkg-config cannot find $pc (scripts/setup.sh)" >&2; exit 1; }
done

tmp="$(mktemp -d -t c-tests-tpm.XXXXXX)"
swtpm_pid=""
swtpm_ctrl=""
emu_pid=""
cleanup() {
    if [ -n "$emu_pid" ]; then
        kill "$emu_pid" 2>/dev/null
        wait "$emu_pid" 2>/dev/null
    fi
    if [ -n "$swtpm_pid" ]; then
        swtpm_ioctl --tcp "127.0.0.1:$swtpm_ctrl" -s >/dev/null 2>&1 || kill "$swtpm_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$swtpm_pid" 2>/dev/null || break; sleep 0.1; done
        kill "$swtpm_pid" 2>/dev/null
        wait "$swtpm_pid" 2>/dev/null
    fi
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[ -n "${KEEP_TMP:-}" ] && echo "c-tests-tpm: temporary directory $tmp"

# shellcheck source=lib/steps.sh
source "$root/scripts/lib/steps.sh"

# ---- build ----
echo "c-tests-tpm: building hsm-abi (feature tpm) in $tpm_target, hsmctl and dps-emulator"
(cd "$root" && CARGO_TARGET_DIR="$tpm_target" cargo build -p hsm-abi --features tpm) || exit 1
(cd "$root" && cargo build -p hsmctl -p dps-emulator) || exit 1
native_libs="$(cd "$root" && CARGO_TARGET_DIR="$tpm_target" cargo rustc -p hsm-abi --features tpm --lib \
    --crate-type staticlib -- --print native-static-libs 2>&1 | sed -n 's/.*native-static-libs: //p' | tail -n 1)"
[ -n "$native_libs" ] || { echo "c-tests-tpm: no native-static-libs from rustc" >&2; exit 1; }
[ -f "$lib" ] || { echo "c-tests-tpm: $lib missing" >&2; exit 1; }
tss_libs="$(pkg-config --libs tss2-esys tss2-tctildr tss2-mu tss2-sys)"

compile() {
    # shellcheck disable=SC2086 # word splitting of the library lists is intended
    gcc -std=c11 -Wall -Wextra -Wpedantic -Werror -g -I "$inc" -I "$src" "$src/test_tpm.c" \
        $(pkg-config --cflags libcurl) "$lib" $native_libs $tss_libs -lcurl -pthread -o "$tmp/test_tpm"
}
run compile compile
stop_if_failed

# ---- a fresh swtpm on a free port pair (server P, control P+1) ----
start_swtpm_for_test() {
    start_swtpm "$tmp/tpmstate" "$tmp/swtpm.log" || return 1
    swtpm_ctrl=$((swtpm_port + 1))
    local port=$swtpm_port
    printf '[tpm]\nbackend = "tpm"\ntcti = "swtpm:host=127.0.0.1,port=%s"\n' "$port" >"$tmp/tpm.toml"
}
# Not through `run`: the pids must stay in this shell for the trap.
if start_swtpm_for_test >"$tmp/swtpm_start.log" 2>&1; then
    pass swtpm
else
    fail swtpm
    sed 's/^/    /' "$tmp/swtpm_start.log"
fi
stop_if_failed
export TSS2_LOG=all+NONE

# ---- the enrollment hsmctl derives from this TPM (EK and SRK created and persisted here) ----
enrollment() {
    "$bin/hsmctl" --log error enrollment record --config "$tmp/tpm.toml" >"$tmp/enrollment.json"
    python3 - "$tmp/enrollment.json" "$tmp" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
reg = e["registrationId"]
ek = e["attestation"]["tpm"]["endorsementKey"]
assert reg and ek, e
open(sys.argv[2] + "/reg_id", "w").write(reg)
open(sys.argv[2] + "/ek_b64", "w").write(ek)
EOF
    cat "$tmp/reg_id"
}
run enrollment enrollment
stop_if_failed
reg_id="$(cat "$tmp/reg_id")"

cat >"$tmp/emulator.toml" <<EOF
id_scope = "$scope"
assigned_hub = "c-tpm-hub.example.test"

[[enrollment]]
type = "tpm-individual"
registration_id = "$reg_id"
endorsement_key = "$(cat "$tmp/ek_b64")"
EOF

# ---- the DPS emulator ----
"$bin/dps-emulator" --config "$tmp/emulator.toml" --port 0 --server-ca-out "$tmp/server-ca.pem" \
    >"$tmp/emulator.out" 2>"$tmp/emulator.log" &
emu_pid=$!
for _ in $(seq 100); do
    grep -q '^listening on ' "$tmp/emulator.out" 2>/dev/null && break
    kill -0 "$emu_pid" 2>/dev/null || break
    sleep 0.1
done
endpoint="$(sed -n 's/^listening on //p' "$tmp/emulator.out")"
if [ -n "$endpoint" ] && [ -s "$tmp/server-ca.pem" ]; then
    pass emulator
else
    fail emulator
    sed 's/^/    /' "$tmp/emulator.log"
fi
stop_if_failed

# ---- the SDK's TPM sequence from C, under valgrind ----
vg=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1)
run tpm_sequence env HSM_ABI_CONFIG="$tmp/tpm.toml" "${vg[@]}" "$tmp/test_tpm" "$reg_id" "$scope" "$endpoint" \
    "$tmp/server-ca.pem" fresh
# Again in a new process on the now provisioned TPM: EK and SRK reused (the emulator still
# matches the enrolled EK), the persisted key signs before the new activation replaces it.
run tpm_sequence_provisioned env HSM_ABI_CONFIG="$tmp/tpm.toml" "${vg[@]}" "$tmp/test_tpm" "$reg_id" "$scope" \
    "$endpoint" "$tmp/server-ca.pem" provisioned

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
