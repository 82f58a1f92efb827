//! Version 1 of the vendor table: the C struct a vendor fills, its function types and
//! constants, nothing else (a later version gets a file of its own). See the module `ffi::vendor`
//! for the memory and threading rules.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uchar, c_void};

use crate::ffi::signer_types::HSM_ABI_KEY_INFO;

/// Version of `HSM_ABI_VENDOR_TABLE` described by this header. A vendor sets `version` to the
/// version its code implements; the library accepts 1 up to this value.
pub const HSM_ABI_VENDOR_TABLE_VERSION: u32 = 1;
/// The symbol a vendor shared object exports: a function of type `HSM_ABI_VENDOR_GET_TABLE`.
pub const HSM_ABI_VENDOR_ENTRY_POINT: &str = "hsm_abi_vendor_table";

/// Open the identity named by `identity` (a vendor-defined, NUL-terminated string that holds no
/// secret: a slot, a label, a path). On success store the vendor's handle in `*out` (any
/// non-NULL value) and return 0. Mandatory.
pub type HSM_ABI_VENDOR_OPEN = Option<unsafe extern "C" fn(identity: *const c_char, out: *mut *mut c_void) -> c_int>;
/// Release a handle from `open`; NULL is a no-op. Mandatory.
pub type HSM_ABI_VENDOR_CLOSE = Option<unsafe extern "C" fn(handle: *mut c_void)>;
/// Produce bytes into a caller buffer (see the memory rule of `HSM_ABI_VENDOR_TABLE`).
pub type HSM_ABI_VENDOR_GET_BYTES =
    Option<unsafe extern "C" fn(handle: *mut c_void, buf: *mut c_uchar, len: *mut usize) -> c_int>;
/// Describe the identity's key: write every field of `*out` (the caller set `out->struct_size`
/// to its size, at least `sizeof(HSM_ABI_KEY_INFO)`; leave it as it is).
pub type HSM_ABI_VENDOR_KEY_INFO =
    Option<unsafe extern "C" fn(handle: *mut c_void, out: *mut HSM_ABI_KEY_INFO) -> c_int>;
/// Sign `msg` (the whole message, not a digest) with `scheme` (a TLS SignatureScheme code point
/// listed by `key_info`); the signature goes into a caller buffer. ECDSA signatures are DER.
pub type HSM_ABI_VENDOR_SIGN = Option<
    unsafe extern "C" fn(
        handle: *mut c_void,
        scheme: u32,
        msg: *const c_uchar,
        msg_len: usize,
        sig: *mut c_uchar,
        sig_len: *mut usize,
    ) -> c_int,
>;
/// A static, NUL-terminated explanation of one of the vendor's own return codes, or NULL.
pub type HSM_ABI_VENDOR_ERROR_STRING = Option<unsafe extern "C" fn(code: c_int) -> *const c_char>;
/// Take input bytes, no output (the TPM activation blob).
pub type HSM_ABI_VENDOR_PUT_BYTES =
    Option<unsafe extern "C" fn(handle: *mut c_void, data: *const c_uchar, data_len: usize) -> c_int>;
/// Take input bytes, produce bytes into a caller buffer.
pub type HSM_ABI_VENDOR_TRANSFORM = Option<
    unsafe extern "C" fn(
        handle: *mut c_void,
        data: *const c_uchar,
        data_len: usize,
        buf: *mut c_uchar,
        len: *mut usize,
    ) -> c_int,
>;
/// HMAC-SHA256 of `data` with the identity's symmetric key into the caller's 32-byte `mac`.
pub type HSM_ABI_VENDOR_HMAC = Option<
    unsafe extern "C" fn(handle: *mut c_void, data: *const c_uchar, data_len: usize, mac: *mut c_uchar) -> c_int,
>;

