/* The SDK's OptionHandler API (azure-c-shared-utility optionhandler.h: Create, AddOption,
 * FeedOptions, Destroy), implemented for the tests from its documented contract, so that a test
 * program has the functions libhsm_abi references weakly, as a program linked with the SDK does.
 * A handler keeps (name, clone) pairs; FeedOptions calls setOption for each, in order. */
#include "option_handler.h"

#include <stdlib.h>
#include <string.h>

typedef struct OPTION_TAG {
    char* name;
    void* value;
    struct OPTION_TAG* next;
} OPTION;

struct OPTIONHANDLER_HANDLE_DATA_TAG {
    pfCloneOption clone_option;
    pfDestroyOption destroy_option;
    pfSetOption set_option;
    OPTION* first;
    OPTION* last;
};

OPTIONHANDLER_HANDLE OptionHandler_Create(pfCloneOption clone_option, pfDestroyOption destroy_option,
                                          pfSetOption set_option)
{
    OPTIONHANDLER_HANDLE h;
    if (clone_option == NULL || destroy_option == NULL || set_option == NULL) {
        return NULL;
    }
    h = calloc(1, sizeof *h);
    if (h != NULL) {
        h->clone_option = clone_option;
        h->destroy_option = destroy_option;
        h->set_option = set_option;
    }
    return h;
}

OPTIONHANDLER_RESULT OptionHandler_AddOption(OPTIONHANDLER_HANDLE h, const char* name, void* value)
{
    OPTION* o;
    if (h == NULL || name == NULL || value == NULL) {
        return OPTIONHANDLER_INVALIDARG;
    }
    o = calloc(1, sizeof *o);
    if (o == NULL) {
        return OPTIONHANDLER_ERROR;
    }
    o->name = strdup(name);
    o->value = h->clone_option(name, value);
    if (o->name == NULL || o->value == NULL) {
        free(o->name);
        free(o);
        return OPTIONHANDLER_ERROR;
    }
    if (h->last != NULL) {
        h->last->next = o;
    } else {
        h->first = o;
    }
    h->last = o;
    return OPTIONHANDLER_OK;
}

OPTIONHANDLER_RESULT OptionHandler_FeedOptions(OPTIONHANDLER_HANDLE h, void* destination)
{
    OPTION* o;
    if (h == NULL || destination == NULL) {
        return OPTIONHANDLER_INVALIDARG;
    }
    for (o = h->first; o != NULL; o = o->next) {
        if (h->set_option(destination, o->name, o->value) != 0) {
            return OPTIONHANDLER_ERROR;
        }
    }
    return OPTIONHANDLER_OK;
}

void OptionHandler_Destroy(OPTIONHANDLER_HANDLE h)
{
    OPTION* o;
    if (h == NULL) {
        return;
    }
    o = h->first;
    while (o != NULL) {
        OPTION* next = o->next;
        h->destroy_option(o->name, o->value);
        free(o->name);
        free(o);
        o = next;
    }
    free(h);
}

size_t option_handler_count(OPTIONHANDLER_HANDLE h)
{
    size_t n = 0;
    const OPTION* o;
    for (o = h != NULL ? h->first : NULL; o != NULL; o = o->next) {
        n++;
    }
    return n;
}

const char* option_handler_name(OPTIONHANDLER_HANDLE h, size_t i)
{
    const OPTION* o = h != NULL ? h->first : NULL;
    while (o != NULL && i-- > 0) {
        o = o->next;
    }
    return o != NULL ? o->name : NULL;
}

const void* option_handler_value(OPTIONHANDLER_HANDLE h, size_t i)
{
    const OPTION* o = h != NULL ? h->first : NULL;
    while (o != NULL && i-- > 0) {
        o = o->next;
    }
    return o != NULL ? o->value : NULL;
}
