"""The dps-emulator's IoT Hub service call, for the Python test drivers (stdlib only).

The emulator keeps every device-to-cloud message its hub accepted and hands them back through its own
service call `GET /devices/{id}/messages/events?api-version=...` (IoT Hub itself hands them to Event Hubs):
`200 [{"deviceId", "properties": [[name, value], ...], "body": base64}]`, oldest first. The call is
authenticated by a service SAS token of a policy with `RegistrationStatusRead` (sr = the host name,
HMAC-SHA256 of "sr\\nse" under the base64-decoded key).

Users: tests/c/hub_messages.py (scripts/lib/sdk-interop-hub.sh) and tests/official-sdks/python_hub_cases.py;
each puts this directory on sys.path.
"""

import base64
import hashlib
import hmac
import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass

API_VERSION = "2021-10-01"
TOKEN_LIFETIME_S = 300


class ServiceCallError(Exception):
    """The service call failed or answered something other than the messages of the device asked for."""


@dataclass(frozen=True)
class KeptMessage:
    """One message the hub kept: whose it is, its property bag (name, value) in the order sent, its body."""

    device_id: str
    properties: tuple
    body: bytes

    def property(self, name, default=None):
        """The first value of the property `name`, `default` when the message has none."""
        return next((value for key, value in self.properties if key == name), default)


def sas_token(host, policy, key):
    """A service SAS token of the policy `policy` (its base64 key `key`) for the hub `host`."""
    expiry = str(int(time.time()) + TOKEN_LIFETIME_S)
    resource = urllib.parse.quote(host, safe="")
    mac = hmac.new(base64.b64decode(key), f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
    sig = urllib.parse.quote(base64.b64encode(mac).decode(), safe="")
    return f"SharedAccessSignature sr={resource}&sig={sig}&se={expiry}&skn={policy}"


def kept_messages(host, port, context, policy, key, device_id):
    """The messages the hub at host:port (TLS with the ssl.SSLContext `context`) kept for `device_id`, oldest
    first, as KeptMessage; ServiceCallError when the call fails or the answer is not that device's messages."""
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=30)
    path = f"/devices/{urllib.parse.quote(device_id, safe='')}/messages/events?api-version={API_VERSION}"
    try:
        conn.request("GET", path, headers={"Authorization": sas_token(host, policy, key)})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise ServiceCallError(f"GET {path}: {response.status} {body[:200]!r}")
    try:
        kept = [
            KeptMessage(m["deviceId"], tuple((k, v) for k, v in m["properties"]), base64.b64decode(m["body"]))
            for m in json.loads(body)
        ]
    except (ValueError, KeyError, TypeError) as e:  # binascii.Error is a ValueError
        raise ServiceCallError(f"GET {path}: not a list of kept messages ({e}): {body[:200]!r}") from e
    for message in kept:
        if message.device_id != device_id:
            raise ServiceCallError(f"GET {path}: a message of {message.device_id!r} among {device_id!r}'s")
    return kept
