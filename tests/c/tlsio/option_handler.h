/* The SDK's OptionHandler API for the tests (see option_handler.c), plus read access to the
 * stored options. Declared with the SDK's names and shapes (optionhandler.h). */
#ifndef OPTIONHANDLER_H
#define OPTIONHANDLER_H

#include <stddef.h>

typedef enum { OPTIONHANDLER_OK, OPTIONHANDLER_ERROR, OPTIONHANDLER_INVALIDARG } OPTIONHANDLER_RESULT;

typedef struct OPTIONHANDLER_HANDLE_DATA_TAG* OPTIONHANDLER_HANDLE;
typedef void* (*pfCloneOption)(const char* name, void* value);
typedef void (*pfDestroyOption)(const char* name, void* value);
typedef int (*pfSetOption)(void* handle, const char* name, void* value);

OPTIONHANDLER_HANDLE OptionHandler_Create(pfCloneOption clone_option, pfDestroyOption destroy_option,
                                          pfSetOption set_option);
OPTIONHANDLER_RESULT OptionHandler_AddOption(OPTIONHANDLER_HANDLE handle, const char* name, void* value);
OPTIONHANDLER_RESULT OptionHandler_FeedOptions(OPTIONHANDLER_HANDLE handle, void* destination);
void OptionHandler_Destroy(OPTIONHANDLER_HANDLE handle);

size_t option_handler_count(OPTIONHANDLER_HANDLE handle);
const char* option_handler_name(OPTIONHANDLER_HANDLE handle, size_t i);
const void* option_handler_value(OPTIONHANDLER_HANDLE handle, size_t i);

#endif
