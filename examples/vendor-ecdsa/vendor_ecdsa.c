/* An example hsm-abi vendor backend in plain C: a software ECDSA P-256 key through OpenSSL's
 * libcrypto, standing in for a secure element. A real device keeps the key inside; the shape of
 * the code is the same.
 *
 * Identity string (passed to open): a directory holding `chain.pem` (leaf first) and `key.pem`
 * (the leaf's P-256 private key).
 *
 * Memory rule of the table: the caller owns every output buffer. `*len` is its capacity on entry;
 * a NULL or too small buffer gets the needed size in `*len` and HSM_ABI_ERR_BUFFER_TOO_SMALL.
 * Threading: the EVP_PKEY is only read after open, and each sign uses its own EVP_MD_CTX, so all
 * functions but open/close may run concurrently.
 *
 * Build: see Makefile (`make OUT=dir` gives dir/libvendor_ecdsa.so). Define
 * VENDOR_ECDSA_ENTRY to rename the entry point when this file is compiled into a program that
 * registers the table itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "hsm_abi.h"

#ifndef VENDOR_ECDSA_ENTRY
#define VENDOR_ECDSA_ENTRY hsm_abi_vendor_table
#endif

/* The vendor's own error codes (outside the library's generic ones). */
enum {
    VENDOR_ERR_READ = 1000,    /* chain.pem or key.pem cannot be read */
    VENDOR_ERR_KEY = 1001,     /* the key is not a P-256 key or does not match the certificate */
    VENDOR_ERR_CRYPTO = 1002,  /* libcrypto failed */
    VENDOR_ERR_MEMORY = 1003,  /* out of memory */
};

#define P256_MAX_SIG 72 /* DER SEQUENCE of two INTEGERs of up to 33 bytes */

typedef struct vendor_identity {
    EVP_PKEY* key;
    char* chain_pem;
    size_t chain_len;
    char common_name[256];
    unsigned char* spki;
    size_t spki_len;
} vendor_identity;

/* The caller-buffer rule in one place. */
static int put_bytes(const void* data, size_t n, unsigned char* buf, size_t* len)
{
    if (len == NULL) {
        return HSM_ABI_ERR_INVALID_ARGUMENT;
    }
    if (buf == NULL || *len < n) {
        *len = n;
        return HSM_ABI_ERR_BUFFER_TOO_SMALL;
    }
    memcpy(buf, data, n);
    *len = n;
    return HSM_ABI_OK;
}

static char* read_text(const char* dir, const char* name, size_t* out_len)
{
    char path[4096];
    FILE* f;
    char* buf = NULL;
    long n;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        return NULL;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            *out_len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static void identity_free(vendor_identity* id)
{
    if (id != NULL) {
        EVP_PKEY_free(id->key);
        free(id->chain_pem);
        OPENSSL_free(id->spki);
        free(id);
    }
}

static int load(vendor_identity* id, const char* dir)
{
    size_t key_len = 0;
    char* key_pem = read_text(dir, "key.pem", &key_len);
    BIO* bio;
    X509* leaf;
    char group[64];
    int len, rc = HSM_ABI_OK;

    id->chain_pem = read_text(dir, "chain.pem", &id->chain_len);
    if (key_pem == NULL || id->chain_pem == NULL) {
        free(key_pem);
        return VENDOR_ERR_READ;
    }
    bio = BIO_new_mem_buf(key_pem, (int)key_len);
    id->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(key_pem, key_len);
    free(key_pem);
    if (id->key == NULL || !EVP_PKEY_is_a(id->key, "EC") ||
        !EVP_PKEY_get_utf8_string_param(id->key, "group", group, sizeof group, NULL) ||
        strcmp(group, "prime256v1") != 0) {
        return VENDOR_ERR_KEY;
    }
    bio = BIO_new_mem_buf(id->chain_pem, (int)id->chain_len);
    leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (leaf == NULL) {
        return VENDOR_ERR_READ;
    }
    if (X509_check_private_key(leaf, id->key) != 1) {
        rc = VENDOR_ERR_KEY;
    } else if (X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, id->common_name,
                                         sizeof id->common_name) <= 0) {
        rc = VENDOR_ERR_READ;
    }
    X509_free(leaf);
    if (rc != HSM_ABI_OK) {
        return rc;
    }
    len = i2d_PUBKEY(id->key, &id->spki);
    if (len <= 0) {
        return VENDOR_ERR_CRYPTO;
    }
    id->spki_len = (size_t)len;
    return HSM_ABI_OK;
}

