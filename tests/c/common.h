/* Helpers shared by the C tests of libhsm_abi: checks that count failures, file reading,
 * the library's last error as a string. */
#ifndef HSM_ABI_TEST_COMMON_H
#define HSM_ABI_TEST_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsm_abi.h"
#include "hsm_client_data.h"

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        g_checks++;                                                                        \
        if (!(cond)) {                                                                     \
            g_failures++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, last_error());                                                  \
        }                                                                                  \
    } while (0)

/* This thread's last error message of the library (static buffer, truncated). */
static inline const char* last_error(void)
{
    static char buf[1024];
    /* Truncated to the buffer if longer; always NUL-terminated. */
    (void)hsm_abi_last_error(buf, sizeof buf);
    return buf;
}

static inline int last_error_has(const char* needle)
{
    return strstr(last_error(), needle) != NULL;
}

/* Compare a malloc'd string with an expected one, then free it (NULL is a mismatch). */
static inline int take_equals(char* got, const char* expected)
{
    int same = got != NULL && expected != NULL && strcmp(got, expected) == 0;
    if (!same) {
        fprintf(stderr, "  got:      %s\n  expected: %s\n", got ? got : "(NULL)", expected ? expected : "(NULL)");
    }
    free(got);
    return same;
}

/* Read a whole file into a malloc'd NUL-terminated string; NULL on error. */
static inline char* read_file(const char* path, size_t* len_out)
{
    FILE* f = fopen(path, "rb");
    char* buf = NULL;
    long len;
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf != NULL && fread(buf, 1, (size_t)len, f) == (size_t)len) {
            buf[len] = '\0';
            if (len_out != NULL) {
                *len_out = (size_t)len;
            }
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static inline int write_file(const char* path, const unsigned char* data, size_t len)
{
    FILE* f = fopen(path, "wb");
    int ok;
    if (f == NULL) {
        return 0;
    }
    ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static inline int finish(const char* name)
{
    printf("%s: %d checks, %d failed\n", name, g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}

#endif
