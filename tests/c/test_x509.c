/* The SDK's x509 call sequence against a configured identity, plus a signer-table round trip
 * with the same key.
 * usage: test_x509 CN CHAIN_PEM KEY_PEM SCHEME MSG_FILE SIG_OUT SPKI_OUT
 * KEY_PEM is the file backend's key (get_key returns it; the signer opens `file:KEY_PEM`), or
 * `-` for a hardware backend: get_key must then return an alias-key token holding no key
 * material, and the signer opens that token.
 * The configuration comes from HSM_ABI_CONFIG (set by the script). The script verifies the
 * signature written to SIG_OUT with openssl and compares SPKI_OUT with the key's public key. */
#include "common.h"

int main(int argc, char** argv)
{
    const HSM_CLIENT_X509_INTERFACE* x509;
    HSM_CLIENT_HANDLE h;
    char *chain, *key = NULL, *msg, *token = NULL;
    int by_token = 0;
    size_t msg_len = 0, sig_len = 0, spki_len = 0, token_len;
    unsigned long scheme;
    const HSM_ABI_SIGNER_TABLE* table;
    HSM_ABI_SIGNER* signer = NULL;
    HSM_ABI_KEY_INFO info;
    unsigned char *sig = NULL, *spki = NULL;
    uint32_t i;
    int scheme_listed = 0;

    if (argc != 8) {
        fprintf(stderr, "usage: %s CN CHAIN_PEM KEY_PEM SCHEME MSG_FILE SIG_OUT SPKI_OUT\n", argv[0]);
        return 2;
    }
    chain = read_file(argv[2], NULL);
    by_token = strcmp(argv[3], "-") == 0;
    if (!by_token) {
        key = read_file(argv[3], NULL);
    }
    msg = read_file(argv[5], &msg_len);
    scheme = strtoul(argv[4], NULL, 0);
    if (chain == NULL || (key == NULL && !by_token) || msg == NULL) {
        return 2;
    }

    /* The SDK: init from the IoT Hub layer and from provisioning. */
    CHECK(hsm_client_x509_init() == 0);
    CHECK(hsm_client_x509_init() == 0);
    x509 = hsm_client_x509_interface();
    CHECK(x509 != NULL);
    h = x509->hsm_client_x509_create();
    CHECK(h != NULL);
    if (h != NULL) {
        CHECK(take_equals(x509->hsm_client_get_common_name(h), argv[1]));
        CHECK(take_equals(x509->hsm_client_get_cert(h), chain));
        if (by_token) {
            token = x509->hsm_client_get_key(h);
            CHECK(token != NULL && strstr(token, "PRIVATE KEY") == NULL && strchr(token, ':') != NULL);
            CHECK(token == NULL || strstr(token, "pin-value") == NULL);
            printf("key token: %s\n", token ? token : "(NULL)");
        } else {
            CHECK(take_equals(x509->hsm_client_get_key(h), key));
        }
        /* Repeated calls give the same answers. */
        CHECK(take_equals(x509->hsm_client_get_common_name(h), argv[1]));
        x509->hsm_client_x509_destroy(h);
    }
    hsm_client_x509_deinit();
    hsm_client_x509_deinit();

    /* Signer table with the same key, by token. */
    if (!by_token) {
        token_len = strlen("file:") + strlen(argv[3]) + 1;
        token = malloc(token_len);
        if (token == NULL) {
            return 2;
        }
        snprintf(token, token_len, "file:%s", argv[3]);
    }
    if (token == NULL) {
        return 1;
    }
    table = hsm_abi_signer_table();
    CHECK(table != NULL && table->version == HSM_ABI_SIGNER_TABLE_VERSION);
    CHECK(table->struct_size >= sizeof(HSM_ABI_SIGNER_TABLE));
    CHECK(table->open(token, &signer) == HSM_ABI_OK);
    if (signer != NULL) {
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        CHECK(table->key_info(signer, &info) == HSM_ABI_OK);
        CHECK(info.algorithm == HSM_ABI_KEY_ALGORITHM_EC || info.algorithm == HSM_ABI_KEY_ALGORITHM_RSA);
        CHECK(info.scheme_count >= 1 && info.scheme_count <= HSM_ABI_MAX_SCHEMES);
        for (i = 0; i < info.scheme_count; i++) {
            scheme_listed |= info.schemes[i] == scheme;
        }
        CHECK(scheme_listed);
        printf("key: algorithm %u, %u, %u schemes, max signature %u bytes\n", (unsigned)info.algorithm,
               (unsigned)info.curve_or_bits, (unsigned)info.scheme_count, (unsigned)info.max_signature_len);

        /* Size query, then sign. */
        CHECK(table->sign(signer, (uint32_t)scheme, (const unsigned char*)msg, msg_len, NULL, &sig_len) ==
              HSM_ABI_ERR_BUFFER_TOO_SMALL);
        CHECK(sig_len == info.max_signature_len);
        sig = malloc(sig_len);
        CHECK(sig != NULL);
        if (sig != NULL) {
            CHECK(table->sign(signer, (uint32_t)scheme, (const unsigned char*)msg, msg_len, sig, &sig_len) ==
                  HSM_ABI_OK);
            CHECK(sig_len > 0 && sig_len <= info.max_signature_len);
            CHECK(write_file(argv[6], sig, sig_len));
        }
        CHECK(table->public_key(signer, &spki, &spki_len) == HSM_ABI_OK);
        CHECK(spki != NULL && spki_len > 0);
        if (spki != NULL) {
            CHECK(write_file(argv[7], spki, spki_len));
        }
        free(spki);
        free(sig);
        table->close(signer);
    }
    free(token);
    free(chain);
    free(key);
    free(msg);
    return finish("test_x509");
}
