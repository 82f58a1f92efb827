//! The exports of the signer table (`hsm_abi_signer_*`): open a key from a token through
//! `hsm::registry`, describe it, sign with it. The C types are in `ffi::signer_types`.

use std::ffi::{c_char, c_int, c_uchar};

use hsm_core::{Error, SignatureScheme};

use super::errors::{AbiError, AbiResult, to_code};
use super::handle;
use super::malloc::malloc_bytes;
use super::ptr::{self, Out};
use super::signer_types::{
    HSM_ABI_KEY_INFO, HSM_ABI_SIGNER, HSM_ABI_SIGNER_TABLE, HSM_ABI_SIGNER_TABLE_VERSION, key_info,
};
static SIGNER_TABLE: HSM_ABI_SIGNER_TABLE = HSM_ABI_SIGNER_TABLE {
    version: HSM_ABI_SIGNER_TABLE_VERSION,
    struct_size: size_of::<HSM_ABI_SIGNER_TABLE>() as u32,
    open: Some(hsm_abi_signer_open),
    key_info: Some(hsm_abi_signer_key_info),
    sign: Some(hsm_abi_signer_sign),
    close: Some(hsm_abi_signer_close),
    public_key: Some(hsm_abi_signer_public_key),
};

/// The signer table of this library (static, every field non-NULL).
#[unsafe(no_mangle)]
pub extern "C" fn hsm_abi_signer_table() -> *const HSM_ABI_SIGNER_TABLE {
    ffi_boundary!("hsm_abi_signer_table", { &SIGNER_TABLE })
}

/// Open a key from an alias-key token; on success `*out` is a signer to release with
/// `hsm_abi_signer_close`.
///
/// # Safety
/// `token` is NULL or NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_signer_open(token: *const c_char, out: *mut *mut HSM_ABI_SIGNER) -> c_int {
    ffi_boundary!("hsm_abi_signer_open", {
        // SAFETY: promises of the caller, as documented.
        let r = unsafe { ptr::cstr("token", token).and_then(|t| Ok((t, Out::new("out", out)?))) }.and_then(
            |(token, out)| {
                let key = crate::open_signer(token)?;
                out.write(handle::into_raw(HSM_ABI_SIGNER { key })?.cast());
                Ok(())
            },
        );
        to_code("hsm_abi_signer_open", r.map_err(Into::into))
    })
}

/// Describe an open key. `out->struct_size` must be at least `sizeof(HSM_ABI_KEY_INFO)` of
/// this library version; the whole structure is written on success.
///
/// # Safety
/// `signer` may be anything (a closed or foreign handle is reported) and is not closed during
/// the call; `out` is NULL or writable
/// with `struct_size` initialized.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_signer_key_info(signer: *const HSM_ABI_SIGNER, out: *mut HSM_ABI_KEY_INFO) -> c_int {
    ffi_boundary!("hsm_abi_signer_key_info", {
        // SAFETY: promises of the caller, as documented.
        let r = unsafe { signer_key_info(signer, out) };
        to_code("hsm_abi_signer_key_info", r)
    })
}

/// # Safety
/// As for [`hsm_abi_signer_key_info`].
unsafe fn signer_key_info(signer: *const HSM_ABI_SIGNER, out: *mut HSM_ABI_KEY_INFO) -> AbiResult<()> {
    // SAFETY: forwarded promises.
    let (signer, out) = unsafe { (handle::get::<HSM_ABI_SIGNER>(signer.cast())?, Out::new("out", out)?) };
    // SAFETY: the caller initialized `struct_size`, the first field; only it is read.
    let given = unsafe { std::ptr::addr_of!((*out.as_ptr()).struct_size).read() } as usize;
    let needed = size_of::<HSM_ABI_KEY_INFO>();
    if given < needed {
        return Err(AbiError::StructSize {
            what: "HSM_ABI_KEY_INFO",
            given,
            needed,
        });
    }
    out.write(key_info(signer.key.as_ref())?);
    Ok(())
}

