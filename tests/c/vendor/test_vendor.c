/* Vendor backends from C, the way the Azure IoT C SDK drives the library.
 * usage:
 *   test_vendor sdk CN CHAIN_PEM MSG_FILE SIG_OUT SPKI_OUT   x509 sequence + signer table by token
 *   test_vendor groups                                       no TPM/symmetric group: clear errors
 *   test_vendor registered DIR CN CHAIN_PEM SYMM_TOML        tables registered from this program
 *                                                            (the example; the built-in table over
 *                                                            SYMM_TOML for the symmetric group)
 *   test_vendor refused LIB NEEDLE                           hsm_abi_vendor_check_library refuses LIB
 *   test_vendor create-fails NEEDLE                          x509 create fails, last error has NEEDLE
 *   test_vendor sign-fails NEEDLE                            signing fails with HSM_ABI_ERR_VENDOR
 * The configuration comes from HSM_ABI_CONFIG except for `registered`. The script verifies the
 * signature written to SIG_OUT with openssl and compares SPKI_OUT with the key's public key. */
#include "common.h"

#ifdef WITH_VENDOR_ECDSA
/* The example backend compiled into this program, registered instead of loaded. */
const HSM_ABI_VENDOR_TABLE* vendor_ecdsa_table(void);
#endif

/* The SDK's x509 sequence; returns the key token (malloc'd) or NULL. */
static char* x509_sequence(const char* cn, const char* chain)
{
    const HSM_CLIENT_X509_INTERFACE* x509;
    HSM_CLIENT_HANDLE h;
    char* token = NULL;

    CHECK(hsm_client_x509_init() == 0);
    CHECK(hsm_client_x509_init() == 0);
    x509 = hsm_client_x509_interface();
    CHECK(x509 != NULL);
    h = x509->hsm_client_x509_create();
    CHECK(h != NULL);
    if (h != NULL) {
        CHECK(take_equals(x509->hsm_client_get_common_name(h), cn));
        CHECK(take_equals(x509->hsm_client_get_cert(h), chain));
        token = x509->hsm_client_get_key(h);
        CHECK(token != NULL && strncmp(token, "vendor:", 7) == 0);
        CHECK(take_equals(x509->hsm_client_get_common_name(h), cn));
        x509->hsm_client_x509_destroy(h);
    }
    hsm_client_x509_deinit();
    hsm_client_x509_deinit();
    return token;
}

/* Open the token with the signer table, sign, write signature and public key. */
static void sign_with_token(const char* token, const char* msg, size_t msg_len, const char* sig_out,
                            const char* spki_out)
{
    const HSM_ABI_SIGNER_TABLE* table = hsm_abi_signer_table();
    HSM_ABI_SIGNER* signer = NULL;
    HSM_ABI_KEY_INFO info;
    unsigned char *sig = NULL, *spki = NULL;
    size_t sig_len = 0, spki_len = 0;

    CHECK(table->open(token, &signer) == HSM_ABI_OK);
    if (signer == NULL) {
        return;
    }
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK(table->key_info(signer, &info) == HSM_ABI_OK);
    CHECK(info.algorithm == HSM_ABI_KEY_ALGORITHM_EC && info.curve_or_bits == 256);
    CHECK(info.scheme_count == 1 && info.schemes[0] == 0x0403);
    CHECK(table->sign(signer, 0x0403, (const unsigned char*)msg, msg_len, NULL, &sig_len) ==
          HSM_ABI_ERR_BUFFER_TOO_SMALL);
    CHECK(sig_len == info.max_signature_len);
    /* A scheme the key does not list. */
    CHECK(table->sign(signer, 0x0804, (const unsigned char*)msg, msg_len, NULL, &sig_len) ==
          HSM_ABI_ERR_UNSUPPORTED);
    sig_len = info.max_signature_len;
    sig = malloc(sig_len);
    if (sig != NULL) {
        CHECK(table->sign(signer, 0x0403, (const unsigned char*)msg, msg_len, sig, &sig_len) == HSM_ABI_OK);
        CHECK(sig_len > 0 && sig_len <= info.max_signature_len);
        if (sig_out != NULL) {
            CHECK(write_file(sig_out, sig, sig_len));
        }
    }
    CHECK(table->public_key(signer, &spki, &spki_len) == HSM_ABI_OK);
    if (spki != NULL && spki_out != NULL) {
        CHECK(write_file(spki_out, spki, spki_len));
    }
    free(spki);
    free(sig);
    table->close(signer);
}

