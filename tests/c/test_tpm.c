/* The SDK's TPM ("sastoken") call sequence, as provisioning_client's prov_auth_client.c and the
 * HTTP transport make it, against a TPM (swtpm, through HSM_ABI_CONFIG) and the DPS emulator:
 *   tpm_init x2, tpm_interface, create, get_ek (twice), get_srk,
 *   PUT register (EK + SRK)              -> 401 with authenticationKey,
 *   activate_identity_key(blob), SAS token signed with sign_with_identity,
 *   PUT register with Authorization      -> 202 operationId,
 *   GET operations/{id}                  -> 200 assigned, registrationState.tpm.authenticationKey,
 *   activate_identity_key again, destroy, deinit x2.
 * Plus, in the same run: malformed activation blobs (truncated, trailing bytes, corrupted) are
 * refused and the previous key keeps signing with the same HMAC; NULL arguments give error codes.
 * Every buffer the library returns is released with free() (run under valgrind).
 *
 * usage: test_tpm REGISTRATION_ID ID_SCOPE HOST:PORT SERVER_CA_PEM fresh|provisioned
 * The registration id is the one `hsmctl enrollment` derived from the same TPM's EK; the
 * emulator's assigned deviceId must equal it. `fresh`: the TPM has no identity key yet, so
 * sign_with_identity fails before the first activation. `provisioned`: a previous run left its
 * (hub) key persisted, which signs at once and is replaced by this run's activation. */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdint.h>
#include <time.h>

#include "common.h"

#define API_VERSION "2021-06-01"
#define HMAC_LEN 32

/* ---- small text helpers ---- */

/* A growable byte buffer, NUL-terminated. */
typedef struct {
    char* data;
    size_t len;
} buf_t;

static int buf_append(buf_t* b, const void* p, size_t n)
{
    char* grown = realloc(b->data, b->len + n + 1);
    if (grown == NULL) {
        return 0;
    }
    b->data = grown;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 1;
}

/* printf into a fresh malloc'd string; NULL on error. */
static char* fmt(const char* format, ...)
{
    va_list ap;
    int n;
    char* s;
    va_start(ap, format);
    n = vsnprintf(NULL, 0, format, ap);
    va_end(ap);
    if (n < 0) {
        return NULL;
    }
    s = malloc((size_t)n + 1);
    if (s == NULL) {
        return NULL;
    }
    va_start(ap, format);
    (void)vsnprintf(s, (size_t)n + 1, format, ap);
    va_end(ap);
    return s;
}

