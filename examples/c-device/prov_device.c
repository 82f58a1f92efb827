/* A small device program on the Azure IoT C SDK's public provisioning API, with libhsm_abi as
 * the SDK's custom HSM: the identity (x509 certificate and key, symmetric key, TPM) comes from
 * the TOML file named by HSM_ABI_CONFIG. Copy it as the start of your own device program.
 *
 *   prov_device --id-scope SCOPE --attestation x509|symmetric-key|tpm
 *               [--transport http|mqtt|mqtt-ws|amqp|amqp-ws] [--endpoint HOST] [--trusted-ca PEM_FILE]
 *               [--proxy HOST:PORT] [--timeout SECONDS] [--payload JSON] [--trace]
 *               [--registration-id ID] [--hold]
 *               [--hub mqtt|mqtt-ws|amqp|amqp-ws [--hub-config TOML] [--sas-lifetime S [--renewals N]] [--no-twin]]
 *
 * --registration-id overrides the one the HSM gives (the SDK's "registration_id" option);
 * --hold waits, after registering, until standard input closes (so a test can inspect the
 * live process) before cleaning up.
 *
 * --hub: once assigned, connects to the assigned hub as the assigned device over MQTT, MQTT
 * over WebSockets, AMQP or AMQP over WebSockets with IoTHubDeviceClient_LL_CreateFromDeviceAuth (the same HSM identity), sends
 * telemetry, reads the twin, reports a property (hub_device.c). --hub-config switches the
 * library to another configuration first (a test of a hub refusing a key DPS did not register);
 * --sas-lifetime sets the SDK's SAS token lifetime and --renewals waits for that many renewals,
 * sending again after each; --no-twin leaves the twin out (telemetry only).
 *
 * Prints one line and exits 0 when assigned:   assigned hub=HUB device=DEVICE_ID
 * (then with --hub a line per hub step, "hub connected ...", "telemetry confirmed seq=N", ...,
 * "hub done ..."), otherwise prints why on stderr and exits 1 (an error from the SDK, or the
 * hub refused: "hub refused reason=...") or 2 (timed out). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "c_logging/logger.h"
#include "azure_c_shared_utility/platform.h"
#include "azure_c_shared_utility/shared_util_options.h"
#include "azure_c_shared_utility/threadapi.h"
#include "azure_prov_client/prov_device_ll_client.h"
#include "azure_prov_client/prov_security_factory.h"
#include "azure_prov_client/prov_transport_http_client.h"
#include "azure_prov_client/prov_transport_mqtt_client.h"
#include "azure_prov_client/prov_transport_mqtt_ws_client.h"
#include "azure_prov_client/prov_transport_amqp_client.h"
#include "azure_prov_client/prov_transport_amqp_ws_client.h"
#include "azure_prov_client/iothub_security_factory.h"
#include "hsm_abi.h"

#include "hub_device.h"

typedef struct {
    int done;
    PROV_DEVICE_RESULT result;
    char hub[256];
    char device_id[256];
} OUTCOME;

static void on_registered(PROV_DEVICE_RESULT result, const char* hub, const char* device_id, void* ctx)
{
    OUTCOME* o = ctx;
    o->result = result;
    if (result == PROV_DEVICE_RESULT_OK && hub != NULL && device_id != NULL) {
        snprintf(o->hub, sizeof o->hub, "%s", hub);
        snprintf(o->device_id, sizeof o->device_id, "%s", device_id);
    }
    o->done = 1;
}

/* The SDK declares these enums without their string tables: our own names. */
static const char* status_name(PROV_DEVICE_REG_STATUS s)
{
    switch (s) {
    case PROV_DEVICE_REG_STATUS_CONNECTED: return "connected";
    case PROV_DEVICE_REG_STATUS_REGISTERING: return "registering";
    case PROV_DEVICE_REG_STATUS_ASSIGNING: return "assigning";
    case PROV_DEVICE_REG_STATUS_ASSIGNED: return "assigned";
    case PROV_DEVICE_REG_STATUS_ERROR: return "error";
    case PROV_DEVICE_REG_HUB_NOT_SPECIFIED: return "hub not specified";
    }
    return "unknown";
}