static int sdk(char** argv)
{
    size_t msg_len = 0;
    char* chain = read_file(argv[3], NULL);
    char* msg = read_file(argv[4], &msg_len);
    char* token;
    if (chain == NULL || msg == NULL) {
        return 2;
    }
    token = x509_sequence(argv[2], chain);
    if (token != NULL) {
        sign_with_token(token, msg, msg_len, argv[5], argv[6]);
    }
    free(token);
    free(chain);
    free(msg);
    return finish("test_vendor sdk");
}

static int groups(void)
{
    const HSM_CLIENT_KEY_INTERFACE* key = hsm_client_key_interface();
    const HSM_CLIENT_TPM_INTERFACE* tpm = hsm_client_tpm_interface();
    HSM_CLIENT_HANDLE h;
    CHECK(hsm_client_tpm_init() == 0);
    h = key->hsm_client_key_create();
    CHECK(h == NULL);
    CHECK(last_error_has("no symmetric-key operations"));
    key->hsm_client_key_destroy(h);
    h = tpm->hsm_client_tpm_create();
    CHECK(h == NULL);
    CHECK(last_error_has("no TPM operations"));
    tpm->hsm_client_tpm_destroy(h);
    hsm_client_tpm_deinit();
    return finish("test_vendor groups");
}

#ifdef WITH_VENDOR_ECDSA
static int registered(char** argv)
{
    HSM_ABI_VENDOR_TABLE copy;
    char config[4096];
    char* chain = read_file(argv[4], NULL);
    char* token;
    if (chain == NULL) {
        return 2;
    }
    CHECK(hsm_abi_vendor_register(NULL) == HSM_ABI_ERR_CONFIG);
    CHECK(last_error_has("NULL"));
    copy = *vendor_ecdsa_table();
    copy.version = 99;
    CHECK(hsm_abi_vendor_register(&copy) == HSM_ABI_ERR_CONFIG);
    CHECK(last_error_has("version 99 is not supported"));
    copy = *vendor_ecdsa_table();
    copy.struct_size = 8;
    CHECK(hsm_abi_vendor_register(&copy) == HSM_ABI_ERR_CONFIG);
    CHECK(last_error_has("struct_size 8"));
    copy = *vendor_ecdsa_table();
    copy.key_info = NULL;
    CHECK(hsm_abi_vendor_register(&copy) == HSM_ABI_ERR_CONFIG);
    CHECK(last_error_has("mandatory field `key_info` is NULL"));
    copy = *vendor_ecdsa_table();
    copy.name = "no spaces allowed";
    CHECK(hsm_abi_vendor_register(&copy) == HSM_ABI_ERR_CONFIG);

    /* Not registered yet under that name: a clear error at create. */
    snprintf(config, sizeof config, "[x509]\nbackend = \"vendor\"\nregistered = \"vendor-ecdsa\"\nidentity = \"%s\"\n",
             argv[2]);
    CHECK(hsm_abi_configure_toml(config) == HSM_ABI_OK);
    CHECK(hsm_client_x509_interface()->hsm_client_x509_create() == NULL);
    CHECK(last_error_has("no vendor table registered"));

    CHECK(hsm_abi_vendor_register(vendor_ecdsa_table()) == HSM_ABI_OK);
    /* The library's own backends as a vendor table: valid, registrable, every mandatory field. */
    CHECK(hsm_abi_vendor_builtin_table() != NULL);
    CHECK(hsm_abi_vendor_builtin_table()->version == HSM_ABI_VENDOR_TABLE_VERSION);
    CHECK(hsm_abi_vendor_builtin_table()->struct_size == sizeof(HSM_ABI_VENDOR_TABLE));
    CHECK(hsm_abi_vendor_register(hsm_abi_vendor_builtin_table()) == HSM_ABI_OK);
    token = x509_sequence(argv[3], chain);
    if (token != NULL) {
        CHECK(strstr(token, "registered=vendor-ecdsa") != NULL);
        sign_with_token(token, "registered", 10, NULL, NULL);
    }
    free(token);
    free(chain);

    /* The symmetric group through the SDK's key interface: the built-in table over a file
     * configuration whose group key derives the test vector's device key. */
    snprintf(config, sizeof config,
             "[symmetric_key]\nbackend = \"vendor\"\nregistered = \"hsm-abi-builtin\"\nidentity = \"%s\"\n", argv[5]);
    CHECK(hsm_abi_configure_toml(config) == HSM_ABI_OK);
    {
        const HSM_CLIENT_KEY_INTERFACE* key = hsm_client_key_interface();
        HSM_CLIENT_HANDLE h = key->hsm_client_key_create();
        CHECK(h != NULL);
        if (h != NULL) {
            CHECK(key->hsm_client_set_symm_key_info(h, NULL, NULL) == 0);
            CHECK(take_equals(key->hsm_client_get_registration_name(h), "device-0001"));
            CHECK(take_equals(key->hsm_client_get_symm_key(h), "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ="));
            key->hsm_client_key_destroy(h);
        }
    }
    hsm_abi_configure_clear();
    return finish("test_vendor registered");
}
#endif

