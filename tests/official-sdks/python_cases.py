"""The official Azure IoT Python device SDK (azure-iot-device, pinned by scripts/official-sdks.sh) against
dps-emulator, over MQTT and MQTT over WebSockets: provisioning, and the hub it assigns (python_hub_cases.py).
Run by scripts/official-sdks.sh inside a network namespace where the emulator serves localhost:443 and :8883. Input: the JSON file named by OFFICIAL_SDKS_FIXTURE.
Output: one line per case, "PASS name" or "FAIL name: reason". Every case has a deadline; a registration
still running at its deadline is a failure, and the process ends with os._exit so it cannot hang."""

import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import sys
import tempfile

from azure.iot.device import ProvisioningDeviceClient, X509

import python_hub_cases as hub

CASE_DEADLINE_S = 30
HOST = "localhost"

with open(os.environ["OFFICIAL_SDKS_FIXTURE"], encoding="utf-8") as f:
    FX = json.load(f)


def derive_key(group_key, registration_id):
    digest = hmac.new(base64.b64decode(group_key), registration_id.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def pem_files(cert, key):
    paths = []
    for text in (cert, key):
        handle, path = tempfile.mkstemp(suffix=".pem")
        with os.fdopen(handle, "w") as out:
            out.write(text)
        paths.append(path)
    return paths


def check_assigned(result, registration_id):
    if result.status != "assigned":
        raise AssertionError(f"status {result.status}")
    state = result.registration_state
    if state.assigned_hub != FX["assignedHub"]:
        raise AssertionError(f"assignedHub {state.assigned_hub}")
    if state.device_id != registration_id:
        raise AssertionError(f"deviceId {state.device_id}")


def symmetric(registration_id, key, websockets):
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=HOST,
        registration_id=registration_id,
        id_scope=FX["idScope"],
        symmetric_key=key,
        websockets=websockets,
        server_verification_cert=FX["serverCa"],
    )
    result = client.register()
    check_assigned(result, registration_id)
    return result.registration_state


def x509(registration_id, cert, key, websockets):
    cert_file, key_file = pem_files(cert, key)
    return x509_files(registration_id, cert_file, key_file, websockets)


def x509_files(registration_id, cert_file, key_file, websockets):
    client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=HOST,
        registration_id=registration_id,
        id_scope=FX["idScope"],
        x509=X509(cert_file=cert_file, key_file=key_file),
        websockets=websockets,
        server_verification_cert=FX["serverCa"],
    )
    result = client.register()
    check_assigned(result, registration_id)
    return result.registration_state


def main():
    passed = failed = 0
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    cases = []
    for kind, websockets in (("mqtt", False), ("mqtt-ws", True)):
        ind = FX["symIndividual"]
        cases.append((f"{kind} symmetric individual", symmetric, (ind["id"], ind["key"], websockets)))
        device = f"py-{kind}-group-device"
        cases.append(
            (f"{kind} symmetric group", symmetric, (device, derive_key(FX["symGroupKey"], device), websockets))
        )
        x = FX["x509Individual"]
        cases.append((f"{kind} x509 individual", x509, (x["id"], x["cert"], x["key"], websockets)))
        leaf = FX["x509GroupDevices"][f"py-{kind}"]
        cases.append((f"{kind} x509 group", x509, (leaf["id"], leaf["cert"], leaf["key"], websockets)))
    # The hub (python_hub_cases.py): provisioned, then IoTHubDeviceClient over the same transport.
    for kind, websockets in (("mqtt", False), ("mqtt-ws", True)):
        device = f"py-hub-{kind}-device"
        key = derive_key(FX["symGroupKey"], device)
        cases.append((f"hub {kind} symmetric group key", hub.symmetric, (FX, symmetric, device, key, websockets)))
        leaf = FX["x509GroupDevices"][f"py-{kind}"]
        cert_file, key_file = pem_files(leaf["cert"], leaf["key"])
        cases.append(
            (f"hub {kind} x509 group", hub.x509, (FX, x509_files, leaf["id"], cert_file, key_file, websockets))
        )
    cases.append(("hub mqtt wrong device key refused", hub.wrong_key_refused, (FX, "py-hub-mqtt-device")))
    for name, function, args in cases:
        future = pool.submit(function, *args)
        try:
            future.result(timeout=CASE_DEADLINE_S)
            passed += 1
            print(f"PASS python {name}", flush=True)
        except concurrent.futures.TimeoutError:
            failed += 1
            print(f"FAIL python {name}: no answer within {CASE_DEADLINE_S} s", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure of the SDK is a failed case
            failed += 1
            first = (str(e) or type(e).__name__).splitlines()[0]
            print(f"FAIL python {name}: {type(e).__name__}: {first}", flush=True)
    print(f"python: {passed} passed, {failed} failed", flush=True)
    sys.stdout.flush()
    os._exit(0 if failed == 0 else 1)


main()