static const char B64_ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding, malloc'd. */
static char* b64_encode(const unsigned char* p, size_t n)
{
    char* out = malloc((n + 2) / 3 * 4 + 1);
    size_t i, o = 0;
    if (out == NULL) {
        return NULL;
    }
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = B64_ALPHABET[v >> 18 & 63];
        out[o++] = B64_ALPHABET[v >> 12 & 63];
        out[o++] = B64_ALPHABET[v >> 6 & 63];
        out[o++] = B64_ALPHABET[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = B64_ALPHABET[v >> 18 & 63];
        out[o++] = B64_ALPHABET[v >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = B64_ALPHABET[v >> 18 & 63];
        out[o++] = B64_ALPHABET[v >> 12 & 63];
        out[o++] = B64_ALPHABET[v >> 6 & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

/* Strict standard base64 (padding required), malloc'd; NULL on bad input. */
static unsigned char* b64_decode(const char* s, size_t* out_len)
{
    size_t n = strlen(s), i, o = 0;
    unsigned char* out;
    if (n == 0 || n % 4 != 0) {
        return NULL;
    }
    out = malloc(n / 4 * 3);
    if (out == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0, j;
        for (j = 0; j < 4; j++) {
            const char* at;
            char c = s[i + (size_t)j];
            if (c == '=' && i + 4 == n && j >= 2) {
                pad++;
                v <<= 6;
                continue;
            }
            at = c == '\0' || pad ? NULL : strchr(B64_ALPHABET, c);
            if (at == NULL) {
                free(out);
                return NULL;
            }
            v = v << 6 | (uint32_t)(at - B64_ALPHABET);
        }
        out[o++] = (unsigned char)(v >> 16);
        if (pad < 2) {
            out[o++] = (unsigned char)(v >> 8);
        }
        if (pad < 1) {
            out[o++] = (unsigned char)v;
        }
    }
    *out_len = o;
    return out;
}

/* URL encoding as the SDK does it: unreserved characters kept, the rest %xx in lowercase hex. */
static char* url_encode(const char* s)
{
    static const char hex[] = "0123456789abcdef";
    char* out = malloc(strlen(s) * 3 + 1);
    size_t o = 0;
    if (out == NULL) {
        return NULL;
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
            c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

/* The string value of the first `"key": "..."` at or after `from` in a JSON text, malloc'd (the
 * values read here, base64 and ids, have no escapes); NULL when absent. */
static char* json_string(const char* from, const char* key)
{
    char* quoted = fmt("\"%s\"", key);
    const char *p, *end;
    char* out = NULL;
    if (quoted == NULL || from == NULL) {
        free(quoted);
        return NULL;
    }
    p = strstr(from, quoted);
    if (p != NULL) {
        p += strlen(quoted);
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
            p++;
        }
        if (*p == ':') {
            p++;
            while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
                p++;
            }
            if (*p == '"' && (end = strchr(p + 1, '"')) != NULL && memchr(p + 1, '\\', (size_t)(end - p - 1)) == NULL) {
                out = malloc((size_t)(end - p));
                if (out != NULL) {
                    memcpy(out, p + 1, (size_t)(end - p - 1));
                    out[end - p - 1] = '\0';
                }
            }
        }
    }
    free(quoted);
    return out;
}

/* ---- HTTP (libcurl): one request, status and body ---- */

typedef struct {
    const char* ca_file;
    const char* endpoint; /* host:port */
    const char* scope;
    const char* reg_id;
} dps_t;

static size_t on_body(char* p, size_t size, size_t n, void* user)
{
    return buf_append(user, p, size * n) ? size * n : 0;
}

/* `method` https://endpoint/{scope}/registrations/{regid}/{path}?api-version=...; returns the
 * HTTP status (0 on a transport error) and the body in `body` (caller frees body->data). */
static long dps_request(const dps_t* dps, const char* method, const char* path, const char* json,
                        const char* authorization, buf_t* body)
{
    CURL* curl = curl_easy_init();
    struct curl_slist* headers = NULL;
    char *url, *auth_header = NULL;
    long status = 0;
    CURLcode rc;

    body->data = NULL;
    body->len = 0;
    url = fmt("https://%s/%s/registrations/%s/%s?api-version=" API_VERSION, dps->endpoint, dps->scope, dps->reg_id,
              path);
    if (curl == NULL || url == NULL) {
        fprintf(stderr, "curl: out of memory\n");
        curl_easy_cleanup(curl);
        free(url);
        return 0;
    }
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Content-Type: application/json; charset=utf-8");
    if (authorization != NULL) {
        auth_header = fmt("Authorization: %s", authorization);
        headers = curl_slist_append(headers, auth_header);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CAINFO, dps->ca_file);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
    if (json != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    }
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    } else {
        fprintf(stderr, "%s %s: %s\n", method, url, curl_easy_strerror(rc));
    }
    fprintf(stderr, "%s %s -> %ld %s\n", method, path, status, body->data != NULL ? body->data : "");
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    free(auth_header);
    free(url);
    return status;
}

/* ---- the SDK's TPM calls ---- */

/* get_ek / get_srk: malloc'd bytes or NULL. */
static unsigned char* take_key(const HSM_CLIENT_TPM_INTERFACE* tpm, HSM_CLIENT_HANDLE h, int srk, size_t* len)
{
    unsigned char* key = NULL;
    int rc;
    *len = 0;
    rc = srk ? tpm->hsm_client_get_srk(h, &key, len) : tpm->hsm_client_get_ek(h, &key, len);
    CHECK(rc == 0);
    CHECK(key != NULL && *len > 0);
    if (rc != 0) {
        free(key);
        return NULL;
    }
    return key;
}

/* sign_with_identity over a string: the 32-byte HMAC into `mac`; 1 on success. */
static int sign(const HSM_CLIENT_TPM_INTERFACE* tpm, HSM_CLIENT_HANDLE h, const char* text, unsigned char mac[HMAC_LEN])
{
    unsigned char* out = NULL;
    size_t len = 0;
    int rc = tpm->hsm_client_sign_with_identity(h, (const unsigned char*)text, strlen(text), &out, &len);
    int ok = rc == 0 && out != NULL && len == HMAC_LEN;
    if (!ok) {
        fprintf(stderr, "sign_with_identity: rc %d, length %zu (%s)\n", rc, len, last_error());
    } else {
        memcpy(mac, out, HMAC_LEN);
    }
    free(out);
    return ok;
}

/* The DPS SAS token the SDK builds for a TPM registration, signed inside the TPM; malloc'd. */
static char* sas_token(const HSM_CLIENT_TPM_INTERFACE* tpm, HSM_CLIENT_HANDLE h, const dps_t* dps, long long expiry,
                       unsigned char mac_out[HMAC_LEN])
{
    char* resource = fmt("%s/registrations/%s", dps->scope, dps->reg_id);
    char* sr = resource != NULL ? url_encode(resource) : NULL;
    char* to_sign = sr != NULL ? fmt("%s\n%lld", sr, expiry) : NULL;
    char *sig_b64 = NULL, *sig = NULL, *token = NULL;
    unsigned char mac[HMAC_LEN];
    if (to_sign != NULL && sign(tpm, h, to_sign, mac)) {
        sig_b64 = b64_encode(mac, HMAC_LEN);
        sig = sig_b64 != NULL ? url_encode(sig_b64) : NULL;
        if (sig != NULL) {
            token = fmt("SharedAccessSignature sr=%s&sig=%s&se=%lld&skn=registration", sr, sig, expiry);
        }
        if (mac_out != NULL) {
            memcpy(mac_out, mac, HMAC_LEN);
        }
    }
    free(resource);
    free(sr);
    free(to_sign);
    free(sig_b64);
    free(sig);
    return token;
}

/* ---- negative cases ---- */

static void null_arguments(const HSM_CLIENT_TPM_INTERFACE* tpm, HSM_CLIENT_HANDLE h)
{
    static const unsigned char data[] = "data";
    unsigned char* out = NULL;
    size_t len = 7;

    CHECK(tpm->hsm_client_get_ek(NULL, &out, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(last_error_has("handle"));
    CHECK(tpm->hsm_client_get_ek(h, NULL, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_get_ek(h, &out, NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_get_srk(NULL, &out, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_get_srk(h, NULL, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_get_srk(h, &out, NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_activate_identity_key(NULL, data, sizeof data) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_activate_identity_key(h, NULL, 10) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_activate_identity_key(h, data, 0) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(last_error_has("empty"));
    CHECK(tpm->hsm_client_sign_with_identity(NULL, data, 4, &out, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_sign_with_identity(h, NULL, 4, &out, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_sign_with_identity(h, data, 4, NULL, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_sign_with_identity(h, data, 4, &out, NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
    /* Outputs are untouched on failure. */
    CHECK(out == NULL && len == 7);
    /* destroy(NULL) is a no-op. */
    tpm->hsm_client_tpm_destroy(NULL);
}

/* Malformed activation blobs are refused, and the key already in place keeps signing the same way. */
static void bad_blobs(const HSM_CLIENT_TPM_INTERFACE* tpm, HSM_CLIENT_HANDLE h, const unsigned char* blob,
                      size_t blob_len, const char* probe, const unsigned char before[HMAC_LEN])
{
    unsigned char* copy = malloc(blob_len + 1);
    unsigned char mac[HMAC_LEN];
    int rc;
    if (copy == NULL) {
        CHECK(!"out of memory");
        return;
    }
    memcpy(copy, blob, blob_len);

    rc = tpm->hsm_client_activate_identity_key(h, copy, blob_len - 1);
    fprintf(stderr, "truncated blob: rc %d (%s)\n", rc, last_error());
    CHECK(rc == HSM_ABI_ERR_PARSE);
    rc = tpm->hsm_client_activate_identity_key(h, copy, blob_len / 2);
    CHECK(rc == HSM_ABI_ERR_PARSE);
    rc = tpm->hsm_client_activate_identity_key(h, copy, 1);
    CHECK(rc == HSM_ABI_ERR_PARSE);

    copy[blob_len] = 0;
    rc = tpm->hsm_client_activate_identity_key(h, copy, blob_len + 1);
    fprintf(stderr, "blob with a trailing byte: rc %d (%s)\n", rc, last_error());
    CHECK(rc == HSM_ABI_ERR_PARSE);

    /* Well formed but not activatable: one byte of the credential blob flipped (its integrity
     * HMAC then fails inside the TPM). */
    copy[4] ^= 0x5a;
    rc = tpm->hsm_client_activate_identity_key(h, copy, blob_len);
    fprintf(stderr, "corrupted credential: rc %d (%s)\n", rc, last_error());
    CHECK(rc != 0);

    CHECK(sign(tpm, h, probe, mac));
    CHECK(memcmp(mac, before, HMAC_LEN) == 0);
    free(copy);
}

/* ---- the run ---- */

int main(int argc, char** argv)
{
    const HSM_CLIENT_TPM_INTERFACE* tpm;
    HSM_CLIENT_HANDLE h;
    dps_t dps;
    unsigned char *ek = NULL, *ek2 = NULL, *srk = NULL, *blob = NULL, *hub_blob = NULL;
    size_t ek_len = 0, ek2_len = 0, srk_len = 0, blob_len = 0, hub_blob_len = 0;
    char *ek_b64 = NULL, *srk_b64 = NULL, *request = NULL, *auth_key = NULL, *token = NULL, *op_id = NULL;
    char *op_path = NULL, *op_enc = NULL, *state_tpm_key = NULL, *device_id = NULL, *status_text = NULL;
    char* hub_token = NULL;
    const char* state;
    unsigned char mac[HMAC_LEN], dps_mac[HMAC_LEN], hub_mac[HMAC_LEN];
    buf_t body = {NULL, 0};
    long status;
    long long expiry = (long long)time(NULL) + 3600;
    int provisioned;
    unsigned char old_mac[HMAC_LEN];
    static const char probe[] = "probe: the same input before and after a refused activation";

    if (argc != 6 || (strcmp(argv[5], "fresh") != 0 && strcmp(argv[5], "provisioned") != 0)) {
        fprintf(stderr, "usage: %s REGISTRATION_ID ID_SCOPE HOST:PORT SERVER_CA_PEM fresh|provisioned\n", argv[0]);
        return 2;
    }
    provisioned = strcmp(argv[5], "provisioned") == 0;
    dps.reg_id = argv[1];
    dps.scope = argv[2];
    dps.endpoint = argv[3];
    dps.ca_file = argv[4];
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_global_init failed\n");
        return 1;
    }

    /* The SDK initializes twice (IoT Hub security layer and provisioning). */
    CHECK(hsm_client_tpm_init() == 0);
    CHECK(hsm_client_tpm_init() == 0);
    tpm = hsm_client_tpm_interface();
    CHECK(tpm != NULL);
    if (tpm == NULL) {
        return finish("test_tpm");
    }
    CHECK(tpm->hsm_client_tpm_create != NULL && tpm->hsm_client_tpm_destroy != NULL &&
          tpm->hsm_client_activate_identity_key != NULL && tpm->hsm_client_get_ek != NULL &&
          tpm->hsm_client_get_srk != NULL && tpm->hsm_client_sign_with_identity != NULL);
    h = tpm->hsm_client_tpm_create();
    CHECK(h != NULL);
    if (h == NULL) {
        return finish("test_tpm");
    }

    /* get_ek twice (the SDK reads it for the registration id and for the request), get_srk. */
    ek = take_key(tpm, h, 0, &ek_len);
    ek2 = take_key(tpm, h, 0, &ek2_len);
    srk = take_key(tpm, h, 1, &srk_len);
    CHECK(ek != NULL && ek2 != NULL && ek_len == ek2_len && memcmp(ek, ek2, ek_len) == 0);
    /* Marshalled TPM2B_PUBLIC: a big-endian size prefix covering the rest. */
    CHECK(ek != NULL && ek_len > 2 && (size_t)(ek[0] << 8 | ek[1]) == ek_len - 2);
    CHECK(srk != NULL && srk_len > 2 && (size_t)(srk[0] << 8 | srk[1]) == srk_len - 2);
    CHECK(srk == NULL || ek == NULL || srk_len != ek_len || memcmp(ek, srk, ek_len) != 0);
    null_arguments(tpm, h);
    if (ek == NULL || srk == NULL) {
        goto done;
    }

    if (provisioned) {
        /* The key a previous run activated is persisted and signs at once. */
        CHECK(sign(tpm, h, probe, old_mac));
    } else {
        /* A TPM without an identity key cannot sign yet. */
        unsigned char* out = NULL;
        size_t len = 0;
        int rc = tpm->hsm_client_sign_with_identity(h, (const unsigned char*)probe, sizeof probe - 1, &out, &len);
        fprintf(stderr, "sign before activation: rc %d (%s)\n", rc, last_error());
        CHECK(rc != 0 && out == NULL);
        free(out);
    }

    /* 1. Register with the EK and SRK and no credentials: the service's 401 challenge. */
    ek_b64 = b64_encode(ek, ek_len);
    srk_b64 = b64_encode(srk, srk_len);
    request = fmt("{\"registrationId\":\"%s\",\"tpm\":{\"endorsementKey\":\"%s\",\"storageRootKey\":\"%s\"}}",
                  dps.reg_id, ek_b64, srk_b64);
    CHECK(request != NULL);
    if (request == NULL) {
        goto done;
    }
    status = dps_request(&dps, "PUT", "register", request, NULL, &body);
    CHECK(status == 401);
    auth_key = json_string(body.data, "authenticationKey");
    CHECK(auth_key != NULL);
    free(body.data);
    blob = auth_key != NULL ? b64_decode(auth_key, &blob_len) : NULL;
    CHECK(blob != NULL && blob_len > 16);
    if (blob == NULL || blob_len <= 16) {
        goto done;
    }

    /* 2. Activate the DPS key and sign the SAS token with it. */
    CHECK(tpm->hsm_client_activate_identity_key(h, blob, blob_len) == 0);
    CHECK(sign(tpm, h, probe, mac));
    CHECK(!provisioned || memcmp(mac, old_mac, HMAC_LEN) != 0);
    bad_blobs(tpm, h, blob, blob_len, probe, mac);
    token = sas_token(tpm, h, &dps, expiry, dps_mac);
    CHECK(token != NULL);
    if (token == NULL) {
        goto done;
    }

    /* 3. Register again with the token: accepted, an operation to poll. */
    status = dps_request(&dps, "PUT", "register", request, token, &body);
    CHECK(status == 202);
    op_id = json_string(body.data, "operationId");
    status_text = json_string(body.data, "status");
    free(body.data);
    CHECK(op_id != NULL && status_text != NULL && strcmp(status_text, "assigning") == 0);
    if (op_id == NULL) {
        goto done;
    }

    /* 4. Poll the operation (the SDK URL-encodes the id in the path): assigned, with the hub key. */
    op_enc = url_encode(op_id);
    op_path = op_enc != NULL ? fmt("operations/%s", op_enc) : NULL;
    CHECK(op_path != NULL);
    if (op_path == NULL) {
        goto done;
    }
    status = dps_request(&dps, "GET", op_path, NULL, token, &body);
    CHECK(status == 200);
    state = body.data != NULL ? strstr(body.data, "\"registrationState\"") : NULL;
    CHECK(state != NULL);
    free(status_text);
    status_text = json_string(body.data, "status");
    CHECK(status_text != NULL && strcmp(status_text, "assigned") == 0);
    device_id = json_string(state, "deviceId");
    CHECK(device_id != NULL && strcmp(device_id, dps.reg_id) == 0);
    state_tpm_key = state != NULL ? json_string(strstr(state, "\"tpm\""), "authenticationKey") : NULL;
    CHECK(state_tpm_key != NULL);
    free(body.data);
    hub_blob = state_tpm_key != NULL ? b64_decode(state_tpm_key, &hub_blob_len) : NULL;
    CHECK(hub_blob != NULL);
    if (hub_blob == NULL) {
        goto done;
    }

    /* 5. Activate the key returned at assignment: it replaces the DPS key. */
    CHECK(tpm->hsm_client_activate_identity_key(h, hub_blob, hub_blob_len) == 0);
    hub_token = sas_token(tpm, h, &dps, expiry, hub_mac);
    CHECK(hub_token != NULL);
    CHECK(memcmp(hub_mac, dps_mac, HMAC_LEN) != 0);
    CHECK(sign(tpm, h, probe, mac) && memcmp(mac, hub_mac, HMAC_LEN) != 0);
    /* A token signed with the new key is no longer the DPS key's: the service refuses it. */
    if (hub_token != NULL) {
        status = dps_request(&dps, "GET", op_path, NULL, hub_token, &body);
        CHECK(status == 401);
        free(body.data);
    }
    /* The DPS token (signed before the switch) still verifies: the 401 above is the key, not the
     * request. */
    status = dps_request(&dps, "GET", op_path, NULL, token, &body);
    CHECK(status == 200);
    free(body.data);

done:
    tpm->hsm_client_tpm_destroy(h);
    hsm_client_tpm_deinit();
    hsm_client_tpm_deinit();
    free(ek);
    free(ek2);
    free(srk);
    free(ek_b64);
    free(srk_b64);
    free(request);
    free(auth_key);
    free(blob);
    free(token);
    free(op_id);
    free(op_enc);
    free(op_path);
    free(status_text);
    free(device_id);
    free(state_tpm_key);
    free(hub_blob);
    free(hub_token);
    curl_global_cleanup();
    return finish("test_tpm");
}
