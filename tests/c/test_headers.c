/* The generated headers compile on their own and together (C99 and C11, pedantic, warnings as
 * errors; the script also compiles them as C++), declare what the SDK's hsm_client_data.h
 * declares, and the interface tables have the SDK's layout: N function pointers in the SDK's
 * order. Checked at compile time and again at run time against the library. */
#include "hsm_client_data.h"
#include "hsm_client_data.h" /* include guard */
#include "hsm_abi.h"
#include "hsm_abi.h"

#include <stddef.h>
#include <stdio.h>

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define STATIC_ASSERT(cond, name) _Static_assert(cond, #name)
#else
#define STATIC_ASSERT(cond, name) typedef char static_assert_##name[(cond) ? 1 : -1]
#endif

#define PTR sizeof(void (*)(void))

STATIC_ASSERT(sizeof(HSM_CLIENT_TPM_INTERFACE) == 6 * PTR, tpm_size);
STATIC_ASSERT(offsetof(HSM_CLIENT_TPM_INTERFACE, hsm_client_tpm_create) == 0 * PTR, tpm_0);
STATIC_ASSERT(offsetof(HSM_CLIENT_TPM_INTERFACE, hsm_client_tpm_destroy) == 1 * PTR, tpm_1);
STATIC_ASSERT(offsetof(HSM_CLIENT_TPM_INTERFACE, hsm_client_activate_identity_key) == 2 * PTR, tpm_2);
STATIC_ASSERT(offsetof(HSM_CLIENT_TPM_INTERFACE, hsm_client_get_ek) == 3 * PTR, tpm_3);
STATIC_ASSERT(offsetof(HSM_CLIENT_TPM_INTERFACE, hsm_client_get_srk) == 4 * PTR, tpm_4);
STATIC_ASSERT(offsetof(HSM_CLIENT_TPM_INTERFACE, hsm_client_sign_with_identity) == 5 * PTR, tpm_5);

STATIC_ASSERT(sizeof(HSM_CLIENT_X509_INTERFACE) == 5 * PTR, x509_size);
STATIC_ASSERT(offsetof(HSM_CLIENT_X509_INTERFACE, hsm_client_x509_create) == 0 * PTR, x509_0);
STATIC_ASSERT(offsetof(HSM_CLIENT_X509_INTERFACE, hsm_client_x509_destroy) == 1 * PTR, x509_1);
STATIC_ASSERT(offsetof(HSM_CLIENT_X509_INTERFACE, hsm_client_get_cert) == 2 * PTR, x509_2);
STATIC_ASSERT(offsetof(HSM_CLIENT_X509_INTERFACE, hsm_client_get_key) == 3 * PTR, x509_3);
STATIC_ASSERT(offsetof(HSM_CLIENT_X509_INTERFACE, hsm_client_get_common_name) == 4 * PTR, x509_4);

STATIC_ASSERT(sizeof(HSM_CLIENT_KEY_INTERFACE) == 5 * PTR, key_size);
STATIC_ASSERT(offsetof(HSM_CLIENT_KEY_INTERFACE, hsm_client_key_create) == 0 * PTR, key_0);
STATIC_ASSERT(offsetof(HSM_CLIENT_KEY_INTERFACE, hsm_client_key_destroy) == 1 * PTR, key_1);
STATIC_ASSERT(offsetof(HSM_CLIENT_KEY_INTERFACE, hsm_client_get_symm_key) == 2 * PTR, key_2);
STATIC_ASSERT(offsetof(HSM_CLIENT_KEY_INTERFACE, hsm_client_get_registration_name) == 3 * PTR, key_3);
STATIC_ASSERT(offsetof(HSM_CLIENT_KEY_INTERFACE, hsm_client_set_symm_key_info) == 4 * PTR, key_4);

/* Versioned tables: version and struct_size first. */
STATIC_ASSERT(offsetof(HSM_ABI_SIGNER_TABLE, version) == 0, signer_version);
STATIC_ASSERT(offsetof(HSM_ABI_SIGNER_TABLE, struct_size) == 4, signer_struct_size);
STATIC_ASSERT(offsetof(HSM_ABI_KEY_INFO, struct_size) == 0, key_info_struct_size);
STATIC_ASSERT(offsetof(HSM_ABI_KEY_INFO, schemes) == 16, key_info_schemes);

/* The SDK's typedef names, with the SDK's signatures: these assignments need no cast. */
static HSM_CLIENT_CREATE sdk_create;
static HSM_CLIENT_DESTROY sdk_destroy;
static HSM_CLIENT_ACTIVATE_IDENTITY_KEY sdk_activate;
static HSM_CLIENT_GET_ENDORSEMENT_KEY sdk_get_ek;
static HSM_CLIENT_GET_STORAGE_ROOT_KEY sdk_get_srk;
static HSM_CLIENT_SIGN_WITH_IDENTITY sdk_sign;
static HSM_CLIENT_GET_CERTIFICATE sdk_get_cert;
static HSM_CLIENT_GET_ALIAS_KEY sdk_get_key;
static HSM_CLIENT_GET_COMMON_NAME sdk_get_cn;
static HSM_CLIENT_GET_TRUST_BUNDLE sdk_trust_bundle;
static HSM_CLIENT_GET_SYMMETRICAL_KEY sdk_get_symm;
static HSM_CLIENT_GET_REGISTRATION_NAME sdk_get_reg;
static HSM_CLIENT_SET_SYMMETRICAL_KEY_INFO sdk_set_info;

/* The SDK's own declarations of the seven functions (empty parameter lists), which must be
 * compatible with ours. */
extern const HSM_CLIENT_TPM_INTERFACE* hsm_client_tpm_interface();
extern const HSM_CLIENT_X509_INTERFACE* hsm_client_x509_interface();
extern const HSM_CLIENT_KEY_INTERFACE* hsm_client_key_interface();
extern int hsm_client_x509_init();
extern void hsm_client_x509_deinit();
extern int hsm_client_tpm_init();
extern void hsm_client_tpm_deinit();

static int failures = 0;

static void expect(int cond, const char* what)
{
    if (!cond) {
        fprintf(stderr, "test_headers: FAILED: %s\n", what);
        failures++;
    }
}

int main(void)
{
    const HSM_CLIENT_TPM_INTERFACE* tpm = hsm_client_tpm_interface();
    const HSM_CLIENT_X509_INTERFACE* x509 = hsm_client_x509_interface();
    const HSM_CLIENT_KEY_INTERFACE* key = hsm_client_key_interface();
    const HSM_ABI_SIGNER_TABLE* signer = hsm_abi_signer_table();
    HSM_CLIENT_HANDLE handle = NULL;
    size_t i;

    expect(tpm != NULL && x509 != NULL && key != NULL && signer != NULL, "tables are not NULL");
    if (failures) {
        return 1;
    }
    sdk_create = x509->hsm_client_x509_create;
    sdk_destroy = x509->hsm_client_x509_destroy;
    sdk_get_cert = x509->hsm_client_get_cert;
    sdk_get_key = x509->hsm_client_get_key;
    sdk_get_cn = x509->hsm_client_get_common_name;
    sdk_activate = tpm->hsm_client_activate_identity_key;
    sdk_get_ek = tpm->hsm_client_get_ek;
    sdk_get_srk = tpm->hsm_client_get_srk;
    sdk_sign = tpm->hsm_client_sign_with_identity;
    sdk_get_symm = key->hsm_client_get_symm_key;
    sdk_get_reg = key->hsm_client_get_registration_name;
    sdk_set_info = key->hsm_client_set_symm_key_info;
    sdk_trust_bundle = NULL;
    expect(sdk_trust_bundle == NULL, "typedef usable");

    /* Every field non-NULL, checked through the raw layout too. */
    {
        void (*const* p)(void) = (void (*const*)(void))(const void*)tpm;
        for (i = 0; i < sizeof(*tpm) / PTR; i++) {
            expect(p[i] != NULL, "TPM interface field non-NULL");
        }
        p = (void (*const*)(void))(const void*)x509;
        for (i = 0; i < sizeof(*x509) / PTR; i++) {
            expect(p[i] != NULL, "x509 interface field non-NULL");
        }
        p = (void (*const*)(void))(const void*)key;
        for (i = 0; i < sizeof(*key) / PTR; i++) {
            expect(p[i] != NULL, "key interface field non-NULL");
        }
    }
    expect(sdk_create != NULL && sdk_destroy != NULL && sdk_get_cert != NULL && sdk_get_key != NULL &&
               sdk_get_cn != NULL && sdk_activate != NULL && sdk_get_ek != NULL && sdk_get_srk != NULL &&
               sdk_sign != NULL && sdk_get_symm != NULL && sdk_get_reg != NULL && sdk_set_info != NULL,
           "SDK-typed pointers");
    expect(signer->version == HSM_ABI_SIGNER_TABLE_VERSION, "signer table version");
    expect(signer->struct_size == sizeof(HSM_ABI_SIGNER_TABLE), "signer table struct_size");
    expect(signer->open != NULL && signer->key_info != NULL && signer->sign != NULL && signer->close != NULL &&
               signer->public_key != NULL,
           "signer table fields non-NULL");
    expect(sizeof(HSM_ABI_KEY_INFO) == 4 * (5 + HSM_ABI_MAX_SCHEMES), "HSM_ABI_KEY_INFO size");

    /* Runtime layout checks (same as the static ones, against this compiler's view). */
    expect(sizeof(HSM_CLIENT_TPM_INTERFACE) == 6 * PTR, "TPM interface size");
    expect(sizeof(HSM_CLIENT_X509_INTERFACE) == 5 * PTR, "x509 interface size");
    expect(sizeof(HSM_CLIENT_KEY_INTERFACE) == 5 * PTR, "key interface size");
    expect(offsetof(HSM_CLIENT_TPM_INTERFACE, hsm_client_sign_with_identity) == 5 * PTR, "TPM order");
    expect(offsetof(HSM_CLIENT_X509_INTERFACE, hsm_client_get_common_name) == 4 * PTR, "x509 order");
    expect(offsetof(HSM_CLIENT_KEY_INTERFACE, hsm_client_set_symm_key_info) == 4 * PTR, "key order");

    /* The functions link and behave without a configuration. */
    expect(hsm_client_x509_init() == 0 && hsm_client_tpm_init() == 0, "init without configuration");
    sdk_destroy(handle);
    hsm_client_tpm_deinit();
    hsm_client_x509_deinit();
    expect(hsm_abi_version() != NULL, "version");

    printf("test_headers: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
