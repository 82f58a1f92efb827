/* Eight threads create, use and destroy x509 handles concurrently, and share one more handle.
 * usage: test_threads CONFIG CHAIN_PEM KEY_PEM */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "common.h"

#define THREADS 8
#define ROUNDS 25

static const char* g_chain;
static const char* g_key;
static HSM_CLIENT_HANDLE g_shared;

static void* worker(void* arg)
{
    const HSM_CLIENT_X509_INTERFACE* x509 = hsm_client_x509_interface();
    long* bad = arg;
    int i;
    for (i = 0; i < ROUNDS; i++) {
        HSM_CLIENT_HANDLE h = x509->hsm_client_x509_create();
        char *cert, *key;
        if (h == NULL) {
            (*bad)++;
            continue;
        }
        cert = x509->hsm_client_get_cert(h);
        key = x509->hsm_client_get_key(h);
        if (cert == NULL || key == NULL || strcmp(cert, g_chain) != 0 || strcmp(key, g_key) != 0) {
            (*bad)++;
        }
        free(cert);
        free(key);
        x509->hsm_client_x509_destroy(h);
        cert = x509->hsm_client_get_cert(g_shared);
        if (cert == NULL || strcmp(cert, g_chain) != 0) {
            (*bad)++;
        }
        free(cert);
    }
    return NULL;
}

int main(int argc, char** argv)
{
    pthread_t threads[THREADS];
    long bad[THREADS];
    char *chain, *key;
    int i;

    if (argc != 4) {
        fprintf(stderr, "usage: %s CONFIG CHAIN_PEM KEY_PEM\n", argv[0]);
        return 2;
    }
    chain = read_file(argv[2], NULL);
    key = read_file(argv[3], NULL);
    if (chain == NULL || key == NULL) {
        return 2;
    }
    g_chain = chain;
    g_key = key;
    CHECK(hsm_client_x509_init() == 0);
    CHECK(hsm_abi_configure_file(argv[1]) == HSM_ABI_OK);
    g_shared = hsm_client_x509_interface()->hsm_client_x509_create();
    CHECK(g_shared != NULL);
    for (i = 0; i < THREADS; i++) {
        bad[i] = 0;
        CHECK(pthread_create(&threads[i], NULL, worker, &bad[i]) == 0);
    }
    for (i = 0; i < THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(bad[i] == 0);
    }
    hsm_client_x509_interface()->hsm_client_x509_destroy(g_shared);
    hsm_abi_configure_clear();
    hsm_client_x509_deinit();
    free(chain);
    free(key);
    return finish("test_threads");
}
