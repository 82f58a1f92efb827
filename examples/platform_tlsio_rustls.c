/* A Linux platform adapter for the Azure IoT C SDK (azure-c-shared-utility) that makes every
 * transport use the rustls TLS IO of libhsm_abi: TLS client keys stay in the HSM, the SDK
 * hands the TLS layer an alias-key token. Put it in place of c-utility/adapters/platform_linux.c
 * (see "Using the rustls TLS bridge in the C SDK" in README.md). The SDK's headers come first:
 * tlsio_rustls.h then uses the SDK's own xio/tlsio/optionhandler types. */
#include <sys/utsname.h>

#include "azure_c_shared_utility/platform.h"
#include "azure_c_shared_utility/strings.h"
#include "azure_c_shared_utility/xio.h"
#include "azure_c_shared_utility/xlogging.h"
#ifdef USE_HTTP
#include "azure_c_shared_utility/httpapiex.h"
#endif

#include "tlsio_rustls.h"

int platform_init(void)
{
#if defined(USE_HTTP) && !defined(DONT_USE_UPLOADTOBLOB)
    if (HTTPAPIEX_Init() == HTTPAPIEX_ERROR) {
        LogError("HTTPAPIEX_Init failed");
        return MU_FAILURE;
    }
#endif
    /* The rustls TLS IO needs no global initialization. */
    return 0;
}

void platform_deinit(void)
{
#if defined(USE_HTTP) && !defined(DONT_USE_UPLOADTOBLOB)
    HTTPAPIEX_Deinit();
#endif
}

const IO_INTERFACE_DESCRIPTION* platform_get_default_tlsio(void)
{
    return tlsio_rustls_get_interface_description();
}

STRING_HANDLE platform_get_platform_info(PLATFORM_INFO_OPTION options)
{
    struct utsname host;
    (void)options;
    if (uname(&host) != 0) {
        return STRING_construct("(native; Linux; unknown; rustls tlsio)");
    }
    return STRING_construct_sprintf("(native; %s; %s; rustls tlsio)", host.sysname, host.machine);
}
