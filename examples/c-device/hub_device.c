/* The device's IoT Hub session after provisioning: the SDK's device client, authenticated by the
 * same HSM through the SDK's provisioning security module (x509: the HSM's certificate and
 * alias-key token handed to the TLS IO; symmetric key and TPM: SAS tokens signed by the HSM,
 * renewed by the SDK as they expire). See hub_device.h. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "azure_c_shared_utility/shared_util_options.h"
#include "azure_c_shared_utility/threadapi.h"
#include "iothub_client_options.h"
#include "iothub_device_client_ll.h"
#include "iothub_message.h"
#include "iothubtransportamqp.h"
#include "iothubtransportamqp_websockets.h"
#include "iothubtransportmqtt.h"
#include "iothubtransportmqtt_websockets.h"

#include "hub_device.h"

typedef struct {
    int authenticated;  /* 1 while the client is AUTHENTICATED */
    int connects;       /* transitions to AUTHENTICATED */
    int renewals;       /* UNAUTHENTICATED because the SAS token was due for renewal */
    int other_losses;   /* UNAUTHENTICATED for any other reason */
    IOTHUB_CLIENT_CONNECTION_STATUS_REASON first_loss; /* the reason of the first other loss */
    int confirmed;      /* telemetry confirmations (OK) */
    int unconfirmed;    /* telemetry confirmations other than OK */
    int twin_answers;
    int twin_ok;        /* the last twin had "desired" and "reported" */
    int twin_has_report; /* the last twin's reported properties hold what we reported */
    int report_status;  /* the last reported-state status, 0 before it */
} HUB_STATE;

static const char* reason_name(IOTHUB_CLIENT_CONNECTION_STATUS_REASON r)
{
    switch (r) {
    case IOTHUB_CLIENT_CONNECTION_EXPIRED_SAS_TOKEN: return "EXPIRED_SAS_TOKEN";
    case IOTHUB_CLIENT_CONNECTION_DEVICE_DISABLED: return "DEVICE_DISABLED";
    case IOTHUB_CLIENT_CONNECTION_BAD_CREDENTIAL: return "BAD_CREDENTIAL";
    case IOTHUB_CLIENT_CONNECTION_RETRY_EXPIRED: return "RETRY_EXPIRED";
    case IOTHUB_CLIENT_CONNECTION_NO_NETWORK: return "NO_NETWORK";
    case IOTHUB_CLIENT_CONNECTION_COMMUNICATION_ERROR: return "COMMUNICATION_ERROR";
    case IOTHUB_CLIENT_CONNECTION_OK: return "OK";
    case IOTHUB_CLIENT_CONNECTION_NO_PING_RESPONSE: return "NO_PING_RESPONSE";
    case IOTHUB_CLIENT_CONNECTION_QUOTA_EXCEEDED: return "QUOTA_EXCEEDED";
    }
    return "unknown";
}

static void on_connection(IOTHUB_CLIENT_CONNECTION_STATUS status, IOTHUB_CLIENT_CONNECTION_STATUS_REASON reason,
                          void* ctx)
{
    HUB_STATE* s = ctx;
    if (status == IOTHUB_CLIENT_CONNECTION_AUTHENTICATED) {
        if (!s->authenticated) {
            s->connects++;
        }
        s->authenticated = 1;
        return;
    }
    if (reason == IOTHUB_CLIENT_CONNECTION_EXPIRED_SAS_TOKEN && s->authenticated) {
        s->renewals++;
    } else {
        if (s->other_losses++ == 0) {
            s->first_loss = reason;
        }
        fprintf(stderr, "hub: not authenticated: %s\n", reason_name(reason));
    }
    s->authenticated = 0;
}

static void on_confirmation(IOTHUB_CLIENT_CONFIRMATION_RESULT result, void* ctx)
{
    HUB_STATE* s = ctx;
    if (result == IOTHUB_CLIENT_CONFIRMATION_OK) {
        s->confirmed++;
    } else {
        s->unconfirmed++;
    }
}

static void on_twin(DEVICE_TWIN_UPDATE_STATE state, const unsigned char* payload, size_t size, void* ctx)
{
    HUB_STATE* s = ctx;
    char* text = malloc(size + 1);
    (void)state;
    s->twin_ok = 0;
    s->twin_has_report = 0;
    if (text != NULL && payload != NULL) {
        memcpy(text, payload, size);
        text[size] = '\0';
        s->twin_ok = strstr(text, "\"desired\"") != NULL && strstr(text, "\"reported\"") != NULL;
        s->twin_has_report = strstr(text, "\"prov_device\":\"hub\"") != NULL;
    }
    free(text);
    s->twin_answers++;
}

static void on_reported(int status_code, void* ctx)
{
    HUB_STATE* s = ctx;
    s->report_status = status_code;
}

