"""The device-to-cloud messages the emulator's IoT Hub kept for one device (scripts/sdk-interop.sh).

    python3 hub_messages.py HOST:PORT SERVER_CA POLICY_NAME POLICY_KEY DEVICE_ID

Reads them with the emulator's service call `GET /devices/{id}/messages/events?api-version=...`,
authenticated by a service SAS token of the policy (sr = the host, HMAC-SHA256 of "sr\\nse" under the
base64-decoded key), and prints one line per message, oldest first: `seq=N body=TEXT` (N the
message's "seq" property, "-" when it has none).
"""
import base64
import hashlib
import hmac
import http.client
import json
import ssl
import sys
import time
import urllib.parse

API_VERSION = "2021-10-01"


def sas_token(host, name, key):
    expiry = str(int(time.time()) + 300)
    resource = urllib.parse.quote(host, safe="")
    mac = hmac.new(base64.b64decode(key), f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
    sig = urllib.parse.quote(base64.b64encode(mac).decode(), safe="")
    return f"SharedAccessSignature sr={resource}&sig={sig}&se={expiry}&skn={name}"


def main():
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    endpoint, server_ca, name, key, device_id = sys.argv[1:6]
    host, port = endpoint.rsplit(":", 1)
    context = ssl.create_default_context(cafile=server_ca)
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
    path = f"/devices/{urllib.parse.quote(device_id, safe='')}/messages/events?api-version={API_VERSION}"
    conn.request("GET", path, headers={"Authorization": sas_token(host, name, key)})
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"hub_messages: {response.status} {body[:200]!r}")
    for message in json.loads(body):
        if message["deviceId"] != device_id:
            raise SystemExit(f"hub_messages: a message of {message['deviceId']!r} among {device_id!r}'s")
        seq = next((v for k, v in message["properties"] if k == "seq"), "-")
        text = base64.b64decode(message["body"]).decode("utf-8", "replace")
        print(f"seq={seq} body={text}")


if __name__ == "__main__":
    main()