/// A vendor backend (version 1). `version` and `struct_size` come first and fields are only
/// ever appended. Return codes: 0 success; `HSM_ABI_ERR_BUFFER_TOO_SMALL` (size query, see
/// below); `HSM_ABI_ERR_INVALID_ARGUMENT` for NULL or bad arguments; `HSM_ABI_ERR_UNSUPPORTED`
/// when this identity cannot do the operation; any other non-zero value is the vendor's own
/// error code (explained by `error_string` when set).
///
/// Memory: output buffers belong to the caller. `*len` is the capacity of `buf` on entry (0
/// when `buf` is NULL); when the output does not fit, store the needed size in `*len`, write
/// nothing and return `HSM_ABI_ERR_BUFFER_TOO_SMALL`; on success write the output and store its
/// length in `*len`. Text outputs are UTF-8 without a terminating NUL. The vendor never returns
/// memory for the library to free. Input pointers are only valid during the call.
///
/// Threading: `open` / `close` are not concurrent with other calls on the same handle; every
/// other function may run concurrently from several threads, on the same handle too.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HSM_ABI_VENDOR_TABLE {
    /// The `HSM_ABI_VENDOR_TABLE_VERSION` the vendor implements (1).
    pub version: u32,
    /// `sizeof(HSM_ABI_VENDOR_TABLE)` as the vendor compiled it.
    pub struct_size: u32,
    /// Mandatory. Static NUL-terminated name of the backend (letters, digits, `-`, `_`, `.`);
    /// a registered table is selected by it (`registered = "name"`). Copied by the library.
    pub name: *const c_char,
    /// Mandatory: open an identity.
    pub open: HSM_ABI_VENDOR_OPEN,
    /// Mandatory: close an identity.
    pub close: HSM_ABI_VENDOR_CLOSE,
    /// Mandatory: the PEM certificate chain, leaf first (caller buffer).
    pub get_certificate_chain: HSM_ABI_VENDOR_GET_BYTES,
    /// Mandatory: the common name of the leaf certificate, the registration id (caller buffer).
    pub get_common_name: HSM_ABI_VENDOR_GET_BYTES,
    /// Mandatory: algorithm, curve or modulus size, schemes and maximum signature size of the
    /// leaf certificate's key (fills the caller's structure).
    pub key_info: HSM_ABI_VENDOR_KEY_INFO,
    /// Mandatory: sign with the leaf certificate's key (caller buffer; a buffer of
    /// `max_signature_len` bytes always suffices).
    pub sign: HSM_ABI_VENDOR_SIGN,
    /// Optional: the key's DER SubjectPublicKeyInfo (caller buffer). NULL: the library takes it
    /// from the leaf certificate.
    pub get_public_key: HSM_ABI_VENDOR_GET_BYTES,
    /// Optional: explain the vendor's own error codes (returns static strings, never freed).
    pub error_string: HSM_ABI_VENDOR_ERROR_STRING,
    /// TPM group (all four set, or all four NULL): marshalled TPM2B_PUBLIC of the endorsement
    /// key with its 2-byte size (caller buffer).
    pub get_endorsement_key: HSM_ABI_VENDOR_GET_BYTES,
    /// TPM group: marshalled TPM2B_PUBLIC of the storage root key (caller buffer).
    pub get_storage_root_key: HSM_ABI_VENDOR_GET_BYTES,
    /// TPM group: import the identity key from the DPS activation blob (input only).
    pub activate_identity_key: HSM_ABI_VENDOR_PUT_BYTES,
    /// TPM group: HMAC-SHA256 of `data` with the activated identity key (caller buffer).
    pub sign_with_identity: HSM_ABI_VENDOR_TRANSFORM,
    /// Symmetric group (this and `hmac_sha256` set, or both NULL): the registration id of the
    /// symmetric-key identity (caller buffer).
    pub get_registration_id: HSM_ABI_VENDOR_GET_BYTES,
    /// Symmetric group, optional inside it: the raw symmetric key (caller buffer). NULL when the
    /// key never leaves the device (then the SDK's get_symm_key reports "unsupported").
    pub get_symmetric_key: HSM_ABI_VENDOR_GET_BYTES,
    /// Symmetric group: HMAC-SHA256 with the symmetric key into a 32-byte caller buffer.
    pub hmac_sha256: HSM_ABI_VENDOR_HMAC,
}

/// The entry point of a vendor shared object (exported as `hsm_abi_vendor_table`): returns a
/// pointer to a table that stays valid until the library is unloaded (a `static`).
pub type HSM_ABI_VENDOR_GET_TABLE = Option<unsafe extern "C" fn() -> *const HSM_ABI_VENDOR_TABLE>;