/* Runs the client until *counter exceeds before (or the hub is refused): 0, 1 or 2 (timed out). */
static int wait_for(IOTHUB_DEVICE_CLIENT_LL_HANDLE client, HUB_STATE* s, const int* counter, int before,
                    int timeout, const char* what)
{
    time_t deadline = time(NULL) + timeout;
    while (*counter <= before && time(NULL) < deadline) {
        IoTHubDeviceClient_LL_DoWork(client);
        if (s->connects == 0 && s->other_losses > 0) {
            /* The first connection failed: the hub refused the device (or is unreachable); the
             * SDK would retry forever, a test wants the answer now. */
            fprintf(stderr, "hub: refused before connecting: %s\n", reason_name(s->first_loss));
            printf("hub refused reason=%s\n", reason_name(s->first_loss));
            return 1;
        }
        ThreadAPI_Sleep(10);
    }
    if (*counter <= before) {
        fprintf(stderr, "hub: no %s within %d s\n", what, timeout);
        return 2;
    }
    return 0;
}

/* Runs the client until UNTIL (the passing of a token's lifetime is the event waited for): 0 when it
 * stayed authenticated on its first connection all along, 1 otherwise. */
static int stay_connected(IOTHUB_DEVICE_CLIENT_LL_HANDLE client, HUB_STATE* s, time_t until)
{
    while (time(NULL) < until) {
        IoTHubDeviceClient_LL_DoWork(client);
        if (!s->authenticated || s->connects != 1 || s->renewals != 0 || s->other_losses != 0) {
            fprintf(stderr, "hub: the AMQP connection did not outlive its token (connections %d)\n", s->connects);
            return 1;
        }
        ThreadAPI_Sleep(10);
    }
    return 0;
}

static int send_telemetry(IOTHUB_DEVICE_CLIENT_LL_HANDLE client, HUB_STATE* s, const char* device_id, int seq,
                          int timeout)
{
    char body[320];
    char seq_text[16];
    int before = s->confirmed;
    int rc;
    IOTHUB_MESSAGE_HANDLE msg;
    snprintf(body, sizeof body, "{\"device\":\"%s\",\"seq\":%d}", device_id, seq);
    snprintf(seq_text, sizeof seq_text, "%d", seq);
    if ((msg = IoTHubMessage_CreateFromString(body)) == NULL ||
        IoTHubMessage_SetProperty(msg, "seq", seq_text) != IOTHUB_MESSAGE_OK ||
        IoTHubDeviceClient_LL_SendEventAsync(client, msg, on_confirmation, s) != IOTHUB_CLIENT_OK) {
        fprintf(stderr, "hub: queueing telemetry %d failed\n", seq);
        if (msg != NULL) {
            IoTHubMessage_Destroy(msg);
        }
        return 1;
    }
    IoTHubMessage_Destroy(msg); /* the client keeps its own copy */
    if ((rc = wait_for(client, s, &s->confirmed, before, timeout, "telemetry confirmation")) != 0) {
        return rc;
    }
    if (s->unconfirmed != 0) {
        fprintf(stderr, "hub: %d telemetry message(s) not confirmed\n", s->unconfirmed);
        return 1;
    }
    printf("telemetry confirmed seq=%d\n", seq);
    return 0;
}

/* Asks for the twin and waits for it. */
static int get_twin(IOTHUB_DEVICE_CLIENT_LL_HANDLE client, HUB_STATE* s, int timeout)
{
    int before = s->twin_answers;
    if (IoTHubDeviceClient_LL_GetTwinAsync(client, on_twin, s) != IOTHUB_CLIENT_OK) {
        fprintf(stderr, "hub: asking for the twin failed\n");
        return 1;
    }
    return wait_for(client, s, &s->twin_answers, before, timeout, "twin");
}

static int twin_steps(IOTHUB_DEVICE_CLIENT_LL_HANDLE client, HUB_STATE* s, int timeout)
{
    static const char report[] = "{\"prov_device\":\"hub\"}";
    int rc;
    if ((rc = get_twin(client, s, timeout)) != 0) {
        return rc;
    }
    if (!s->twin_ok) {
        fprintf(stderr, "hub: the twin has no desired and reported properties\n");
        return 1;
    }
    printf("twin received\n");
    if (IoTHubDeviceClient_LL_SendReportedState(client, (const unsigned char*)report, sizeof report - 1, on_reported,
                                                s) != IOTHUB_CLIENT_OK) {
        fprintf(stderr, "hub: sending the reported properties failed\n");
        return 1;
    }
    if ((rc = wait_for(client, s, &s->report_status, 0, timeout, "reported-properties answer")) != 0) {
        return rc;
    }
    if (s->report_status < 200 || s->report_status > 299) {
        fprintf(stderr, "hub: reported properties refused with status %d\n", s->report_status);
        return 1;
    }
    printf("twin reported status=%d\n", s->report_status);
    if ((rc = get_twin(client, s, timeout)) != 0) {
        return rc;
    }
    if (!s->twin_has_report) {
        fprintf(stderr, "hub: the twin read back lacks the reported property\n");
        return 1;
    }
    printf("twin read back the reported property\n");
    return 0;
}