static int vendor_open(const char* identity, void** out)
{
    vendor_identity* id;
    int rc;
    if (identity == NULL || out == NULL || identity[0] == '\0') {
        return HSM_ABI_ERR_INVALID_ARGUMENT;
    }
    id = calloc(1, sizeof *id);
    if (id == NULL) {
        return VENDOR_ERR_MEMORY;
    }
    rc = load(id, identity);
    if (rc != HSM_ABI_OK) {
        identity_free(id);
        return rc;
    }
    *out = id;
    return HSM_ABI_OK;
}

static void vendor_close(void* handle)
{
    identity_free(handle);
}

static int vendor_chain(void* handle, unsigned char* buf, size_t* len)
{
    const vendor_identity* id = handle;
    return id == NULL ? HSM_ABI_ERR_INVALID_ARGUMENT : put_bytes(id->chain_pem, id->chain_len, buf, len);
}

static int vendor_common_name(void* handle, unsigned char* buf, size_t* len)
{
    const vendor_identity* id = handle;
    return id == NULL ? HSM_ABI_ERR_INVALID_ARGUMENT
                      : put_bytes(id->common_name, strlen(id->common_name), buf, len);
}

static int vendor_public_key(void* handle, unsigned char* buf, size_t* len)
{
    const vendor_identity* id = handle;
    return id == NULL ? HSM_ABI_ERR_INVALID_ARGUMENT : put_bytes(id->spki, id->spki_len, buf, len);
}

static int vendor_key_info(void* handle, HSM_ABI_KEY_INFO* out)
{
    if (handle == NULL || out == NULL || out->struct_size < sizeof *out) {
        return HSM_ABI_ERR_INVALID_ARGUMENT;
    }
    out->algorithm = HSM_ABI_KEY_ALGORITHM_EC;
    out->curve_or_bits = 256;
    out->scheme_count = 1;
    memset(out->schemes, 0, sizeof out->schemes);
    out->schemes[0] = 0x0403; /* ecdsa_secp256r1_sha256 */
    out->max_signature_len = P256_MAX_SIG;
    return HSM_ABI_OK;
}

static int vendor_sign(void* handle, uint32_t scheme, const unsigned char* msg, size_t msg_len, unsigned char* sig,
                       size_t* sig_len)
{
    const vendor_identity* id = handle;
    EVP_MD_CTX* ctx;
    size_t n;
    int ok;
    if (id == NULL || sig_len == NULL || (msg == NULL && msg_len > 0)) {
        return HSM_ABI_ERR_INVALID_ARGUMENT;
    }
    if (scheme != 0x0403) {
        return HSM_ABI_ERR_UNSUPPORTED;
    }
    if (sig == NULL || *sig_len < P256_MAX_SIG) {
        *sig_len = P256_MAX_SIG;
        return HSM_ABI_ERR_BUFFER_TOO_SMALL;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return VENDOR_ERR_MEMORY;
    }
    n = *sig_len;
    ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, id->key) == 1 &&
         EVP_DigestSign(ctx, sig, &n, msg_len ? msg : (const unsigned char*)"", msg_len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return VENDOR_ERR_CRYPTO;
    }
    *sig_len = n;
    return HSM_ABI_OK;
}

static const char* vendor_error_string(int code)
{
    switch (code) {
    case VENDOR_ERR_READ: return "vendor-ecdsa: chain.pem or key.pem cannot be read from the identity directory";
    case VENDOR_ERR_KEY: return "vendor-ecdsa: key.pem is not a P-256 key matching the leaf certificate";
    case VENDOR_ERR_CRYPTO: return "vendor-ecdsa: libcrypto failed";
    case VENDOR_ERR_MEMORY: return "vendor-ecdsa: out of memory";
    default: return NULL;
    }
}

static const HSM_ABI_VENDOR_TABLE TABLE = {
    HSM_ABI_VENDOR_TABLE_VERSION,
    sizeof(HSM_ABI_VENDOR_TABLE),
    "vendor-ecdsa",
    vendor_open,
    vendor_close,
    vendor_chain,
    vendor_common_name,
    vendor_key_info,
    vendor_sign,
    vendor_public_key,
    vendor_error_string,
    /* No TPM group: the SDK's TPM interface reports "unsupported" for this backend. */
    NULL,
    NULL,
    NULL,
    NULL,
    /* No symmetric group. */
    NULL,
    NULL,
    NULL,
};

const HSM_ABI_VENDOR_TABLE* VENDOR_ECDSA_ENTRY(void);

const HSM_ABI_VENDOR_TABLE* VENDOR_ECDSA_ENTRY(void)
{
    return &TABLE;
}
