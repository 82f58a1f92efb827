#!/usr/bin/env bash
# The official Azure IoT SDKs against dps-emulator: the Node.js provisioning device client (HTTP, MQTT, AMQP,
# MQTT and AMQP over WebSockets) and service client, and the Python device client (MQTT, MQTT over
# WebSockets); then the emulator's IoT Hub (the assigned hub, localhost) with the Node.js device client
# (azure-iot-device over MQTT, MQTT-WS, AMQP, AMQP-WS) and Python's IoTHubDeviceClient (MQTT, MQTT-WS):
# tests/official-sdks/node-hub-cases.js and python_hub_cases.py (the summary tables them per SDK and
# transport). All pinned and installed from the package registries into the cargo target directory (never globally):
#   npm: tests/official-sdks/package.json with its committed package-lock.json (npm ci);
#   PyPI: azure-iot-device==2.14.0 into a venv (tests/official-sdks/requirements.txt pins it and its
#   dependencies).
# The clients dial the standard ports (443, 8883, 5671) of a host name, so the emulator runs on localhost:443,
# :8883 and :5671 in a network namespace of the suite's own (unshare -n, as root), as scripts/sdk-interop.sh does.
#
#   scripts/official-sdks.sh        one line per case, the hub table, then "N passed, N failed"
#   KEEP_TMP=1 ...                  keep the work directory (target/official-sdks/run) for inspection
#   OFFICIAL_SDKS_EMULATOR=PATH ... run against that dps-emulator binary instead of building one
#
# When a registry cannot be reached outside CI the suite says so loudly and exits 0 without a summary; in
# CI (CI set) a failed install is a failure.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYPI_PIN="azure-iot-device==2.14.0"