int hub_session(const char* hub, const char* device_id, const HUB_OPTIONS* o)
{
    HUB_STATE s;
    IOTHUB_DEVICE_CLIENT_LL_HANDLE client;
    IOTHUB_CLIENT_TRANSPORT_PROVIDER protocol;
    int rc = 1;
    bool trace = o->trace != 0;
    bool amqp = false;
    time_t connected_at;

    if (strcmp(o->transport, "mqtt") == 0) {
        protocol = MQTT_Protocol;
    } else if (strcmp(o->transport, "mqtt-ws") == 0) {
        protocol = MQTT_WebSocket_Protocol;
    } else if (strcmp(o->transport, "amqp") == 0) {
        protocol = AMQP_Protocol;
        amqp = true;
    } else if (strcmp(o->transport, "amqp-ws") == 0) {
        protocol = AMQP_Protocol_over_WebSocketsTls;
        amqp = true;
    } else {
        fprintf(stderr, "hub: --hub must be mqtt, mqtt-ws, amqp or amqp-ws\n");
        return 1;
    }
    memset(&s, 0, sizeof s);
    if ((client = IoTHubDeviceClient_LL_CreateFromDeviceAuth(hub, device_id, protocol)) == NULL) {
        fprintf(stderr, "hub: IoTHubDeviceClient_LL_CreateFromDeviceAuth failed\n");
        return 1;
    }
    if (trace) {
        (void)IoTHubDeviceClient_LL_SetOption(client, OPTION_LOG_TRACE, &trace);
    }
    if (o->trusted != NULL && IoTHubDeviceClient_LL_SetOption(client, OPTION_TRUSTED_CERT, o->trusted) != IOTHUB_CLIENT_OK) {
        fprintf(stderr, "hub: setting TrustedCerts failed\n");
        goto out;
    }
    if (o->sas_lifetime > 0 &&
        IoTHubDeviceClient_LL_SetOption(client, OPTION_SAS_TOKEN_LIFETIME, &o->sas_lifetime) != IOTHUB_CLIENT_OK) {
        fprintf(stderr, "hub: setting the SAS token lifetime failed\n");
        goto out;
    }
    if (IoTHubDeviceClient_LL_SetConnectionStatusCallback(client, on_connection, &s) != IOTHUB_CLIENT_OK) {
        fprintf(stderr, "hub: setting the connection status callback failed\n");
        goto out;
    }
    if ((rc = wait_for(client, &s, &s.connects, 0, o->timeout, "connection")) != 0) {
        goto out;
    }
    connected_at = time(NULL);
    printf("hub connected hub=%s device=%s\n", hub, device_id);
    fflush(stdout);
    if ((rc = send_telemetry(client, &s, device_id, 1, o->timeout)) != 0) {
        goto out;
    }
    if (o->twin && (rc = twin_steps(client, &s, o->timeout)) != 0) {
        goto out;
    }
    for (int n = 1; amqp && n <= o->renewals; n++) {
        /* Over AMQP the SDK puts a renewed token on $cbs at 80% of the lifetime, on the same
         * connection: the connection outlives token n (the hub closes it when a token expires
         * unrenewed), still authenticated, never reconnected. */
        time_t past = connected_at + (time_t)(n * (long)o->sas_lifetime) + 1;
        if ((rc = stay_connected(client, &s, past)) != 0) {
            goto out;
        }
        printf("sas renewed n=%d\n", n);
        if ((rc = send_telemetry(client, &s, device_id, n + 1, o->timeout)) != 0) {
            goto out;
        }
    }
    for (int n = 1; !amqp && n <= o->renewals; n++) {
        int connects = s.connects;
        /* The SDK renews the token at 80% of its lifetime: it disconnects and connects again
         * with a new one. Wait for that reconnection, then send through it. */
        if ((rc = wait_for(client, &s, &s.connects, connects, o->timeout, "reconnection with a renewed token")) != 0) {
            goto out;
        }
        if (s.renewals != n) {
            fprintf(stderr, "hub: connection %d came after %d renewals\n", s.connects, s.renewals);
            rc = 1;
            goto out;
        }
        printf("sas renewed n=%d\n", n);
        if ((rc = send_telemetry(client, &s, device_id, n + 1, o->timeout)) != 0) {
            goto out;
        }
    }
    if (s.other_losses != 0) {
        fprintf(stderr, "hub: the connection was lost %d time(s) other than for a renewal\n", s.other_losses);
        rc = 1;
        goto out;
    }
    printf("hub done connections=%d renewals=%d\n", s.connects, amqp ? o->renewals : s.renewals);
    rc = 0;
out:
    IoTHubDeviceClient_LL_Destroy(client);
    return rc;
}
