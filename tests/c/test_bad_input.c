/* Bad input of every kind: an error code or NULL, never a crash, and a last error that names
 * the problem.
 * usage: test_bad_input DIR   (DIR holds chain.pem, key.pem of its leaf, other-key.pem) */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <unistd.h>

#include "common.h"

static void configure(const char* toml)
{
    int rc = hsm_abi_configure_toml(toml);
    CHECK(rc == HSM_ABI_OK);
}

int main(int argc, char** argv)
{
    const HSM_CLIENT_X509_INTERFACE* x509 = hsm_client_x509_interface();
    const HSM_CLIENT_KEY_INTERFACE* key = hsm_client_key_interface();
    const HSM_CLIENT_TPM_INTERFACE* tpm = hsm_client_tpm_interface();
    const HSM_ABI_SIGNER_TABLE* table = hsm_abi_signer_table();
    HSM_CLIENT_HANDLE h;
    unsigned char* bytes = NULL;
    size_t len = 0;
    unsigned char data[4] = {1, 2, 3, 4};
    unsigned char sig[512];
    HSM_ABI_SIGNER* signer = NULL;
    HSM_ABI_KEY_INFO info;
    char small[8];
    size_t full;
    int code;

    if (argc != 2 || chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }

    /* Odd orders of init and deinit. */
    hsm_client_x509_deinit();
    hsm_client_tpm_deinit();
    CHECK(hsm_client_tpm_init() == 0);
    hsm_client_x509_deinit();
    CHECK(hsm_client_x509_init() == 0);
    CHECK(hsm_client_x509_init() == 0);
    hsm_client_tpm_deinit();
    hsm_client_tpm_deinit();
    hsm_client_tpm_deinit();
    CHECK(hsm_client_x509_init() == 0);

    /* No configuration at all (the script unsets HSM_ABI_CONFIG). */
    CHECK(getenv("HSM_ABI_CONFIG") == NULL);
    CHECK(x509->hsm_client_x509_create() == NULL);
    CHECK(last_error_has("no configuration"));
    CHECK(key->hsm_client_key_create() == NULL);
    CHECK(last_error_has("HSM_ABI_CONFIG"));
    CHECK(tpm->hsm_client_tpm_create() == NULL);

    /* A broken configuration file named by HSM_ABI_CONFIG: init fails and says why. */
    CHECK(setenv("HSM_ABI_CONFIG", "/nonexistent/hsm-abi.toml", 1) == 0);
    CHECK(hsm_client_x509_init() != 0);
    CHECK(last_error_has("/nonexistent/hsm-abi.toml"));
    CHECK(hsm_client_tpm_init() != 0);
    CHECK(x509->hsm_client_x509_create() == NULL);
    CHECK(last_error_has("/nonexistent/hsm-abi.toml"));
    CHECK(unsetenv("HSM_ABI_CONFIG") == 0);

    /* NULL handles to every function. */
    CHECK(x509->hsm_client_get_cert(NULL) == NULL);
    CHECK(last_error_has("handle") && last_error_has("NULL"));
    CHECK(x509->hsm_client_get_key(NULL) == NULL);
    CHECK(x509->hsm_client_get_common_name(NULL) == NULL);
    CHECK(key->hsm_client_get_symm_key(NULL) == NULL);
    CHECK(key->hsm_client_get_registration_name(NULL) == NULL);
    CHECK(key->hsm_client_set_symm_key_info(NULL, NULL, NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_get_ek(NULL, &bytes, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_get_srk(NULL, &bytes, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_activate_identity_key(NULL, data, sizeof data) == HSM_ABI_ERR_INVALID_ARGUMENT);
    /* Not a device's failure: no device origin, no device return code. */
    CHECK(hsm_abi_last_error_origin() == HSM_ABI_OK && hsm_abi_last_error_rv() == 0);
    CHECK(tpm->hsm_client_sign_with_identity(NULL, data, sizeof data, &bytes, &len) ==
          HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(tpm->hsm_client_sign_with_identity(NULL, NULL, 4, NULL, NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(bytes == NULL && len == 0); /* out-parameters untouched on failure */
    x509->hsm_client_x509_destroy(NULL);
    key->hsm_client_key_destroy(NULL);
    tpm->hsm_client_tpm_destroy(NULL);

    /* Malformed TOML, and a TOML that names what is wrong. */
    CHECK(hsm_abi_configure_toml("[x509\nbackend = ") == HSM_ABI_ERR_CONFIG);
    CHECK(last_error_has("syntax"));
    CHECK(hsm_abi_configure_toml("[x590]\nbackend = \"file\"\n") == HSM_ABI_ERR_CONFIG);
    CHECK(last_error_has("x590") && last_error_has("unknown section"));
    CHECK(hsm_abi_configure_toml(NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(hsm_abi_configure_file(NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(hsm_abi_configure_file("/nonexistent/hsm-abi.toml") == HSM_ABI_ERR_IO);
    CHECK(last_error_has("/nonexistent/hsm-abi.toml"));

    /* Missing certificate file (relative paths: relative to the working directory). */
    configure("[x509]\nbackend = \"file\"\ncertificate = \"missing.pem\"\nprivate_key = \"key.pem\"\n");
    CHECK(x509->hsm_client_x509_create() == NULL);
    CHECK(last_error_has("missing.pem"));
    /* Key that does not match the certificate. */
    configure("[x509]\nbackend = \"file\"\ncertificate = \"chain.pem\"\nprivate_key = \"other-key.pem\"\n");
    CHECK(x509->hsm_client_x509_create() == NULL);
    CHECK(last_error_has("does not match"));
    /* Unknown parameter of the file backend. */
    configure("[x509]\nbackend = \"file\"\ncertificate = \"chain.pem\"\nprivate_key = \"key.pem\"\npin = \"1\"\n");
    CHECK(x509->hsm_client_x509_create() == NULL);
    CHECK(last_error_has("pin"));
    /* Unknown backends (this library is built with the default features). */
    configure("[x509]\nbackend = \"magic\"\n[symmetric_key]\nbackend = \"nope\"\n[tpm]\nbackend = \"tpm\"\n");
    CHECK(x509->hsm_client_x509_create() == NULL);
    CHECK(last_error_has("backend \"magic\" is not built into this library; built in: file, pkcs11, dice"));
    CHECK(key->hsm_client_key_create() == NULL);
    CHECK(last_error_has("backend \"nope\""));
    CHECK(tpm->hsm_client_tpm_create() == NULL);
    CHECK(last_error_has("backend \"tpm\" is not built into this library"));
    /* A missing section. */
    configure("[tpm]\nbackend = \"tpm\"\n");
    CHECK(key->hsm_client_key_create() == NULL);
    CHECK(last_error_has("[symmetric_key] is missing"));

    /* A working handle: wrong-kind use and NULL,NULL set_symm_key_info. */
    configure("[x509]\nbackend = \"file\"\ncertificate = \"chain.pem\"\nprivate_key = \"key.pem\"\n"
              "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"r1\"\nsymmetric_key = \"AAECAw==\"\n");
    h = key->hsm_client_key_create();
    CHECK(h != NULL);
    if (h != NULL) {
        CHECK(key->hsm_client_set_symm_key_info(h, NULL, NULL) == 0);
        CHECK(key->hsm_client_set_symm_key_info(h, "", NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
        CHECK(x509->hsm_client_get_cert(h) == NULL);
        CHECK(last_error_has("is not a handle of the x509 interface"));
        x509->hsm_client_x509_destroy(h); /* refused: wrong kind */
        CHECK(take_equals(key->hsm_client_get_registration_name(h), "r1"));
        key->hsm_client_key_destroy(h);
    }
    h = x509->hsm_client_x509_create();
    CHECK(h != NULL);
    if (h != NULL) {
        CHECK(key->hsm_client_get_symm_key(h) == NULL);
        CHECK(last_error_has("is not a handle of the symmetric key interface"));
        CHECK(tpm->hsm_client_get_ek(h, &bytes, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
        CHECK(last_error_has("is not a handle of the TPM interface"));
        x509->hsm_client_x509_destroy(h);
    }

    /* Signer table: NULL and bad arguments. */
    CHECK(table->open(NULL, &signer) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(table->open("file:key.pem", NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(table->open("ftp:key", &signer) == HSM_ABI_ERR_PARSE);
    CHECK(last_error_has("unknown scheme `ftp:`"));
    CHECK(table->open("file:missing-key.pem", &signer) == HSM_ABI_ERR_IO);
    CHECK(last_error_has("missing-key.pem"));
    CHECK(table->open("no token", &signer) == HSM_ABI_ERR_PARSE);
    CHECK(signer == NULL);
    CHECK(table->key_info(NULL, &info) == HSM_ABI_ERR_INVALID_ARGUMENT);
    len = sizeof sig;
    CHECK(table->sign(NULL, 0x0403, data, sizeof data, sig, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(table->public_key(NULL, &bytes, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
    table->close(NULL);
    CHECK(table->open("file:key.pem", &signer) == HSM_ABI_OK);
    if (signer != NULL) {
        CHECK(table->key_info(signer, NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
        memset(&info, 0, sizeof info);
        info.struct_size = 8;
        CHECK(table->key_info(signer, &info) == HSM_ABI_ERR_STRUCT_SIZE);
        CHECK(info.algorithm == 0);
        len = sizeof sig;
        CHECK(table->sign(signer, 0x0804, data, sizeof data, sig, &len) == HSM_ABI_ERR_UNSUPPORTED);
        CHECK(table->sign(signer, 0x9999, data, sizeof data, sig, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
        CHECK(last_error_has("0x9999"));
        CHECK(table->sign(signer, 0x0403, NULL, 4, sig, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
        CHECK(table->sign(signer, 0x0403, data, sizeof data, sig, NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
        len = 10;
        CHECK(table->sign(signer, 0x0403, data, sizeof data, sig, &len) == HSM_ABI_ERR_BUFFER_TOO_SMALL);
        CHECK(len == 72);
        CHECK(table->public_key(signer, NULL, &len) == HSM_ABI_ERR_INVALID_ARGUMENT);
        CHECK(table->public_key(signer, &bytes, NULL) == HSM_ABI_ERR_INVALID_ARGUMENT);
        CHECK(bytes == NULL);
        table->close(signer);
    }

    /* Error strings and the last-error buffer. */
    for (code = 0; code < 600; code++) {
        const char* s = hsm_abi_error_string(code);
        CHECK(s != NULL);
    }
    CHECK(strcmp(hsm_abi_error_string(HSM_ABI_OK), "success") == 0);
    CHECK(strstr(hsm_abi_error_string(HSM_ABI_ERR_CONFIG), "configuration") != NULL);
    CHECK(strstr(hsm_abi_error_string(HSM_ABI_ERR_PKCS11), "PKCS#11") != NULL);
    CHECK(strcmp(hsm_abi_error_string(-1), "unknown error code") == 0);
    CHECK(strcmp(hsm_abi_error_string(42), "unknown error code") == 0);
    full = hsm_abi_last_error(NULL, 0);
    CHECK(full > sizeof small);
    CHECK(full == strlen(last_error()) + 1);
    memset(small, 'x', sizeof small);
    CHECK(hsm_abi_last_error(small, sizeof small) == full);
    CHECK(small[sizeof small - 1] == '\0' && strlen(small) == sizeof small - 1);
    CHECK(strncmp(small, "hsm_abi", 7) == 0);

    hsm_abi_configure_clear();
    hsm_client_x509_deinit();
    hsm_client_tpm_deinit();
    return finish("test_bad_input");
}
