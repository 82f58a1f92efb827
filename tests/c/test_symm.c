/* The SDK's symmetric-key call sequence: individual key, group-derived key, overrides. */
#include "common.h"

#define GROUP_KEY "9okJC6lKhmgI33KikQOMre4DvF+vacd9NUl2ATGVC44YeJfOCvzyC1C6KzfcqEqVG3BG8p7Vq5TwEGGfadbhiQ=="
#define DERIVED_KEY "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ="
#define INDIVIDUAL_KEY "c2VjcmV0LWRldmljZS1rZXktMDEyMzQ1Njc4OWFi"

int main(void)
{
    const HSM_CLIENT_KEY_INTERFACE* key;
    HSM_CLIENT_HANDLE h, h2;

    CHECK(hsm_client_x509_init() == 0);
    CHECK(hsm_client_tpm_init() == 0);
    key = hsm_client_key_interface();
    CHECK(key != NULL);
    if (key == NULL) {
        return finish("test_symm");
    }

    /* Individual enrollment. */
    CHECK(hsm_abi_configure_toml("[symmetric_key]\n"
                                 "backend = \"file\"\n"
                                 "registration_id = \"device-individual\"\n"
                                 "symmetric_key = \"" INDIVIDUAL_KEY "\"\n") == HSM_ABI_OK);
    h = key->hsm_client_key_create();
    CHECK(h != NULL);
    if (h != NULL) {
        CHECK(key->hsm_client_set_symm_key_info(h, NULL, NULL) == 0);
        CHECK(take_equals(key->hsm_client_get_registration_name(h), "device-individual"));
        CHECK(take_equals(key->hsm_client_get_symm_key(h), INDIVIDUAL_KEY));
        key->hsm_client_key_destroy(h);
    }

    /* Group enrollment: the device key is derived from the group key and the registration id. */
    CHECK(hsm_abi_configure_toml("[symmetric_key]\n"
                                 "backend = \"file\"\n"
                                 "registration_id = \"device-0001\"\n"
                                 "group_key = \"" GROUP_KEY "\"\n") == HSM_ABI_OK);
    h = key->hsm_client_key_create();
    CHECK(h != NULL);
    if (h != NULL) {
        CHECK(key->hsm_client_set_symm_key_info(h, NULL, NULL) == 0);
        CHECK(take_equals(key->hsm_client_get_registration_name(h), "device-0001"));
        CHECK(take_equals(key->hsm_client_get_symm_key(h), DERIVED_KEY));

        /* The application's values override the configured ones on this handle, as given. */
        CHECK(key->hsm_client_set_symm_key_info(h, "app-device", INDIVIDUAL_KEY) == 0);
        CHECK(take_equals(key->hsm_client_get_registration_name(h), "app-device"));
        CHECK(take_equals(key->hsm_client_get_symm_key(h), INDIVIDUAL_KEY));
        /* NULL, NULL afterwards keeps them. */
        CHECK(key->hsm_client_set_symm_key_info(h, NULL, NULL) == 0);
        CHECK(take_equals(key->hsm_client_get_registration_name(h), "app-device"));
        /* Only one of them. */
        CHECK(key->hsm_client_set_symm_key_info(h, "only-name", NULL) == 0);
        CHECK(take_equals(key->hsm_client_get_registration_name(h), "only-name"));
        CHECK(take_equals(key->hsm_client_get_symm_key(h), INDIVIDUAL_KEY));
        /* A key that is not base64 is refused and changes nothing. */
        CHECK(key->hsm_client_set_symm_key_info(h, "x", "not base64!") == HSM_ABI_ERR_PARSE);
        CHECK(last_error_has("symm_key"));
        CHECK(take_equals(key->hsm_client_get_registration_name(h), "only-name"));

        /* Another handle still has the configured values. */
        h2 = key->hsm_client_key_create();
        CHECK(h2 != NULL);
        if (h2 != NULL) {
            CHECK(take_equals(key->hsm_client_get_registration_name(h2), "device-0001"));
            CHECK(take_equals(key->hsm_client_get_symm_key(h2), DERIVED_KEY));
            key->hsm_client_key_destroy(h2);
        }
        key->hsm_client_key_destroy(h);
    }
    hsm_abi_configure_clear();
    hsm_client_tpm_deinit();
    hsm_client_x509_deinit();
    return finish("test_symm");
}
