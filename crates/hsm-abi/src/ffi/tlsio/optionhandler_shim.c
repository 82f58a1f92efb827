/* The Azure IoT C SDK's OptionHandler API (azure-c-shared-utility optionhandler.h), reached
 * through weak references: when the SDK is linked into the program, the rustls TLS IO's
 * retrieveoptions builds its option handler with the SDK's own functions; when it is not,
 * these functions report that the API is absent and libhsm_abi still links on its own.
 * Part of hsm-abi (crates/hsm-abi/build.rs compiles it); no symbol here is public API. */
#include <stddef.h>

struct OPTIONHANDLER_HANDLE_DATA_TAG;
typedef struct OPTIONHANDLER_HANDLE_DATA_TAG* hsm_tlsio_option_handler;

typedef void* (*hsm_tlsio_clone_option)(const char* name, void* value);
typedef void (*hsm_tlsio_destroy_option)(const char* name, void* value);
typedef int (*hsm_tlsio_set_option)(void* handle, const char* name, void* value);

/* The SDK's functions. OPTIONHANDLER_RESULT is returned as it is; the Rust side compares it with
 * the numbers of its own OPTIONHANDLER_RESULT (include/tlsio_rustls.h), which the interop suite
 * asserts against the SDK's header. */
extern hsm_tlsio_option_handler OptionHandler_Create(hsm_tlsio_clone_option clone_option,
                                                     hsm_tlsio_destroy_option destroy_option,
                                                     hsm_tlsio_set_option set_option) __attribute__((weak));
extern int OptionHandler_AddOption(hsm_tlsio_option_handler handle, const char* name, void* value)
    __attribute__((weak));
extern int OptionHandler_FeedOptions(hsm_tlsio_option_handler handle, void* destination) __attribute__((weak));
extern void OptionHandler_Destroy(hsm_tlsio_option_handler handle) __attribute__((weak));

#define HIDDEN __attribute__((visibility("hidden")))

HIDDEN int hsm_abi_tlsio_option_handler_available(void)
{
    return OptionHandler_Create != NULL && OptionHandler_AddOption != NULL && OptionHandler_FeedOptions != NULL &&
           OptionHandler_Destroy != NULL;
}

HIDDEN void* hsm_abi_tlsio_option_handler_create(hsm_tlsio_clone_option clone_option,
                                                 hsm_tlsio_destroy_option destroy_option,
                                                 hsm_tlsio_set_option set_option)
{
    if (!hsm_abi_tlsio_option_handler_available()) {
        return NULL;
    }
    return OptionHandler_Create(clone_option, destroy_option, set_option);
}

/* The SDK's OPTIONHANDLER_RESULT (or -1: the API is absent). */
HIDDEN int hsm_abi_tlsio_option_handler_add(void* handle, const char* name, void* value)
{
    if (!hsm_abi_tlsio_option_handler_available()) {
        return -1;
    }
    return OptionHandler_AddOption((hsm_tlsio_option_handler)handle, name, value);
}

HIDDEN int hsm_abi_tlsio_option_handler_feed(void* handle, void* destination)
{
    if (!hsm_abi_tlsio_option_handler_available()) {
        return -1;
    }
    return OptionHandler_FeedOptions((hsm_tlsio_option_handler)handle, destination);
}

HIDDEN void hsm_abi_tlsio_option_handler_destroy(void* handle)
{
    if (hsm_abi_tlsio_option_handler_available() && handle != NULL) {
        OptionHandler_Destroy((hsm_tlsio_option_handler)handle);
    }
}
