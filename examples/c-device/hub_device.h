/* The device's IoT Hub session after provisioning (prov_device --hub), through the SDK's device
 * client authenticated by the same HSM: IoTHubDeviceClient_LL_CreateFromDeviceAuth. */
#ifndef HUB_DEVICE_H
#define HUB_DEVICE_H

#include <stddef.h>

typedef struct {
    /* "mqtt", "mqtt-ws", "amqp" or "amqp-ws". */
    const char* transport;
    /* The server's CA (PEM text) or NULL for the SDK's default. */
    const char* trusted;
    /* The SAS token lifetime in seconds (OPTION_SAS_TOKEN_LIFETIME), 0 for the SDK's default. */
    size_t sas_lifetime;
    /* How many token renewals to wait for, sending telemetry after each. */
    int renewals;
    /* Seconds each step may take. */
    int timeout;
    /* 0: telemetry only (no twin steps). */
    int twin;
    int trace;
} HUB_OPTIONS;

/* Connects to HUB as DEVICE_ID, sends telemetry and waits for its confirmation, reads the twin,
 * reports a property and reads it back; then waits for o->renewals SAS renewals, sending again
 * after each (MQTT: a reconnection with the new token each; AMQP: the connection outlives each token,
 * the SDK putting the next one on it) (o->twin 0: telemetry only). Prints one line per step on stdout. Returns 0 on success, 1 when the hub refused
 * or a step failed, 2 when a step timed out. The SDK's platform and the provisioning security
 * module must be initialised. */
int hub_session(const char* hub, const char* device_id, const HUB_OPTIONS* o);

#endif
