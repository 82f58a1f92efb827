//! The versioned signer table: open a key from an alias-key token, describe it, sign with it.
//! Shared by the TLS bridge (which gets the token from the SDK's `get_key`) and vendors.
//!
//! The table starts with `version` and `struct_size`; fields are only ever appended, so a
//! caller compiled against an older header reads a prefix that keeps its meaning.
#![allow(non_camel_case_types)]
//!
//! This file holds the C types and the key description, which the vendor layer below the
//! registry uses as well; the exports, which open keys through `crate::registry`, are in
//! `ffi::signer_exports` (both re-exported by `ffi::signer`).
use std::ffi::{c_char, c_int, c_uchar};
use std::sync::Arc;

use hsm_core::{Curve, Error, KeyAlgorithm, SigningKey};

use super::handle::HandleKind;

/// Version of `HSM_ABI_SIGNER_TABLE` this library fills in.
pub const HSM_ABI_SIGNER_TABLE_VERSION: u32 = 1;
/// `HSM_ABI_KEY_INFO.algorithm`: an elliptic-curve key (`curve_or_bits` 256 or 384).
pub const HSM_ABI_KEY_ALGORITHM_EC: u32 = 1;
/// `HSM_ABI_KEY_INFO.algorithm`: an RSA key (`curve_or_bits` = modulus bits).
pub const HSM_ABI_KEY_ALGORITHM_RSA: u32 = 2;
/// Capacity of `HSM_ABI_KEY_INFO.schemes`.
pub const HSM_ABI_MAX_SCHEMES: usize = 8;

/// An open key (opaque to C).
pub struct HSM_ABI_SIGNER {
    pub(super) key: Arc<dyn SigningKey>,
}

impl HandleKind for HSM_ABI_SIGNER {
    const NAME: &'static str = "signer";
}

/// What a key is and which schemes it signs with.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HSM_ABI_KEY_INFO {
    /// Set by the caller to `sizeof(HSM_ABI_KEY_INFO)`; the library writes its own size back.
    pub struct_size: u32,
    /// `HSM_ABI_KEY_ALGORITHM_EC` or `HSM_ABI_KEY_ALGORITHM_RSA`.
    pub algorithm: u32,
    /// 256 or 384 for EC; the modulus size in bits for RSA.
    pub curve_or_bits: u32,
    /// Number of valid entries of `schemes`.
    pub scheme_count: u32,
    /// TLS SignatureScheme code points (0x0403 ecdsa_secp256r1_sha256, 0x0804 rsa_pss_rsae_sha256,
    /// ...), most preferred first.
    pub schemes: [u32; HSM_ABI_MAX_SCHEMES],
    /// The largest signature the key makes: a `sign` buffer of this size always suffices.
    pub max_signature_len: u32,
}

/// Open a key from an alias-key token (`file:PATH`, an inline PEM private key, and the tokens
/// of the backends built in).
pub type HSM_ABI_SIGNER_OPEN =
    Option<unsafe extern "C" fn(token: *const c_char, out: *mut *mut HSM_ABI_SIGNER) -> c_int>;
/// Describe an open key.
pub type HSM_ABI_SIGNER_KEY_INFO =
    Option<unsafe extern "C" fn(signer: *const HSM_ABI_SIGNER, out: *mut HSM_ABI_KEY_INFO) -> c_int>;
/// Sign `msg` (the whole message, not a digest) with `scheme`. `*sig_len` is the capacity of
/// `sig` on input and the signature length on success. If `sig` is NULL or `*sig_len` is below
/// the key's `max_signature_len`, returns `HSM_ABI_ERR_BUFFER_TOO_SMALL` and sets `*sig_len`
/// to `max_signature_len`. ECDSA signatures are DER.
pub type HSM_ABI_SIGNER_SIGN = Option<
    unsafe extern "C" fn(
        signer: *const HSM_ABI_SIGNER,
        scheme: u32,
        msg: *const c_uchar,
        msg_len: usize,
        sig: *mut c_uchar,
        sig_len: *mut usize,
    ) -> c_int,
>;
/// Close a key; NULL is a no-op.
pub type HSM_ABI_SIGNER_CLOSE = Option<unsafe extern "C" fn(signer: *mut HSM_ABI_SIGNER)>;
/// The key's DER SubjectPublicKeyInfo, malloc'd (release with `free()`).
pub type HSM_ABI_SIGNER_PUBLIC_KEY =
    Option<unsafe extern "C" fn(signer: *const HSM_ABI_SIGNER, spki: *mut *mut c_uchar, spki_len: *mut usize) -> c_int>;

/// The signer table (version 1).
#[repr(C)]
pub struct HSM_ABI_SIGNER_TABLE {
    /// `HSM_ABI_SIGNER_TABLE_VERSION` of the library that filled it.
    pub version: u32,
    /// `sizeof` the table in that library.
    pub struct_size: u32,
    pub open: HSM_ABI_SIGNER_OPEN,
    pub key_info: HSM_ABI_SIGNER_KEY_INFO,
    pub sign: HSM_ABI_SIGNER_SIGN,
    pub close: HSM_ABI_SIGNER_CLOSE,
    pub public_key: HSM_ABI_SIGNER_PUBLIC_KEY,
}

/// Build the key description of `key`.
pub fn key_info(key: &dyn SigningKey) -> hsm_core::Result<HSM_ABI_KEY_INFO> {
    let (algorithm, curve_or_bits, max_signature_len) = match key.algorithm() {
        // DER Ecdsa-Sig-Value: SEQUENCE of two INTEGERs of up to n+1 bytes each.
        KeyAlgorithm::Ec(Curve::P256) => (HSM_ABI_KEY_ALGORITHM_EC, 256, 72),
        KeyAlgorithm::Ec(Curve::P384) => (HSM_ABI_KEY_ALGORITHM_EC, 384, 104),
        KeyAlgorithm::Rsa { bits } => (HSM_ABI_KEY_ALGORITHM_RSA, bits, bits.div_ceil(8)),
        other => {
            return Err(Error::unsupported(
                "the signer table",
                format!("describing a key of algorithm {other:?}"),
            ));
        }
    };
    let schemes = key.schemes();
    let mut codes = [0u32; HSM_ABI_MAX_SCHEMES];
    for (slot, scheme) in codes.iter_mut().zip(&schemes) {
        *slot = scheme.code();
    }
    let count = schemes.len().min(HSM_ABI_MAX_SCHEMES);
    Ok(HSM_ABI_KEY_INFO {
        struct_size: size_of::<HSM_ABI_KEY_INFO>() as u32,
        algorithm,
        curve_or_bits,
        scheme_count: u32::try_from(count).map_err(|e| Error::Internal(e.to_string()))?,
        schemes: codes,
        max_signature_len,
    })
}