static const char* result_name(PROV_DEVICE_RESULT r)
{
    switch (r) {
    case PROV_DEVICE_RESULT_OK: return "OK";
    case PROV_DEVICE_RESULT_INVALID_ARG: return "INVALID_ARG";
    case PROV_DEVICE_RESULT_SUCCESS: return "SUCCESS";
    case PROV_DEVICE_RESULT_MEMORY: return "MEMORY";
    case PROV_DEVICE_RESULT_PARSING: return "PARSING";
    case PROV_DEVICE_RESULT_TRANSPORT: return "TRANSPORT";
    case PROV_DEVICE_RESULT_INVALID_STATE: return "INVALID_STATE";
    case PROV_DEVICE_RESULT_DEV_AUTH_ERROR: return "DEV_AUTH_ERROR";
    case PROV_DEVICE_RESULT_TIMEOUT: return "TIMEOUT";
    case PROV_DEVICE_RESULT_KEY_ERROR: return "KEY_ERROR";
    case PROV_DEVICE_RESULT_ERROR: return "ERROR";
    case PROV_DEVICE_RESULT_HUB_NOT_SPECIFIED: return "HUB_NOT_SPECIFIED";
    case PROV_DEVICE_RESULT_UNAUTHORIZED: return "UNAUTHORIZED";
    case PROV_DEVICE_RESULT_DISABLED: return "DISABLED";
    }
    return "unknown";
}

static void on_status(PROV_DEVICE_REG_STATUS status, void* ctx)
{
    (void)ctx;
    fprintf(stderr, "status: %s\n", status_name(status));
}

static char* read_text(const char* path)
{
    FILE* f = fopen(path, "rb");
    char* text = NULL;
    long n;
    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1L << 20) && fseek(f, 0, SEEK_SET) == 0) {
        text = malloc((size_t)n + 1);
        if (text != NULL && fread(text, 1, (size_t)n, f) == (size_t)n) {
            text[n] = '\0';
        } else {
            free(text);
            text = NULL;
        }
    }
    fclose(f);
    return text;
}

static int usage(const char* why)
{
    fprintf(stderr, "prov_device: %s\n"
                    "usage: prov_device --id-scope SCOPE --attestation x509|symmetric-key|tpm\n"
                    "       [--transport http|mqtt|mqtt-ws|amqp|amqp-ws] [--endpoint HOST] [--trusted-ca PEM_FILE]\n"
                    "       [--proxy HOST:PORT] [--timeout SECONDS] [--payload JSON] [--trace]\n"
                    "       [--registration-id ID] [--hold]\n"
                    "       [--hub mqtt|mqtt-ws|amqp|amqp-ws [--hub-config TOML] [--sas-lifetime S [--renewals N]] [--no-twin]]\n",
            why);
    return 1;
}

