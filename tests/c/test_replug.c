/* A PKCS#11 token that goes away and comes back, seen through the C ABI: the key token from the
 * SDK's x509 interface (get_key), opened with the signer table, signs; while the token's
 * directory is moved away every sign fails with HSM_ABI_ERR_PKCS11 and a message naming what to
 * check; once the directory is back, the same open signer signs again with the same key.
 * usage: test_replug TOKEN_DIR ASIDE MSG_FILE SIG_BEFORE SIG_AFTER
 * TOKEN_DIR is the token's own directory inside SoftHSM2's token directory; ASIDE a free path on
 * the same file system. The configuration comes from HSM_ABI_CONFIG ([x509] backend "pkcs11").
 * The script verifies both signatures with openssl. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <unistd.h>

#include "common.h"

#define P256_SHA256 0x0403u

/* Sign `msg` into a malloc'd buffer; returns the library's code, *sig NULL unless it is 0. */
static int sign(const HSM_ABI_SIGNER_TABLE* table, const HSM_ABI_SIGNER* signer, const char* msg, size_t msg_len,
                unsigned char** sig, size_t* sig_len)
{
    HSM_ABI_KEY_INFO info;
    int rc;
    *sig = NULL;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (table->key_info(signer, &info) != HSM_ABI_OK) {
        return -1;
    }
    *sig_len = info.max_signature_len;
    *sig = malloc(*sig_len);
    if (*sig == NULL) {
        return -1;
    }
    rc = table->sign(signer, P256_SHA256, (const unsigned char*)msg, msg_len, *sig, sig_len);
    if (rc != HSM_ABI_OK) {
        free(*sig);
        *sig = NULL;
    }
    return rc;
}

int main(int argc, char** argv)
{
    const HSM_CLIENT_X509_INTERFACE* x509;
    const HSM_ABI_SIGNER_TABLE* table;
    HSM_ABI_SIGNER* signer = NULL;
    HSM_CLIENT_HANDLE h;
    char *token = NULL, *msg;
    unsigned char *sig = NULL, *spki_before = NULL, *spki_after = NULL;
    size_t msg_len = 0, sig_len = 0, spki_before_len = 0, spki_after_len = 0;
    int round;

    if (argc != 6) {
        fprintf(stderr, "usage: %s TOKEN_DIR ASIDE MSG_FILE SIG_BEFORE SIG_AFTER\n", argv[0]);
        return 2;
    }
    msg = read_file(argv[3], &msg_len);
    if (msg == NULL) {
        return 2;
    }

    /* The SDK's sequence hands out the key token. */
    CHECK(hsm_client_x509_init() == 0);
    x509 = hsm_client_x509_interface();
    h = x509 != NULL ? x509->hsm_client_x509_create() : NULL;
    CHECK(h != NULL);
    if (h != NULL) {
        token = x509->hsm_client_get_key(h);
        CHECK(token != NULL && strncmp(token, "pkcs11:", 7) == 0);
        x509->hsm_client_x509_destroy(h);
    }
    hsm_client_x509_deinit();
    if (token == NULL) {
        free(msg);
        return finish("test_replug");
    }

    table = hsm_abi_signer_table();
    CHECK(table->open(token, &signer) == HSM_ABI_OK);
    if (signer != NULL) {
        CHECK(table->public_key(signer, &spki_before, &spki_before_len) == HSM_ABI_OK);
        CHECK(sign(table, signer, msg, msg_len, &sig, &sig_len) == HSM_ABI_OK);
        CHECK(sig != NULL && write_file(argv[4], sig, sig_len));
        free(sig);

        /* The token goes away. */
        CHECK(rename(argv[1], argv[2]) == 0);
        for (round = 0; round < 2; round++) {
            CHECK(sign(table, signer, msg, msg_len, &sig, &sig_len) == HSM_ABI_ERR_PKCS11);
            CHECK(sig == NULL);
            CHECK(last_error_has("is the token present"));
            printf("token away, round %d: %s\n", round, last_error());
        }

        /* It comes back: the same open signer signs with the same key. (The module is
         * re-initialized to look for it at most once a second: wait that out.) */
        CHECK(rename(argv[2], argv[1]) == 0);
        sleep(2);
        CHECK(sign(table, signer, msg, msg_len, &sig, &sig_len) == HSM_ABI_OK);
        CHECK(sig != NULL && write_file(argv[5], sig, sig_len));
        free(sig);
        CHECK(table->public_key(signer, &spki_after, &spki_after_len) == HSM_ABI_OK);
        CHECK(spki_before != NULL && spki_after != NULL && spki_before_len == spki_after_len &&
              memcmp(spki_before, spki_after, spki_before_len) == 0);
        free(spki_before);
        free(spki_after);
        table->close(signer);
    }
    free(token);
    free(msg);
    return finish("test_replug");
}
