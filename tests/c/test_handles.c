/* Misused handles (issue 12): destroy(h1); h2 = create(); destroy(h1) must report the stale
 * h1 and leave h2 working; a signer closed twice is reported, not freed twice; an x509 handle
 * given to the signer table's key_info is refused. Run under valgrind: no invalid read, no
 * double free, no leak.
 * usage: test_handles DIR   (DIR holds hsm.toml of the file backend and key.pem) */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <unistd.h>

#include "common.h"

/* Make the last error something unrelated, so a check sees only the call that follows. */
static void reset_last_error(void)
{
    CHECK(hsm_client_x509_interface()->hsm_client_get_cert(NULL) == NULL);
    CHECK(last_error_has("is NULL"));
}

int main(int argc, char** argv)
{
    const HSM_CLIENT_X509_INTERFACE* x509 = hsm_client_x509_interface();
    const HSM_ABI_SIGNER_TABLE* table = hsm_abi_signer_table();
    HSM_CLIENT_HANDLE h1, h2;
    HSM_ABI_SIGNER* s1 = NULL;
    HSM_ABI_SIGNER* s2 = NULL;
    HSM_ABI_KEY_INFO info;

    if (argc != 2 || chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    CHECK(hsm_abi_configure_file("hsm.toml") == HSM_ABI_OK);
    CHECK(hsm_client_x509_init() == 0);

    /* destroy(h1); h2 = create(); destroy(h1): h1 is reported, h2 is not freed. */
    h1 = x509->hsm_client_x509_create();
    CHECK(h1 != NULL);
    x509->hsm_client_x509_destroy(h1);
    h2 = x509->hsm_client_x509_create();
    CHECK(h2 != NULL);
    reset_last_error();
    x509->hsm_client_x509_destroy(h1);
    CHECK(last_error_has("x509 handle was already destroyed"));
    CHECK(x509->hsm_client_get_cert(h1) == NULL);
    CHECK(last_error_has("already destroyed"));
    CHECK(take_equals(x509->hsm_client_get_common_name(h2), "device-p256"));

    /* An x509 handle given to the signer table. */
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK(table->key_info((const HSM_ABI_SIGNER*)h2, &info) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(last_error_has("is not a handle of the signer interface") && last_error_has("x509"));
    table->close((HSM_ABI_SIGNER*)h2);
    CHECK(last_error_has("is not a handle of the signer interface"));
    CHECK(take_equals(x509->hsm_client_get_common_name(h2), "device-p256"));
    x509->hsm_client_x509_destroy(h2);

    /* A signer closed twice, the second time after another signer was opened. */
    CHECK(table->open("file:key.pem", &s1) == HSM_ABI_OK);
    table->close(s1);
    CHECK(table->open("file:key.pem", &s2) == HSM_ABI_OK);
    reset_last_error();
    table->close(s1);
    CHECK(last_error_has("signer handle was already destroyed"));
    CHECK(table->key_info(s1, &info) == HSM_ABI_ERR_INVALID_ARGUMENT);
    CHECK(table->key_info(s2, &info) == HSM_ABI_OK);
    CHECK(info.algorithm == HSM_ABI_KEY_ALGORITHM_EC && info.curve_or_bits == 256);
    table->close(s2);
    reset_last_error();
    table->close(s2);
    CHECK(last_error_has("already destroyed"));

    hsm_abi_configure_clear();
    hsm_client_x509_deinit();
    return finish("test_handles");
}