int main(int argc, char** argv)
{
    const char* scope = NULL;
    const char* attestation = NULL;
    const char* transport = "http";
    const char* endpoint = "global.azure-devices-provisioning.net";
    const char* trusted_ca = NULL;
    const char* proxy = NULL;
    const char* payload = NULL;
    int timeout = 60;
    const char* registration_id = NULL;
    bool trace = false;
    bool hold = false;
    const char* hub_config = NULL;
    HUB_OPTIONS hub_options = {NULL, NULL, 0, 0, 0, 1, 0};
    IOTHUB_SECURITY_TYPE hub_security;
    SECURE_DEVICE_TYPE type;
    PROV_DEVICE_TRANSPORT_PROVIDER_FUNCTION protocol;
    PROV_DEVICE_LL_HANDLE handle;
    OUTCOME outcome;
    char proxy_host[256];
    char* trusted = NULL;
    int status = 1;
    time_t deadline;

    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        const char* v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--trace") == 0) {
            trace = true;
            continue;
        }
        if (strcmp(a, "--hold") == 0) {
            hold = true;
            continue;
        }
        if (strcmp(a, "--no-twin") == 0) {
            hub_options.twin = 0;
            continue;
        }
        if (v == NULL) {
            return usage("an option is missing its value");
        }
        i++;
        if (strcmp(a, "--id-scope") == 0) {
            scope = v;
        } else if (strcmp(a, "--attestation") == 0) {
            attestation = v;
        } else if (strcmp(a, "--transport") == 0) {
            transport = v;
        } else if (strcmp(a, "--endpoint") == 0) {
            endpoint = v;
        } else if (strcmp(a, "--trusted-ca") == 0) {
            trusted_ca = v;
        } else if (strcmp(a, "--proxy") == 0) {
            proxy = v;
        } else if (strcmp(a, "--registration-id") == 0) {
            registration_id = v;
        } else if (strcmp(a, "--payload") == 0) {
            payload = v;
        } else if (strcmp(a, "--timeout") == 0) {
            timeout = atoi(v);
        } else if (strcmp(a, "--hub") == 0) {
            hub_options.transport = v;
        } else if (strcmp(a, "--hub-config") == 0) {
            hub_config = v;
        } else if (strcmp(a, "--sas-lifetime") == 0) {
            hub_options.sas_lifetime = (size_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--renewals") == 0) {
            hub_options.renewals = atoi(v);
        } else {
            return usage("unknown option");
        }
    }
    if (scope == NULL || attestation == NULL || timeout <= 0) {
        return usage("--id-scope and --attestation are required, --timeout must be positive");
    }
    if (strcmp(attestation, "x509") == 0) {
        type = SECURE_DEVICE_TYPE_X509;
        hub_security = IOTHUB_SECURITY_TYPE_X509;
    } else if (strcmp(attestation, "symmetric-key") == 0) {
        type = SECURE_DEVICE_TYPE_SYMMETRIC_KEY;
        hub_security = IOTHUB_SECURITY_TYPE_SYMMETRIC_KEY;
    } else if (strcmp(attestation, "tpm") == 0) {
        type = SECURE_DEVICE_TYPE_TPM;
        hub_security = IOTHUB_SECURITY_TYPE_SAS; /* the SDK's name for TPM-signed SAS tokens */
    } else {
        return usage("--attestation must be x509, symmetric-key or tpm");
    }
    if (strcmp(transport, "http") == 0) {
        protocol = Prov_Device_HTTP_Protocol;
    } else if (strcmp(transport, "mqtt") == 0) {
        protocol = Prov_Device_MQTT_Protocol;
    } else if (strcmp(transport, "mqtt-ws") == 0) {
        protocol = Prov_Device_MQTT_WS_Protocol;
    } else if (strcmp(transport, "amqp") == 0) {
        protocol = Prov_Device_AMQP_Protocol;
    } else if (strcmp(transport, "amqp-ws") == 0) {
        protocol = Prov_Device_AMQP_WS_Protocol;
    } else {
        return usage("--transport must be http, mqtt, mqtt-ws, amqp or amqp-ws");
    }
    if (trusted_ca != NULL && (trusted = read_text(trusted_ca)) == NULL) {
        fprintf(stderr, "prov_device: cannot read %s\n", trusted_ca);
        return 1;
    }

    /* A line at a time, also into a file or a pipe: a test reads the steps of a run it had to kill. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* The SDK's logger must be up before anything of the SDK runs. */
    if (logger_init() != 0 || platform_init() != 0) {
        fprintf(stderr, "prov_device: the SDK's logger or platform did not start\n");
        free(trusted);
        return 1;
    }
    if (prov_dev_security_init(type) != 0) {
        fprintf(stderr, "prov_device: prov_dev_security_init failed (see HSM_ABI_LOG=warn)\n");
        goto out_platform;
    }
    handle = Prov_Device_LL_Create(endpoint, scope, protocol);
    if (handle == NULL) {
        fprintf(stderr, "prov_device: Prov_Device_LL_Create failed\n");
        goto out_security;
    }
    if (trace) {
        (void)Prov_Device_LL_SetOption(handle, PROV_OPTION_LOG_TRACE, &trace);
    }
    if (trusted != NULL && Prov_Device_LL_SetOption(handle, OPTION_TRUSTED_CERT, trusted) != PROV_DEVICE_RESULT_OK) {
        fprintf(stderr, "prov_device: setting TrustedCerts failed\n");
        goto out_handle;
    }
    if (proxy != NULL) {
        HTTP_PROXY_OPTIONS options;
        const char* colon = strrchr(proxy, ':');
        if (colon == NULL || colon == proxy || (size_t)(colon - proxy) >= sizeof proxy_host) {
            fprintf(stderr, "prov_device: --proxy must be HOST:PORT\n");
            goto out_handle;
        }
        memcpy(proxy_host, proxy, (size_t)(colon - proxy));
        proxy_host[colon - proxy] = '\0';
        memset(&options, 0, sizeof options);
        options.host_address = proxy_host;
        options.port = atoi(colon + 1);
        if (Prov_Device_LL_SetOption(handle, OPTION_HTTP_PROXY, &options) != PROV_DEVICE_RESULT_OK) {
            fprintf(stderr, "prov_device: setting the HTTP proxy failed\n");
            goto out_handle;
        }
    }
    if (registration_id != NULL &&
        Prov_Device_LL_SetOption(handle, PROV_REGISTRATION_ID, registration_id) != PROV_DEVICE_RESULT_OK) {
        fprintf(stderr, "prov_device: setting the registration id failed\n");
        goto out_handle;
    }
    if (payload != NULL && Prov_Device_LL_Set_Provisioning_Payload(handle, payload) != PROV_DEVICE_RESULT_OK) {
        fprintf(stderr, "prov_device: setting the payload failed\n");
        goto out_handle;
    }

    memset(&outcome, 0, sizeof outcome);
    if (Prov_Device_LL_Register_Device(handle, on_registered, &outcome, on_status, NULL) != PROV_DEVICE_RESULT_OK) {
        fprintf(stderr, "prov_device: Prov_Device_LL_Register_Device failed\n");
        goto out_handle;
    }
    deadline = time(NULL) + timeout;
    while (!outcome.done && time(NULL) < deadline) {
        Prov_Device_LL_DoWork(handle);
        ThreadAPI_Sleep(10); /* the SDK's own samples pause 10 ms between turns */
    }
    if (!outcome.done) {
        fprintf(stderr, "prov_device: no answer within %d s\n", timeout);
        status = 2;
    } else if (outcome.result == PROV_DEVICE_RESULT_OK) {
        printf("assigned hub=%s device=%s\n", outcome.hub, outcome.device_id);
        fflush(stdout);
        status = 0;
    } else {
        fprintf(stderr, "prov_device: registration failed: %s\n", result_name(outcome.result));
    }
    if (status == 0 && hub_options.transport != NULL) {
        /* The provisioning client is done with the connection; the HSM stays initialised. */
        Prov_Device_LL_Destroy(handle);
        handle = NULL;
        hub_options.trusted = trusted;
        hub_options.timeout = timeout;
        hub_options.trace = trace;
        if (hub_config != NULL && hsm_abi_configure_file(hub_config) != 0) {
            fprintf(stderr, "prov_device: hsm_abi_configure_file(%s) failed\n", hub_config);
            status = 1;
        } else if (iothub_security_init(hub_security) != 0) {
            fprintf(stderr, "prov_device: iothub_security_init failed\n");
            status = 1;
        } else {
            status = hub_session(outcome.hub, outcome.device_id, &hub_options);
            iothub_security_deinit();
        }
    }
    if (hold) {
        printf("holding\n");
        fflush(stdout);
        while (getchar() != EOF) {
        }
    }

out_handle:
    if (handle != NULL) {
        Prov_Device_LL_Destroy(handle);
    }
out_security:
    prov_dev_security_deinit();
out_platform:
    platform_deinit();
    logger_deinit();
    free(trusted);
    return status;
}