/// Sign with an open key; see `HSM_ABI_SIGNER_SIGN` for the buffer rules.
///
/// # Safety
/// `signer` may be anything (reported unless an open signer) and is not closed during the
/// call; `msg` is NULL (with `msg_len` 0) or `msg_len` readable
/// bytes; `sig` is NULL or `*sig_len` writable bytes; `sig_len` is NULL or an initialized,
/// writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_signer_sign(
    signer: *const HSM_ABI_SIGNER,
    scheme: u32,
    msg: *const c_uchar,
    msg_len: usize,
    sig: *mut c_uchar,
    sig_len: *mut usize,
) -> c_int {
    ffi_boundary!("hsm_abi_signer_sign", {
        // SAFETY: promises of the caller, as documented.
        let r = unsafe { sign(signer, scheme, msg, msg_len, sig, sig_len) };
        to_code("hsm_abi_signer_sign", r)
    })
}

/// # Safety
/// As for [`hsm_abi_signer_sign`].
unsafe fn sign(
    signer: *const HSM_ABI_SIGNER,
    scheme: u32,
    msg: *const c_uchar,
    msg_len: usize,
    sig: *mut c_uchar,
    sig_len: *mut usize,
) -> AbiResult<()> {
    // SAFETY: forwarded promises.
    let (signer, msg, sig_len) = unsafe {
        (
            handle::get::<HSM_ABI_SIGNER>(signer.cast())?,
            ptr::slice("msg", msg, msg_len)?,
            Out::new("sig_len", sig_len)?,
        )
    };
    let scheme = SignatureScheme::try_from(scheme)?;
    if !signer.key.schemes().contains(&scheme) {
        return Err(Error::unsupported(
            format!("this {:?} key", signer.key.algorithm()),
            format!("signature scheme {scheme}"),
        )
        .into());
    }
    let needed = key_info(signer.key.as_ref())?.max_signature_len as usize;
    // SAFETY: the caller initialized `*sig_len`.
    let capacity = unsafe { sig_len.read() };
    if sig.is_null() || capacity < needed {
        sig_len.write(needed);
        return Err(AbiError::BufferTooSmall {
            what: "sig",
            given: if sig.is_null() { 0 } else { capacity },
            needed,
        });
    }
    let signature = signer.key.sign(scheme, msg)?;
    if signature.len() > capacity {
        return Err(Error::Internal(format!(
            "a {scheme} signature of {} bytes exceeds the maximum of {needed}",
            signature.len()
        ))
        .into());
    }
    // SAFETY: `sig` is non-NULL with `capacity` writable bytes (caller's promise).
    let out = unsafe { ptr::slice_mut("sig", sig, capacity)? };
    out[..signature.len()].copy_from_slice(&signature);
    sig_len.write(signature.len());
    Ok(())
}

/// Close an open key; NULL is a no-op. A closed, foreign or wrong-kind handle is reported
/// (`hsm_abi_last_error`) and nothing is freed.
///
/// # Safety
/// `signer` is not in use by another thread during this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_signer_close(signer: *mut HSM_ABI_SIGNER) {
    ffi_boundary!("hsm_abi_signer_close", {
        // SAFETY: the handle is looked up before anything is freed; the caller does not use
        // it on another thread meanwhile.
        let r = unsafe { handle::destroy::<HSM_ABI_SIGNER>(signer.cast_const().cast()) };
        to_code("hsm_abi_signer_close", r.map_err(Into::into));
    })
}

/// The DER SubjectPublicKeyInfo of an open key, malloc'd; release `*spki` with `free()`.
///
/// # Safety
/// `signer` may be anything (reported unless an open signer) and is not closed during the
/// call; `spki` and `spki_len` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_signer_public_key(
    signer: *const HSM_ABI_SIGNER,
    spki: *mut *mut c_uchar,
    spki_len: *mut usize,
) -> c_int {
    ffi_boundary!("hsm_abi_signer_public_key", {
        // SAFETY: promises of the caller, as documented.
        let r = unsafe { signer_public_key(signer, spki, spki_len) };
        to_code("hsm_abi_signer_public_key", r)
    })
}

/// # Safety
/// As for [`hsm_abi_signer_public_key`].
unsafe fn signer_public_key(
    signer: *const HSM_ABI_SIGNER,
    spki: *mut *mut c_uchar,
    spki_len: *mut usize,
) -> AbiResult<()> {
    // SAFETY: forwarded promises.
    let (signer, spki, spki_len) = unsafe {
        (
            handle::get::<HSM_ABI_SIGNER>(signer.cast())?,
            Out::new("spki", spki)?,
            Out::new("spki_len", spki_len)?,
        )
    };
    let der = signer.key.public_key_spki()?;
    let p = malloc_bytes(&der)?;
    spki.write(p);
    spki_len.write(der.len());
    Ok(())
}
