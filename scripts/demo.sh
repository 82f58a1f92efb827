#!/usr/bin/env bash
# The main job on the embedded defaults: start the local DPS emulator and provision device
# identities held by each built-in backend against it; end as a device's life does: connect to the
# hub, send telemetry, renew the certificate, connect again with the new one, send again.
# Everything lives in a temp dir that is removed at the end; no process is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup.sh
echo "== building hsmctl and dps-emulator"
cargo build --quiet --locked -p hsmctl -p dps-emulator --all-features
# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"
bin="$(cargo_target_dir)/debug"

work=$(mktemp -d -t hsm-abi-demo.XXXXXX)
emu_pid=""
tpm_pid=""
cleanup() {
    if [ -n "$emu_pid" ]; then kill "$emu_pid" 2>/dev/null; wait "$emu_pid" 2>/dev/null; fi
    if [ -n "$tpm_pid" ]; then kill "$tpm_pid" 2>/dev/null; wait "$tpm_pid" 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
# shellcheck source=lib/steps.sh
source "$root/scripts/lib/steps.sh"

scope="0ne00000DEMO"
hub="demo-hub.azure-devices.net"

echo "== a test PKI: root CA and a file-based x509 device (hsmctl certs)"
"$bin/hsmctl" certs --out-dir pki --device-id demo-x509-device

echo
echo "== a SoftHSM2 token with a device key generated inside it"
eval "$(bash "$root/scripts/softhsm-env.sh" "$work/softhsm" demo-token)"
key_uri=$("$bin/hsmctl" pkcs11 keygen --uri "pkcs11:token=demo-token;object=device-key?pin-source=file:$PKCS11_PIN_FILE")
echo "key: $key_uri"
"$bin/hsmctl" pkcs11 csr --uri "$key_uri" --common-name demo-pkcs11-device --out pkcs11.csr.pem
"$bin/hsmctl" certs --out-dir pki --ca-cert pki/root-ca.cert.pem --ca-key pki/root-ca.key.pem --csr pkcs11.csr.pem
"$bin/hsmctl" pkcs11 import-cert --uri "pkcs11:token=demo-token;object=device-key?pin-source=file:$PKCS11_PIN_FILE" \
    --file pki/demo-pkcs11-device.cert.pem

echo
echo "== a DICE device: a Unique Device Secret and a firmware image"
head -c 4096 /dev/urandom > firmware.bin
"$bin/hsmctl" dice init --uds-file uds.bin > /dev/null
cat > dice.toml <<TOML
[x509]
backend = "dice"
uds_file = "uds.bin"
firmware_file = "firmware.bin"
registration_id = "demo-dice-device"
TOML
"$bin/hsmctl" dice chain --config dice.toml --out-dir dice > /dev/null

echo
echo "== a TPM (swtpm) and its endorsement key"
start_swtpm "$work/tpmstate" "$work/swtpm.log"
tpm_pid=$swtpm_pid
tpm_port=$swtpm_port
cat > tpm.toml <<TOML
[tpm]
backend = "tpm"
tcti = "swtpm:host=127.0.0.1,port=$tpm_port"
TOML
export TSS2_LOG=all+NONE
"$bin/hsmctl" --log error enrollment record --config tpm.toml > tpm-enrollment.json
tpm_reg=$(python3 -c 'import json; print(json.load(open("tpm-enrollment.json"))["registrationId"])')
tpm_ek=$(python3 -c 'import json; print(json.load(open("tpm-enrollment.json"))["attestation"]["tpm"]["endorsementKey"])')
echo "TPM registration id: $tpm_reg"

individual_key=$(openssl rand -base64 32)
group_key=$(openssl rand -base64 64 | tr -d '\n')

# The emulator issues device certificates (DPS csr) from this P-384 CA, enrolled as an x509 group
# so that a device can also register with the certificate it was issued.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout issuing-ca.key.pem \
    -out issuing-ca.cert.pem -subj "/CN=demo issuing CA" -days 30 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
service_key=$(openssl rand -base64 32)
issued_key=$(openssl rand -base64 32)
factory_key=$(openssl rand -base64 32)

cat > emulator.toml <<TOML
id_scope = "$scope"
assigned_hub = "$hub"

[[service_policy]]
name = "provisioningserviceowner"
primary_key = "$service_key"
rights = ["EnrollmentRead", "EnrollmentWrite", "RegistrationStatusRead", "RegistrationStatusWrite"]

[[enrollment]]
type = "x509-group"
name = "demo-issuing-ca"
ca = "issuing-ca.cert.pem"

[[enrollment]]
type = "symmetric-individual"
registration_id = "demo-issued-device"
primary_key = "$issued_key"

[[enrollment]]
type = "x509-group"
name = "demo-x509-group"
ca = "pki/root-ca.cert.pem"

[[enrollment]]
type = "x509-individual"
registration_id = "demo-dice-device"
certificate = "dice/device-id.cert.pem"

[[enrollment]]
type = "tpm-individual"
registration_id = "$tpm_reg"
endorsement_key = "$tpm_ek"

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
certificate = "pki/demo-x509-device.chain.pem"
private_key = "pki/demo-x509-device.key.pem"
TOML
cat > pkcs11.toml <<TOML
[x509]
backend = "pkcs11"
key = "$key_uri"
certificate_file = "pki/demo-pkcs11-device.chain.pem"
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

cat > issued.toml <<TOML
[x509]
backend = "issued"
store = "issued"
registration_id = "demo-issued-device"
keys = "pkcs11:token=demo-token?pin-source=file:$PKCS11_PIN_FILE"

[symmetric_key]
backend = "file"
registration_id = "demo-issued-device"
symmetric_key = "$issued_key"
TOML
cat > factory.toml <<TOML
[symmetric_key]
backend = "file"
registration_id = "demo-factory-device"
symmetric_key = "$factory_key"
TOML

echo "== starting the DPS emulator"
"$bin/dps-emulator" --config emulator.toml --port 0 --mqtt-port 0 --mqtt-port-out mqtt.endpoint \
    --amqp-port 0 --amqp-port-out amqp.endpoint \
    --server-ca-out server-ca.pem --issuing-ca issuing-ca.cert.pem --issuing-ca-key issuing-ca.key.pem \
    --state-dir state --connection-string-out service.connection > emulator.out 2> emulator.log &
emu_pid=$!
for _ in $(seq 100); do grep -q '^listening on ' emulator.out 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/^listening on //p' emulator.out)
[ -n "$endpoint" ] || { echo "the emulator did not start:"; cat emulator.log; exit 1; }
mqtt_endpoint=$(cat mqtt.endpoint)
amqp_endpoint=$(cat amqp.endpoint)
echo "emulator at $endpoint (HTTPS, MQTT and AMQP over WebSockets), $mqtt_endpoint (MQTT), $amqp_endpoint (AMQP)"

provision() {
    local title=$1; shift
    echo
    echo "== provision: $title"
    "$bin/hsmctl" provision --id-scope "$scope" --global-endpoint "$endpoint" --trusted-ca server-ca.pem "$@"
}

# provision_over TRANSPORT ENDPOINT TITLE ARGS...: the same over another transport, at its endpoint.
provision_over() {
    local transport=$1 at=$2 title=$3
    shift 3
    echo
    echo "== provision over $title"
    "$bin/hsmctl" provision --id-scope "$scope" --transport "$transport" --global-endpoint "$at" \
        --trusted-ca server-ca.pem "$@"
}

provision "x509, file-based key" --config x509.toml
provision "x509, key inside a SoftHSM2 token (PKCS#11)" --config pkcs11.toml
provision "x509, DICE alias key (software DICE engine)" --config dice.toml
provision "TPM attestation on swtpm" --config tpm.toml
provision "symmetric key, individual enrollment" --config symm.toml
echo "(derived device key: $("$bin/hsmctl" derive-key --group-key "$group_key" --registration-id demo-group-device-7))"
provision "symmetric key, group enrollment" --config group.toml

provision_over mqtt "$mqtt_endpoint" "MQTT: x509, key inside the SoftHSM2 token" --config pkcs11.toml
provision_over mqtt-ws "$endpoint" "MQTT over WebSockets: symmetric key, individual enrollment" --config symm.toml
provision_over amqp "$amqp_endpoint" "AMQP: x509, key inside the SoftHSM2 token" --config pkcs11.toml
provision_over amqp-ws "$endpoint" "AMQP over WebSockets: symmetric key, group enrollment" --config group.toml


echo
echo "== the service API: enroll a device from its configuration (hsmctl enrollment), then provision it"
"$bin/hsmctl" enrollment create --config factory.toml --connection-string-file service.connection \
    --trusted-ca server-ca.pem
provision "symmetric key, enrolled through the service API" --config factory.toml
"$bin/hsmctl" enrollment get demo-factory-device --connection-string-file service.connection \
    --trusted-ca server-ca.pem

echo
echo "== an issued certificate: a P-384 key made on the SoftHSM2 token, only its CSR sent with the registration"
"$bin/hsmctl" provision --config issued.toml --issue-certificate --attestation symmetric-key \
    --id-scope "$scope" --global-endpoint "$endpoint" --trusted-ca server-ca.pem
provision "x509 with the issued certificate (key on the token)" --config issued.toml --attestation x509

echo
echo "== the device's life at its IoT hub: the issued certificate (key on the SoftHSM2 token) at the"
echo "   emulator's hub $hub"
hub_send() {
    "$bin/hsmctl" hub send --config issued.toml --identity x509 --hub "$hub" --device-id demo-issued-device \
        --endpoint "$mqtt_endpoint" --trusted-ca server-ca.pem "$@"
}
echo "-- connect with the certificate DPS issued, send telemetry"
hub_send --message '{"temperature": 21.5}'
echo "-- renew the certificate over IoT Hub (\$iothub/credentials): a new key on the token, its CSR sent"
"$bin/hsmctl" certificate renew hub --config issued.toml --hub "$hub" --device-id demo-issued-device \
    --endpoint "$mqtt_endpoint" --trusted-ca server-ca.pem
echo "-- connect again with the new certificate, send again, and confirm it (the old key is deleted)"
hub_send --message '{"temperature": 21.7}'
"$bin/hsmctl" certificate confirm --config issued.toml

echo
echo "== demo complete"
