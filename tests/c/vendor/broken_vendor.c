/* Deliberately broken vendor backends, built from the example (examples/vendor-ecdsa) with one
 * fault each, chosen by -DBROKEN=<n>:
 *   1 wrong version          2 struct_size too small     3 NULL mandatory field (sign)
 *   4 incomplete TPM group   5 missing entry point       6 bad signature (one byte flipped)
 *   7 length larger than the buffer (get_certificate_chain)
 *   8 writes past the buffer (get_common_name)             9 garbage key_info (RSA 1024)
 *  10 "too small" forever (get_certificate_chain)
 * The library must refuse each one or report it as an error, never crash. */
#define VENDOR_ECDSA_ENTRY vendor_ecdsa_good_table
#include "vendor_ecdsa.c"

#ifndef BROKEN
#error "define BROKEN"
#endif

/* The faults (external, so that every variant compiles without unused-function warnings). */
int flip_sign(void* h, uint32_t scheme, const unsigned char* msg, size_t msg_len, unsigned char* sig,
              size_t* sig_len);
int lying_chain(void* h, unsigned char* buf, size_t* len);
int overrunning_common_name(void* h, unsigned char* buf, size_t* len);
int garbage_key_info(void* h, HSM_ABI_KEY_INFO* out);
int greedy_chain(void* h, unsigned char* buf, size_t* len);

int flip_sign(void* h, uint32_t scheme, const unsigned char* msg, size_t msg_len, unsigned char* sig,
                     size_t* sig_len)
{
    int rc = vendor_sign(h, scheme, msg, msg_len, sig, sig_len);
    if (rc == HSM_ABI_OK && *sig_len > 8) {
        sig[*sig_len - 3] ^= 0x5a;
    }
    return rc;
}

int lying_chain(void* h, unsigned char* buf, size_t* len)
{
    int rc = vendor_chain(h, buf, len);
    if (rc == HSM_ABI_OK) {
        *len += 100;
    }
    return rc;
}

int overrunning_common_name(void* h, unsigned char* buf, size_t* len)
{
    size_t cap = len ? *len : 0;
    int rc = vendor_common_name(h, buf, len);
    if (rc == HSM_ABI_OK) {
        memset(buf + cap, 'X', 4); /* past the capacity it was given */
    }
    return rc;
}

int garbage_key_info(void* h, HSM_ABI_KEY_INFO* out)
{
    int rc = vendor_key_info(h, out);
    if (rc == HSM_ABI_OK) {
        out->algorithm = HSM_ABI_KEY_ALGORITHM_RSA;
        out->curve_or_bits = 1024;
    }
    return rc;
}

int greedy_chain(void* h, unsigned char* buf, size_t* len)
{
    (void)h;
    (void)buf;
    if (len == NULL) {
        return HSM_ABI_ERR_INVALID_ARGUMENT;
    }
    *len += 1; /* always one more than given */
    return HSM_ABI_ERR_BUFFER_TOO_SMALL;
}

#if BROKEN != 5
static HSM_ABI_VENDOR_TABLE broken;

const HSM_ABI_VENDOR_TABLE* hsm_abi_vendor_table(void);

const HSM_ABI_VENDOR_TABLE* hsm_abi_vendor_table(void)
{
    broken = *vendor_ecdsa_good_table();
#if BROKEN == 1
    broken.version = 99;
#elif BROKEN == 2
    broken.struct_size = 24;
#elif BROKEN == 3
    broken.sign = NULL;
#elif BROKEN == 4
    broken.get_endorsement_key = vendor_chain;
#elif BROKEN == 6
    broken.sign = flip_sign;
#elif BROKEN == 7
    broken.get_certificate_chain = lying_chain;
#elif BROKEN == 8
    broken.get_common_name = overrunning_common_name;
#elif BROKEN == 9
    broken.key_info = garbage_key_info;
#elif BROKEN == 10
    broken.get_certificate_chain = greedy_chain;
#endif
    return &broken;
}
#endif
