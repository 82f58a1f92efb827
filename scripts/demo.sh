#!/usr/bin/env bash
# The main job on the embedded defaults: start the local DPS emulator and provision device
# identities held by each built-in backend against it. Everything lives in a temp dir that is
# removed at the end; no process is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup.sh
echo "== building hsmctl and dps-emulator"
cargo build --quiet --locked -p hsmctl -p dps-emulator --all-features
bin="$root/target/debug"

work=$(mktemp -d -t hsm-abi-demo.XXXXXX)
emu_pid=""
cleanup() {
    [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

scope="0ne00000DEMO"
hub="demo-hub.azure-devices.net"

echo "== a test PKI (root CA and an x509 device certificate)"
openssl ecparam -name prime256v1 -genkey -noout -out root-key.pem 2>/dev/null
openssl req -x509 -new -key root-key.pem -subj "/CN=Demo Root CA" -days 30 -out root.pem \
    -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign
openssl ecparam -name prime256v1 -genkey -noout -out device-key.pem 2>/dev/null
openssl req -new -key device-key.pem -subj "/CN=demo-x509-device" -out device.csr
openssl x509 -req -in device.csr -CA root.pem -CAkey root-key.pem -CAcreateserial -days 30 \
    -extfile <(printf 'basicConstraints=CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n') \
    -out device-leaf.pem 2>/dev/null
cat device-leaf.pem root.pem > device-chain.pem

individual_key=$(openssl rand -base64 32)
group_key=$(openssl rand -base64 64 | tr -d '\n')

cat > emulator.toml <<TOML
id_scope = "$scope"
assigned_hub = "$hub"

[[enrollment]]
type = "x509-group"
name = "demo-x509-group"
ca = "root.pem"

[[enrollment]]
type = "symmetric-individual"
registration_id = "demo-symm-device"
primary_key = "$individual_key"

[[enrollment]]
type = "symmetric-group"
name = "demo-symm-group"
primary_key = "$group_key"
TOML

cat > x509.toml <<TOML
[x509]
backend = "file"
certificate = "device-chain.pem"
private_key = "device-key.pem"
TOML
cat > symm.toml <<TOML
[symmetric_key]
backend = "file"
registration_id = "demo-symm-device"
symmetric_key = "$individual_key"
TOML
cat > group.toml <<TOML
[symmetric_key]
backend = "file"
registration_id = "demo-group-device-7"
group_key = "$group_key"
TOML

echo "== starting the DPS emulator"
"$bin/dps-emulator" --config emulator.toml --port 0 --server-ca-out server-ca.pem > emulator.out 2> emulator.log &
emu_pid=$!
for _ in $(seq 100); do grep -q '^listening on ' emulator.out 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/^listening on //p' emulator.out)
[ -n "$endpoint" ] || { echo "the emulator did not start:"; cat emulator.log; exit 1; }
echo "emulator at $endpoint"

provision() {
    local title=$1; shift
    echo
    echo "== provision: $title"
    "$bin/hsmctl" provision --id-scope "$scope" --global-endpoint "$endpoint" --trusted-ca server-ca.pem "$@"
}

provision "x509, file-based key" --config x509.toml
provision "symmetric key, individual enrollment" --config symm.toml
echo "(derived device key: $("$bin/hsmctl" derive-key --group-key "$group_key" --registration-id demo-group-device-7))"
provision "symmetric key, group enrollment" --config group.toml

echo
echo "== demo complete"