static int refused(char** argv)
{
    CHECK(hsm_abi_vendor_check_library(NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(hsm_abi_vendor_check_library(argv[2]) != HSM_ABI_OK);
    CHECK(last_error_has(argv[3]));
    return finish("test_vendor refused");
}

static int create_fails(char** argv)
{
    const HSM_CLIENT_X509_INTERFACE* x509 = hsm_client_x509_interface();
    HSM_CLIENT_HANDLE h;
    CHECK(hsm_client_x509_init() == 0);
    h = x509->hsm_client_x509_create();
    CHECK(h == NULL);
    CHECK(last_error_has(argv[2]));
    x509->hsm_client_x509_destroy(h);
    hsm_client_x509_deinit();
    return finish("test_vendor create-fails");
}

static int sign_fails(char** argv)
{
    const HSM_CLIENT_X509_INTERFACE* x509 = hsm_client_x509_interface();
    const HSM_ABI_SIGNER_TABLE* table = hsm_abi_signer_table();
    HSM_ABI_SIGNER* signer = NULL;
    HSM_CLIENT_HANDLE h;
    unsigned char sig[128];
    size_t sig_len = sizeof sig;
    char* token = NULL;
    CHECK(hsm_client_x509_init() == 0);
    h = x509->hsm_client_x509_create();
    CHECK(h != NULL);
    if (h != NULL) {
        token = x509->hsm_client_get_key(h);
        x509->hsm_client_x509_destroy(h);
    }
    CHECK(token != NULL);
    if (token != NULL && table->open(token, &signer) == HSM_ABI_OK) {
        CHECK(table->sign(signer, 0x0403, (const unsigned char*)"m", 1, sig, &sig_len) == HSM_ABI_ERR_VENDOR);
        CHECK(last_error_has(argv[2]));
        CHECK(sig_len == sizeof sig); /* not written on failure */
        table->close(signer);
    } else {
        CHECK(!"signer open failed");
    }
    free(token);
    hsm_client_x509_deinit();
    return finish("test_vendor sign-fails");
}

int main(int argc, char** argv)
{
    const char* mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "sdk") == 0 && argc == 7) {
        return sdk(argv);
    }
    if (strcmp(mode, "groups") == 0 && argc == 2) {
        return groups();
    }
#ifdef WITH_VENDOR_ECDSA
    if (strcmp(mode, "registered") == 0 && argc == 6) {
        return registered(argv);
    }
#endif
    if (strcmp(mode, "refused") == 0 && argc == 4) {
        return refused(argv);
    }
    if (strcmp(mode, "create-fails") == 0 && argc == 3) {
        return create_fails(argv);
    }
    if (strcmp(mode, "sign-fails") == 0 && argc == 3) {
        return sign_fails(argv);
    }
    fprintf(stderr, "usage: see the comment at the top of %s\n", __FILE__);
    return 2;
}
