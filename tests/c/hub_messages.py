"""The device-to-cloud messages the emulator's IoT Hub kept for one device (scripts/lib/sdk-interop-hub.sh).

    python3 hub_messages.py HOST:PORT SERVER_CA POLICY_NAME POLICY_KEY DEVICE_ID

Reads them with the emulator's service call (tests/lib/emulator_service.py: `GET
/devices/{id}/messages/events`, a service SAS token of the policy) and prints one line per message, oldest
first: `seq=N body=TEXT` (N the message's "seq" property, "-" when it has none).
"""
import os
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import emulator_service  # noqa: E402 - found through the path above


def main():
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    endpoint, server_ca, name, key, device_id = sys.argv[1:6]
    host, port = endpoint.rsplit(":", 1)
    context = ssl.create_default_context(cafile=server_ca)
    try:
        kept = emulator_service.kept_messages(host, int(port), context, name, key, device_id)
    except emulator_service.ServiceCallError as e:
        raise SystemExit(f"hub_messages: {e}") from e
    for message in kept:
        text = message.body.decode("utf-8", "replace")
        print(f"seq={message.property('seq', '-')} body={text}")


if __name__ == "__main__":
    main()
