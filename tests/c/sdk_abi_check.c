/* Our headers against the Azure IoT C SDK's, checked by the compiler (scripts/sdk-interop.sh).
 *
 * Built twice:
 * - with -DOURS and only our headers (include/): a program that prints, as #defines, every enum
 *   value and struct layout our headers share with the SDK (OURS_*);
 * - with the SDK's own headers and that output (-include abi_ours.h): each _Static_assert below
 *   compares the SDK's number with ours. A field name we spell differently fails to compile, a
 *   different number or offset fails an assertion. Nothing here restates a number by hand. */
#include <stddef.h>
#include <stdio.h>

/* Each shared item: X(name, expression) for values, F(type, field) for layouts. */
#define ENUM_VALUES(X)                                                                                          \
    X(IO_OPEN_RESULT_INVALID) X(IO_OPEN_OK) X(IO_OPEN_ERROR) X(IO_OPEN_CANCELLED) X(IO_SEND_RESULT_INVALID)      \
    X(IO_SEND_OK) X(IO_SEND_ERROR) X(IO_SEND_CANCELLED) X(OPTIONHANDLER_OK) X(OPTIONHANDLER_ERROR)              \
    X(OPTIONHANDLER_INVALIDARG)

#define TYPES(T)                                                                                                \
    T(IO_OPEN_RESULT) T(IO_SEND_RESULT) T(OPTIONHANDLER_RESULT) T(IO_INTERFACE_DESCRIPTION)                     \
    T(HSM_CLIENT_X509_INTERFACE) T(HSM_CLIENT_TPM_INTERFACE) T(HSM_CLIENT_KEY_INTERFACE)

#define FIELDS(F)                                                                                               \
    F(IO_INTERFACE_DESCRIPTION, concrete_io_retrieveoptions)                                                   \
    F(IO_INTERFACE_DESCRIPTION, concrete_io_create)                                                            \
    F(IO_INTERFACE_DESCRIPTION, concrete_io_destroy)                                                           \
    F(IO_INTERFACE_DESCRIPTION, concrete_io_open)                                                              \
    F(IO_INTERFACE_DESCRIPTION, concrete_io_close)                                                             \
    F(IO_INTERFACE_DESCRIPTION, concrete_io_send)                                                              \
    F(IO_INTERFACE_DESCRIPTION, concrete_io_dowork)                                                            \
    F(IO_INTERFACE_DESCRIPTION, concrete_io_setoption)                                                         \
    F(TLSIO_CONFIG, hostname)                                                                                  \
    F(TLSIO_CONFIG, port)                                                                                      \
    F(TLSIO_CONFIG, underlying_io_interface)                                                                   \
    F(TLSIO_CONFIG, underlying_io_parameters)                                                                  \
    F(HSM_CLIENT_X509_INTERFACE, hsm_client_x509_create)                                                       \
    F(HSM_CLIENT_X509_INTERFACE, hsm_client_x509_destroy)                                                      \
    F(HSM_CLIENT_X509_INTERFACE, hsm_client_get_cert)                                                          \
    F(HSM_CLIENT_X509_INTERFACE, hsm_client_get_key)                                                           \
    F(HSM_CLIENT_X509_INTERFACE, hsm_client_get_common_name)                                                   \
    F(HSM_CLIENT_TPM_INTERFACE, hsm_client_tpm_create)                                                         \
    F(HSM_CLIENT_TPM_INTERFACE, hsm_client_tpm_destroy)                                                        \
    F(HSM_CLIENT_TPM_INTERFACE, hsm_client_activate_identity_key)                                              \
    F(HSM_CLIENT_TPM_INTERFACE, hsm_client_get_ek)                                                             \
    F(HSM_CLIENT_TPM_INTERFACE, hsm_client_get_srk)                                                            \
    F(HSM_CLIENT_TPM_INTERFACE, hsm_client_sign_with_identity)                                                 \
    F(HSM_CLIENT_KEY_INTERFACE, hsm_client_key_create)                                                         \
    F(HSM_CLIENT_KEY_INTERFACE, hsm_client_key_destroy)                                                        \
    F(HSM_CLIENT_KEY_INTERFACE, hsm_client_get_symm_key)                                                       \
    F(HSM_CLIENT_KEY_INTERFACE, hsm_client_get_registration_name)                                              \
    F(HSM_CLIENT_KEY_INTERFACE, hsm_client_set_symm_key_info)

#ifdef OURS
#include "hsm_client_data.h"
#include "tlsio_rustls.h"

#define PRINT_VALUE(name) printf("#define OURS_%s %d\n", #name, (int)(name));
#define PRINT_SIZE(type) printf("#define OURS_SIZE_%s %zu\n", #type, sizeof(type));
#define PRINT_FIELD(type, field)                                                                                \
    printf("#define OURS_OFF_%s_%s %zu\n#define OURS_SZ_%s_%s %zu\n", #type, #field, offsetof(type, field),    \
           #type, #field, sizeof(((type*)0)->field));

int main(void)
{
    ENUM_VALUES(PRINT_VALUE)
    TYPES(PRINT_SIZE)
    PRINT_SIZE(TLSIO_CONFIG)
    FIELDS(PRINT_FIELD)
    return 0;
}

#else
#include <stdbool.h>
#include <stdint.h>

#include "azure_c_shared_utility/optionhandler.h"
#include "azure_c_shared_utility/tlsio.h"
#include "azure_c_shared_utility/xio.h"
#include "hsm_client_data.h" /* the SDK's, provisioning_client/adapters */

#define ASSERT_VALUE(name) _Static_assert((int)(name) == OURS_##name, "value of " #name " differs from the SDK's");
#define ASSERT_SIZE(type) _Static_assert(sizeof(type) == OURS_SIZE_##type, "size of " #type " differs from the SDK's");
#define ASSERT_FIELD(type, field)                                                                              \
    _Static_assert(offsetof(type, field) == OURS_OFF_##type##_##field, "offset of " #type "." #field);         \
    _Static_assert(sizeof(((type*)0)->field) == OURS_SZ_##type##_##field, "size of " #type "." #field);

ENUM_VALUES(ASSERT_VALUE)
TYPES(ASSERT_SIZE)
/* Our TLSIO_CONFIG is the SDK's first four fields: later SDKs append fields we never read. */
_Static_assert(sizeof(TLSIO_CONFIG) >= OURS_SIZE_TLSIO_CONFIG, "the SDK's TLSIO_CONFIG is shorter than ours");
FIELDS(ASSERT_FIELD)
#endif