if [ -z "${OFFICIAL_SDKS_IN_NETNS:-}" ]; then
    # shellcheck source=lib/cargo.sh
    source "$root/scripts/lib/cargo.sh"
    target_dir="$(cargo_target_dir)" ||
        { echo "official-sdks: cannot ask cargo for its target directory"; echo "0 passed, 1 failed"; exit 1; }
    base="$target_dir/official-sdks"
    mkdir -p "$base/node"

    not_installed() {
        echo "############################################################################" >&2
        echo "official-sdks: THE OFFICIAL SDKS COULD NOT BE INSTALLED ($1)." >&2
        echo "official-sdks: is the package registry reachable? The official-SDK tests did NOT run." >&2
        echo "############################################################################" >&2
        if [ -n "${CI:-}" ]; then
            echo "0 passed, 1 failed"
            exit 1
        fi
        exit 0
    }
    for tool in node npm python3 openssl unshare ip; do
        command -v "$tool" >/dev/null || not_installed "$tool is not installed"
    done

    # ---- npm: exactly the committed lock file (reinstalled when it changes) ----
    lock="$root/tests/official-sdks/package-lock.json"
    if ! cmp -s "$lock" "$base/node/package-lock.json" || [ ! -d "$base/node/node_modules" ]; then
        rm -rf "$base/node/node_modules"
        cp "$root/tests/official-sdks/package.json" "$lock" "$base/node/"
        (cd "$base/node" && timeout 600 npm ci --ignore-scripts --no-audit --no-fund) >"$base/npm.log" 2>&1 ||
            { rm -f "$base/node/package-lock.json"; cat "$base/npm.log" >&2; not_installed "npm ci failed"; }
    fi

    # ---- PyPI: a venv of its own, exactly the committed requirements (reinstalled when they change) ----
    venv="$base/venv"
    requirements="$root/tests/official-sdks/requirements.txt"
    if ! cmp -s "$requirements" "$base/requirements.txt" || [ ! -x "$venv/bin/python" ]; then
        rm -rf "$venv" "$base/requirements.txt"
        { python3 -m venv "$venv" &&
            timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"; } \
            >"$base/pip.log" 2>&1 || { cat "$base/pip.log" >&2; not_installed "pip install of $PYPI_PIN failed"; }
        cp "$requirements" "$base/requirements.txt"
    fi

    emulator="${OFFICIAL_SDKS_EMULATOR:-}"
    if [ -z "$emulator" ]; then
        (cd "$root" && cargo build --locked -q -p dps-emulator) ||
            { echo "official-sdks: building dps-emulator failed"; echo "0 passed, 1 failed"; exit 1; }
        emulator="$target_dir/debug/dps-emulator"
    fi

    if ! unshare -n true 2>/dev/null; then
        echo "official-sdks: cannot create a network namespace (unshare -n needs root)"
        echo "0 passed, 1 failed"
        exit 1
    fi
    exec env OFFICIAL_SDKS_IN_NETNS=1 OFFICIAL_SDKS_BASE="$base" OFFICIAL_SDKS_EMULATOR="$emulator" \
        unshare -n bash "${BASH_SOURCE[0]}" "$@"
fi

# ---- inside the namespace ----
ip link set lo up || { echo "official-sdks: cannot bring up lo in the namespace"; echo "0 passed, 1 failed"; exit 1; }
base="$OFFICIAL_SDKS_BASE"
w="$base/run"
rm -rf "$w"
mkdir -p "$w"
cd "$w" || exit 1
emulator_pid=""
cleanup() {
    [ -n "$emulator_pid" ] && kill -TERM "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$w"
}
trap cleanup EXIT

# ---- identities: keys, an individual x509 device, a group CA and its devices (EC P-256) ----
b64key() { openssl rand -base64 32; }
sym_key="$(b64key)"
group_key="$(b64key)"
policy_key="$(b64key)"
wrong_policy_key="$(b64key)"
leaf() { # leaf NAME CN [CA]: NAME.key, NAME.pem with clientAuth; self-signed without CA
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >"$1.ext"
    if [ -n "${3:-}" ]; then
        openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 2 -sha256 \
            -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    else
        openssl x509 -req -in "$1.csr" -signkey "$1.key" -days 2 -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    fi
}
openssl ecparam -name prime256v1 -genkey -noout -out group-ca.key 2>/dev/null
openssl req -x509 -new -key group-ca.key -subj "/CN=official-sdks group CA" -days 2 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out group-ca.pem 2>/dev/null
leaf x509-individual x509-individual
for d in node-http node-mqtt node-mqtt-ws node-amqp node-amqp-ws py-mqtt py-mqtt-ws; do leaf "$d" "$d-x509-group-device" group-ca; done

cat >emulator.toml <<EOF
id_scope = "0ne0000OSDK"
assigned_hub = "localhost"

[[service_policy]]
name = "provisioningserviceowner"
primary_key = "$policy_key"
rights = ["EnrollmentRead", "EnrollmentWrite", "RegistrationStatusRead", "RegistrationStatusWrite"]

[[enrollment]]
type = "symmetric-individual"
registration_id = "sym-individual-device"
primary_key = "$sym_key"

[[enrollment]]
type = "symmetric-group"
name = "sym-group"
primary_key = "$group_key"

[[enrollment]]
type = "x509-individual"
registration_id = "x509-individual"
certificate = "x509-individual.pem"

[[enrollment]]
type = "x509-group"
name = "x509-group"
ca = "group-ca.pem"
EOF

"$OFFICIAL_SDKS_EMULATOR" --config emulator.toml --port 443 --mqtt-port 8883 --amqp-port 5671 --retry-after 1 \
    --server-ca-out server-ca.pem >emulator.out 2>emulator.log &
emulator_pid=$!
for _ in $(seq 1 300); do
    grep -q '^listening on ' emulator.out 2>/dev/null && break
    kill -0 "$emulator_pid" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q '^listening on ' emulator.out 2>/dev/null; then
    echo "official-sdks: the emulator did not start:"
    cat emulator.log
    echo "0 passed, 1 failed"
    exit 1
fi

SYM_KEY="$sym_key" GROUP_KEY="$group_key" POLICY_KEY="$policy_key" WRONG_KEY="$wrong_policy_key" python3 - <<'PY' >fixture.json
import json, os
read = lambda p: open(p, encoding="utf-8").read()
cs = lambda key: f"HostName=localhost;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey={key}"
print(json.dumps({
    "idScope": "0ne0000OSDK",
    "assignedHub": "localhost",
    "hubReader": {"host": "localhost", "policy": "provisioningserviceowner", "key": os.environ["POLICY_KEY"]},
    "serverCa": read("server-ca.pem"),
    "symIndividual": {"id": "sym-individual-device", "key": os.environ["SYM_KEY"]},
    "symGroupId": "sym-group",
    "symGroupKey": os.environ["GROUP_KEY"],
    "x509Individual": {"id": "x509-individual", "cert": read("x509-individual.pem"), "key": read("x509-individual.key")},
    "x509GroupDevices": {d: {"id": f"{d}-x509-group-device", "cert": read(f"{d}.pem") + read("group-ca.pem"),
                             "key": read(f"{d}.key")}
                         for d in ["node-http", "node-mqtt", "node-mqtt-ws", "node-amqp", "node-amqp-ws", "py-mqtt", "py-mqtt-ws"]},
    "serviceConnectionString": cs(os.environ["POLICY_KEY"]),
    "wrongServiceConnectionString": cs(os.environ["WRONG_KEY"]),
}))
PY

export OFFICIAL_SDKS_FIXTURE="$w/fixture.json"
# Node: the emulator's CA trusted; localhost as 127.0.0.1 (the emulator listens on IPv4).
NODE_EXTRA_CA_CERTS="$w/server-ca.pem" NODE_OPTIONS="--dns-result-order=ipv4first" NODE_PATH="$base/node/node_modules" \
    timeout 600 node "$root/tests/official-sdks/node-cases.js" 2>node.err | tee node.out
node_rc=${PIPESTATUS[0]}
timeout 600 "$base/venv/bin/python" "$root/tests/official-sdks/python_cases.py" 2>python.err | tee python.out
python_rc=${PIPESTATUS[0]}

# The hub cases per SDK and transport (ok / FAIL; - not a case), then the other hub cases.
cat node.out python.out | python3 -c '
import re, sys
transports = ["mqtt", "mqtt-ws", "amqp", "amqp-ws"]
cells, others = {}, []
for line in sys.stdin:
    m = re.match(r"(PASS|FAIL) (node|python) hub (\S+) (.*?)(?::|$)", line.rstrip("\n"))
    if not m:
        continue
    verdict = "ok" if m[1] == "PASS" else "FAIL"
    if m[3] in transports and m[4] in ("symmetric group key", "x509 group"):
        cells[(m[2] + " " + m[4], m[3])] = verdict
    else:
        others.append(f"{m[2]} hub {m[3]} {m[4]}: {verdict}")
print("%-28s" % "hub: SDK / identity" + "".join("%-9s" % t for t in transports))
for row in sorted({r for r, _ in cells}):
    print("%-28s" % row + "".join("%-9s" % cells.get((row, t), "-") for t in transports))
for other in others:
    print(other)
'

passed=$(cat node.out python.out | grep -c '^PASS ')
failed=$(cat node.out python.out | grep -c '^FAIL ')
for pair in "node:$node_rc" "python:$python_rc"; do
    name=${pair%%:*} rc=${pair##*:}
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$name.out"; then
        echo "official-sdks: the $name program ended with exit code $rc without a failed case:"
        tail -n 20 "$name.err"
        failed=$((failed + 1))
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "official-sdks: emulator log (last lines):"
    tail -n 30 emulator.log
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
