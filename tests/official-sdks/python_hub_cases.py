"""The IoT Hub cases of python_cases.py (issue 24): after provisioning, the official Python device client
(azure-iot-device's IoTHubDeviceClient, MQTT and MQTT over WebSockets) connects to the hub DPS assigned (the
emulator's own), sends telemetry, reads its twin, patches a reported property and reads it back from the hub,
and shuts down. Every message it sent must then be kept by the emulator, read with its service call
`GET /devices/{id}/messages/events` (tests/lib/emulator_service.py, a service SAS token of the fixture's
policy)."""

import base64
import json
import os
import secrets
import ssl
import sys

from azure.iot.device import IoTHubDeviceClient, Message, X509

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import emulator_service  # noqa: E402 - found through the path above

MESSAGES_PER_CASE = 2


def kept_messages(fx, device_id):
    """The D2C messages the emulator's hub kept for a device (emulator_service.KeptMessage), oldest first."""
    reader = fx["hubReader"]
    context = ssl.create_default_context(cadata=fx["serverCa"])
    return emulator_service.kept_messages(reader["host"], 443, context, reader["policy"], reader["key"], device_id)


def hub_session(fx, client, device_id, name):
    """Connect, send, read the twin, patch and read back a reported property, shut down; then the hub must
    have kept exactly this run's messages, in order."""
    run = secrets.token_hex(6)
    try:
        client.connect()
        for seq in range(1, MESSAGES_PER_CASE + 1):
            message = Message(json.dumps({"case": name, "seq": seq}), content_type="application/json")
            message.custom_properties["run"] = run
            message.custom_properties["seq"] = str(seq)
            client.send_message(message)
        twin = client.get_twin()
        before = twin["reported"]["$version"]
        client.patch_twin_reported_properties({"officialSdk": {"run": run, "transport": name}})
        reported = client.get_twin()["reported"]
        if reported.get("officialSdk", {}).get("run") != run:
            raise AssertionError(f"the reported property did not read back: {reported}")
        if reported["$version"] <= before:
            raise AssertionError(f"reported $version {reported['$version']} after {before}")
    finally:
        client.shutdown()
    kept = [m for m in kept_messages(fx, device_id) if m.property("run") == run]
    if len(kept) != MESSAGES_PER_CASE:
        raise AssertionError(f"the hub kept {len(kept)} of the {MESSAGES_PER_CASE} messages sent")
    for i, message in enumerate(kept, start=1):
        body = message.body.decode()
        if message.property("seq") != str(i) or json.loads(body)["seq"] != i:
            raise AssertionError(f"kept message {i}: {message.properties} {body}")
        if message.property("$.ct") != "application/json":
            raise AssertionError(f"kept message {i} has content type {message.property('$.ct')!r}")


def symmetric(fx, register, device_id, key, websockets):
    state = register(device_id, key, websockets)
    client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=key,
        hostname=state.assigned_hub,
        device_id=state.device_id,
        websockets=websockets,
        server_verification_cert=fx["serverCa"],
    )
    hub_session(fx, client, state.device_id, f"py-{device_id}")


def x509(fx, register, device_id, cert_file, key_file, websockets):
    state = register(device_id, cert_file, key_file, websockets)
    client = IoTHubDeviceClient.create_from_x509_certificate(
        x509=X509(cert_file=cert_file, key_file=key_file),
        hostname=state.assigned_hub,
        device_id=state.device_id,
        websockets=websockets,
        server_verification_cert=fx["serverCa"],
    )
    hub_session(fx, client, state.device_id, f"py-{device_id}")


def wrong_key_refused(fx, device_id):
    """A device that exists at the hub, with a SAS token signed by another key: connect must fail."""
    wrong = base64.b64encode(bytes([9]) * 32).decode()
    client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=wrong,
        hostname=fx["assignedHub"],
        device_id=device_id,
        server_verification_cert=fx["serverCa"],
        connection_retry=False,
    )
    try:
        client.connect()
    except Exception as e:  # noqa: BLE001 - the SDK's refusal, whichever class it picks
        if "CredentialError" not in type(e).__name__ and "not authorized" not in str(e).lower():
            raise AssertionError(f"refused, but not for the credentials: {type(e).__name__}: {e}") from e
        return
    finally:
        client.shutdown()
    raise AssertionError("a wrong device key was accepted by the hub")
