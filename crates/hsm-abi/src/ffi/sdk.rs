//! The Azure IoT C SDK's custom HSM interface (`hsm_client_data.h`): its type names, its three
//! interface tables in the SDK's field order, and the seven functions the SDK links against.
//!
//! `create` takes no argument, so each handle is opened from the library's global
//! configuration at create time. Calls on one handle are serialized, so a handle may be shared
//! between threads; `destroy` must not race with other calls on the same handle.
//!
//! Key interface, `set_symm_key_info(handle, reg_name, symm_key)`: NULL for both keeps the
//! configured values. A non-NULL value replaces the configured one on that handle only, as
//! given: a registration id set here is used as is, and nothing is re-derived from a
//! configured group key (pass the device key you want together with the registration id).
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uchar, c_void};
use std::sync::{Arc, Mutex, MutexGuard};

use hsm_core::{Error, SasSigner, SymmetricIdentity, X509Identity};
use zeroize::Zeroizing;

use super::errors::{AbiResult, to_code, to_ptr};
use super::handle::{self, HandleKind};
use super::malloc::{malloc_bytes, malloc_cstr};
use super::ptr::{self, Out};
use crate::state;
use hsm::TpmBackend;

/// An opaque handle made by one of the `create` functions.
pub type HSM_CLIENT_HANDLE = *mut c_void;

pub type HSM_CLIENT_CREATE = Option<unsafe extern "C" fn() -> HSM_CLIENT_HANDLE>;
pub type HSM_CLIENT_DESTROY = Option<unsafe extern "C" fn(handle: HSM_CLIENT_HANDLE)>;

pub type HSM_CLIENT_ACTIVATE_IDENTITY_KEY =
    Option<unsafe extern "C" fn(handle: HSM_CLIENT_HANDLE, key: *const c_uchar, key_len: usize) -> c_int>;
pub type HSM_CLIENT_GET_ENDORSEMENT_KEY =
    Option<unsafe extern "C" fn(handle: HSM_CLIENT_HANDLE, key: *mut *mut c_uchar, key_len: *mut usize) -> c_int>;
pub type HSM_CLIENT_GET_STORAGE_ROOT_KEY =
    Option<unsafe extern "C" fn(handle: HSM_CLIENT_HANDLE, key: *mut *mut c_uchar, key_len: *mut usize) -> c_int>;
pub type HSM_CLIENT_SIGN_WITH_IDENTITY = Option<
    unsafe extern "C" fn(
        handle: HSM_CLIENT_HANDLE,
        data: *const c_uchar,
        data_len: usize,
        key: *mut *mut c_uchar,
        key_len: *mut usize,
    ) -> c_int,
>;

pub type HSM_CLIENT_GET_CERTIFICATE = Option<unsafe extern "C" fn(handle: HSM_CLIENT_HANDLE) -> *mut c_char>;
pub type HSM_CLIENT_GET_ALIAS_KEY = Option<unsafe extern "C" fn(handle: HSM_CLIENT_HANDLE) -> *mut c_char>;
pub type HSM_CLIENT_GET_COMMON_NAME = Option<unsafe extern "C" fn(handle: HSM_CLIENT_HANDLE) -> *mut c_char>;

/// Declared for source compatibility with the SDK's header (its Edge interface); unused here.
pub type HSM_CLIENT_GET_TRUST_BUNDLE = Option<unsafe extern "C" fn(handle: HSM_CLIENT_HANDLE) -> *mut c_char>;

pub type HSM_CLIENT_GET_SYMMETRICAL_KEY = Option<unsafe extern "C" fn(handle: HSM_CLIENT_HANDLE) -> *mut c_char>;
pub type HSM_CLIENT_GET_REGISTRATION_NAME = Option<unsafe extern "C" fn(handle: HSM_CLIENT_HANDLE) -> *mut c_char>;
pub type HSM_CLIENT_SET_SYMMETRICAL_KEY_INFO =
    Option<unsafe extern "C" fn(handle: HSM_CLIENT_HANDLE, reg_name: *const c_char, symm_key: *const c_char) -> c_int>;

/// The SDK's TPM ("sastoken") interface.
#[repr(C)]
pub struct HSM_CLIENT_TPM_INTERFACE_TAG {
    pub hsm_client_tpm_create: HSM_CLIENT_CREATE,
    pub hsm_client_tpm_destroy: HSM_CLIENT_DESTROY,
    pub hsm_client_activate_identity_key: HSM_CLIENT_ACTIVATE_IDENTITY_KEY,
    pub hsm_client_get_ek: HSM_CLIENT_GET_ENDORSEMENT_KEY,
    pub hsm_client_get_srk: HSM_CLIENT_GET_STORAGE_ROOT_KEY,
    pub hsm_client_sign_with_identity: HSM_CLIENT_SIGN_WITH_IDENTITY,
}
pub type HSM_CLIENT_TPM_INTERFACE = HSM_CLIENT_TPM_INTERFACE_TAG;

/// The SDK's x509 (and riot) interface.
#[repr(C)]
pub struct HSM_CLIENT_X509_INTERFACE_TAG {
    pub hsm_client_x509_create: HSM_CLIENT_CREATE,
    pub hsm_client_x509_destroy: HSM_CLIENT_DESTROY,
    pub hsm_client_get_cert: HSM_CLIENT_GET_CERTIFICATE,
    pub hsm_client_get_key: HSM_CLIENT_GET_ALIAS_KEY,
    pub hsm_client_get_common_name: HSM_CLIENT_GET_COMMON_NAME,
}
pub type HSM_CLIENT_X509_INTERFACE = HSM_CLIENT_X509_INTERFACE_TAG;

/// The SDK's symmetric-key interface.
#[repr(C)]
pub struct HSM_CLIENT_KEY_INTERFACE_TAG {
    pub hsm_client_key_create: HSM_CLIENT_CREATE,
    pub hsm_client_key_destroy: HSM_CLIENT_DESTROY,
    pub hsm_client_get_symm_key: HSM_CLIENT_GET_SYMMETRICAL_KEY,
    pub hsm_client_get_registration_name: HSM_CLIENT_GET_REGISTRATION_NAME,
    pub hsm_client_set_symm_key_info: HSM_CLIENT_SET_SYMMETRICAL_KEY_INFO,
}
pub type HSM_CLIENT_KEY_INTERFACE = HSM_CLIENT_KEY_INTERFACE_TAG;

static TPM_INTERFACE: HSM_CLIENT_TPM_INTERFACE = HSM_CLIENT_TPM_INTERFACE_TAG {
    hsm_client_tpm_create: Some(tpm_create),
    hsm_client_tpm_destroy: Some(tpm_destroy),
    hsm_client_activate_identity_key: Some(tpm_activate_identity_key),
    hsm_client_get_ek: Some(tpm_get_ek),
    hsm_client_get_srk: Some(tpm_get_srk),
    hsm_client_sign_with_identity: Some(tpm_sign_with_identity),
};

static X509_INTERFACE: HSM_CLIENT_X509_INTERFACE = HSM_CLIENT_X509_INTERFACE_TAG {
    hsm_client_x509_create: Some(x509_create),
    hsm_client_x509_destroy: Some(x509_destroy),
    hsm_client_get_cert: Some(x509_get_cert),
    hsm_client_get_key: Some(x509_get_key),
    hsm_client_get_common_name: Some(x509_get_common_name),
};

static KEY_INTERFACE: HSM_CLIENT_KEY_INTERFACE = HSM_CLIENT_KEY_INTERFACE_TAG {
    hsm_client_key_create: Some(key_create),
    hsm_client_key_destroy: Some(key_destroy),
    hsm_client_get_symm_key: Some(key_get_symm_key),
    hsm_client_get_registration_name: Some(key_get_registration_name),
    hsm_client_set_symm_key_info: Some(key_set_symm_key_info),
};

/// Initialize the x509 part of the library: loads the configuration named by `HSM_ABI_CONFIG`
/// unless the application configured the library itself. Idempotent; returns non-zero (and
/// logs why) only when a configuration was given and is broken. No configuration is not an
/// error here: `create` reports it.
#[unsafe(no_mangle)]
pub extern "C" fn hsm_client_x509_init() -> c_int {
    ffi_boundary!("hsm_client_x509_init", {
        to_code("hsm_client_x509_init", state::init().map_err(Into::into))
    })
}

/// Counterpart of `hsm_client_x509_init`; any number of calls in any order.
#[unsafe(no_mangle)]
pub extern "C" fn hsm_client_x509_deinit() {
    ffi_boundary!("hsm_client_x509_deinit", { state::deinit() })
}

/// Initialize the TPM part of the library; same rules as `hsm_client_x509_init`.
#[unsafe(no_mangle)]
pub extern "C" fn hsm_client_tpm_init() -> c_int {
    ffi_boundary!("hsm_client_tpm_init", {
        to_code("hsm_client_tpm_init", state::init().map_err(Into::into))
    })
}

/// Counterpart of `hsm_client_tpm_init`; any number of calls in any order.
#[unsafe(no_mangle)]
pub extern "C" fn hsm_client_tpm_deinit() {
    ffi_boundary!("hsm_client_tpm_deinit", { state::deinit() })
}

/// The x509 interface table (static, every field non-NULL).
#[unsafe(no_mangle)]
pub extern "C" fn hsm_client_x509_interface() -> *const HSM_CLIENT_X509_INTERFACE {
    ffi_boundary!("hsm_client_x509_interface", { &X509_INTERFACE })
}

/// The TPM interface table (static, every field non-NULL).
#[unsafe(no_mangle)]
pub extern "C" fn hsm_client_tpm_interface() -> *const HSM_CLIENT_TPM_INTERFACE {
    ffi_boundary!("hsm_client_tpm_interface", { &TPM_INTERFACE })
}

/// The symmetric-key interface table (static, every field non-NULL).
#[unsafe(no_mangle)]
pub extern "C" fn hsm_client_key_interface() -> *const HSM_CLIENT_KEY_INTERFACE {
    ffi_boundary!("hsm_client_key_interface", { &KEY_INTERFACE })
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A backend call that panicked was caught at the boundary; the identity is still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---- x509 ----

struct X509Handle {
    identity: Mutex<Arc<dyn X509Identity>>,
}

impl HandleKind for X509Handle {
    const NAME: &'static str = "x509";
}

fn x509_open() -> AbiResult<HSM_CLIENT_HANDLE> {
    let identity = state::open_with(hsm::open_x509)?;
    Ok(handle::into_raw(X509Handle {
        identity: Mutex::new(identity),
    })?)
}

/// Run `f` on the identity behind an x509 handle and return its string result malloc'd.
///
/// # Safety
/// `h` is NULL or a live handle of this library.
unsafe fn x509_string(
    op: &'static str,
    h: HSM_CLIENT_HANDLE,
    f: impl FnOnce(&dyn X509Identity) -> hsm_core::Result<Zeroizing<String>>,
) -> *mut c_char {
    // SAFETY: forwarded promise of the caller.
    let r = unsafe { handle::get::<X509Handle>(h) }
        .and_then(|x| f(lock(&x.identity).as_ref()))
        .map_err(Into::into)
        .and_then(|s| malloc_cstr(op, &s));
    to_ptr(op, r)
}

unsafe extern "C" fn x509_create() -> HSM_CLIENT_HANDLE {
    ffi_boundary!("hsm_client_x509_create", {
        to_ptr("hsm_client_x509_create", x509_open())
    })
}

unsafe extern "C" fn x509_destroy(h: HSM_CLIENT_HANDLE) {
    ffi_boundary!("hsm_client_x509_destroy", {
        // SAFETY: the SDK passes a handle from create (or NULL) and stops using it now.
        let r = unsafe { handle::destroy::<X509Handle>(h) };
        to_code("hsm_client_x509_destroy", r.map_err(Into::into));
    })
}

unsafe extern "C" fn x509_get_cert(h: HSM_CLIENT_HANDLE) -> *mut c_char {
    ffi_boundary!("hsm_client_get_cert", {
        // SAFETY: the SDK passes a live handle from create (or NULL, reported).
        unsafe {
            x509_string("hsm_client_get_cert", h, |x| {
                Ok(Zeroizing::new(hsm_core::pem::certificates_to_pem(
                    &x.certificate_chain()?,
                )))
            })
        }
    })
}

unsafe extern "C" fn x509_get_key(h: HSM_CLIENT_HANDLE) -> *mut c_char {
    ffi_boundary!("hsm_client_get_key", {
        // SAFETY: the SDK passes a live handle from create (or NULL, reported).
        unsafe { x509_string("hsm_client_get_key", h, |x| x.key_reference()) }
    })
}

unsafe extern "C" fn x509_get_common_name(h: HSM_CLIENT_HANDLE) -> *mut c_char {
    ffi_boundary!("hsm_client_get_common_name", {
        // SAFETY: the SDK passes a live handle from create (or NULL, reported).
        unsafe { x509_string("hsm_client_get_common_name", h, |x| x.common_name().map(Zeroizing::new)) }
    })
}

// ---- symmetric key ----

struct KeyState {
    identity: Arc<dyn SymmetricIdentity>,
    registration_id: Option<String>,
    key: Option<Zeroizing<Vec<u8>>>,
}

struct KeyHandle {
    state: Mutex<KeyState>,
}

impl HandleKind for KeyHandle {
    const NAME: &'static str = "symmetric key";
}

fn key_open() -> AbiResult<HSM_CLIENT_HANDLE> {
    let identity = state::open_with(hsm::open_symmetric)?;
    Ok(handle::into_raw(KeyHandle {
        state: Mutex::new(KeyState {
            identity,
            registration_id: None,
            key: None,
        }),
    })?)
}

unsafe extern "C" fn key_create() -> HSM_CLIENT_HANDLE {
    ffi_boundary!("hsm_client_key_create", { to_ptr("hsm_client_key_create", key_open()) })
}

unsafe extern "C" fn key_destroy(h: HSM_CLIENT_HANDLE) {
    ffi_boundary!("hsm_client_key_destroy", {
        // SAFETY: the SDK passes a handle from create (or NULL) and stops using it now.
        let r = unsafe { handle::destroy::<KeyHandle>(h) };
        to_code("hsm_client_key_destroy", r.map_err(Into::into));
    })
}

unsafe extern "C" fn key_get_symm_key(h: HSM_CLIENT_HANDLE) -> *mut c_char {
    ffi_boundary!("hsm_client_get_symm_key", {
        // SAFETY: the SDK passes a live handle from create (or NULL, reported).
        let r = unsafe { handle::get::<KeyHandle>(h) }
            .and_then(|k| {
                let s = lock(&k.state);
                match &s.key {
                    Some(key) => Ok(hsm_core::sas::encode_key(key)),
                    None => Ok(hsm_core::sas::encode_key(&s.identity.symmetric_key()?)),
                }
            })
            .map_err(Into::into)
            .and_then(|b64| malloc_cstr("hsm_client_get_symm_key", &b64));
        to_ptr("hsm_client_get_symm_key", r)
    })
}

unsafe extern "C" fn key_get_registration_name(h: HSM_CLIENT_HANDLE) -> *mut c_char {
    ffi_boundary!("hsm_client_get_registration_name", {
        // SAFETY: the SDK passes a live handle from create (or NULL, reported).
        let r = unsafe { handle::get::<KeyHandle>(h) }
            .and_then(|k| {
                let s = lock(&k.state);
                match &s.registration_id {
                    Some(id) => Ok(id.clone()),
                    None => s.identity.registration_id(),
                }
            })
            .map_err(Into::into)
            .and_then(|id| malloc_cstr("hsm_client_get_registration_name", &id));
        to_ptr("hsm_client_get_registration_name", r)
    })
}

/// # Safety
/// `h` is NULL or a live handle; `reg_name` and `symm_key` are NULL or NUL-terminated.
unsafe fn set_symm_key_info(
    h: HSM_CLIENT_HANDLE,
    reg_name: *const c_char,
    symm_key: *const c_char,
) -> hsm_core::Result<()> {
    // SAFETY: forwarded promises of the caller.
    let (k, reg_name, symm_key) = unsafe {
        (
            handle::get::<KeyHandle>(h)?,
            ptr::opt_cstr("reg_name", reg_name)?,
            ptr::opt_cstr("symm_key", symm_key)?,
        )
    };
    if reg_name == Some("") {
        return Err(Error::invalid("reg_name", "is empty"));
    }
    let key = symm_key
        .map(|b64| hsm_core::sas::decode_key("symm_key", b64))
        .transpose()?;
    let mut s = lock(&k.state);
    if let Some(id) = reg_name {
        s.registration_id = Some(id.to_string());
    }
    if key.is_some() {
        s.key = key;
    }
    Ok(())
}

unsafe extern "C" fn key_set_symm_key_info(
    h: HSM_CLIENT_HANDLE,
    reg_name: *const c_char,
    symm_key: *const c_char,
) -> c_int {
    ffi_boundary!("hsm_client_set_symm_key_info", {
        // SAFETY: the SDK passes a live handle from create (or NULL, reported) and NULL or
        // NUL-terminated strings.
        let r = unsafe { set_symm_key_info(h, reg_name, symm_key) };
        to_code("hsm_client_set_symm_key_info", r.map_err(Into::into))
    })
}

// ---- TPM ----

/// The `[tpm]` backend: a TPM (attestation and SAS signing) or a key that only signs SAS tokens;
/// each table function asks for the capability it needs. Backends lock inside (`&self` calls).
struct TpmHandle {
    identity: TpmBackend,
}

impl HandleKind for TpmHandle {
    const NAME: &'static str = "TPM";
}

fn tpm_open() -> AbiResult<HSM_CLIENT_HANDLE> {
    let identity = state::open_with(hsm::open_tpm)?;
    Ok(handle::into_raw(TpmHandle { identity })?)
}

/// Run `f` on the TPM identity and hand its bytes to C through `out` / `out_len`.
///
/// # Safety
/// `h` is NULL or a live handle; `out` / `out_len` are NULL or writable.
unsafe fn tpm_bytes(
    h: HSM_CLIENT_HANDLE,
    out: *mut *mut c_uchar,
    out_len: *mut usize,
    f: impl FnOnce(&TpmBackend) -> hsm_core::Result<Vec<u8>>,
) -> AbiResult<()> {
    // SAFETY: forwarded promises of the caller.
    let (t, out, out_len) = unsafe {
        (
            handle::get::<TpmHandle>(h)?,
            Out::new("key", out)?,
            Out::new("key_len", out_len)?,
        )
    };
    let bytes = f(&t.identity)?;
    let p = malloc_bytes(&bytes)?;
    out.write(p);
    out_len.write(bytes.len());
    Ok(())
}

unsafe extern "C" fn tpm_create() -> HSM_CLIENT_HANDLE {
    ffi_boundary!("hsm_client_tpm_create", { to_ptr("hsm_client_tpm_create", tpm_open()) })
}

unsafe extern "C" fn tpm_destroy(h: HSM_CLIENT_HANDLE) {
    ffi_boundary!("hsm_client_tpm_destroy", {
        // SAFETY: the SDK passes a handle from create (or NULL) and stops using it now.
        let r = unsafe { handle::destroy::<TpmHandle>(h) };
        to_code("hsm_client_tpm_destroy", r.map_err(Into::into));
    })
}

unsafe extern "C" fn tpm_activate_identity_key(h: HSM_CLIENT_HANDLE, key: *const c_uchar, key_len: usize) -> c_int {
    ffi_boundary!("hsm_client_activate_identity_key", {
        // SAFETY: the SDK passes a live handle and `key_len` readable bytes at `key`.
        let r = unsafe { handle::get::<TpmHandle>(h).and_then(|t| Ok((t, ptr::slice("key", key, key_len)?))) }
            .and_then(|(t, blob)| {
                if blob.is_empty() {
                    return Err(Error::invalid("key", "the activation blob is empty"));
                }
                t.identity
                    .attestation("hsm_client_activate_identity_key")?
                    .activate_identity_key(blob)
            });
        to_code("hsm_client_activate_identity_key", r.map_err(Into::into))
    })
}

unsafe extern "C" fn tpm_get_ek(h: HSM_CLIENT_HANDLE, key: *mut *mut c_uchar, key_len: *mut usize) -> c_int {
    ffi_boundary!("hsm_client_get_ek", {
        // SAFETY: the SDK passes a live handle and writable out-parameters.
        let r = unsafe {
            tpm_bytes(h, key, key_len, |t| {
                t.attestation("hsm_client_get_ek")?.endorsement_key()
            })
        };
        to_code("hsm_client_get_ek", r)
    })
}

unsafe extern "C" fn tpm_get_srk(h: HSM_CLIENT_HANDLE, key: *mut *mut c_uchar, key_len: *mut usize) -> c_int {
    ffi_boundary!("hsm_client_get_srk", {
        // SAFETY: the SDK passes a live handle and writable out-parameters.
        let r = unsafe {
            tpm_bytes(h, key, key_len, |t| {
                t.attestation("hsm_client_get_srk")?.storage_root_key()
            })
        };
        to_code("hsm_client_get_srk", r)
    })
}

unsafe extern "C" fn tpm_sign_with_identity(
    h: HSM_CLIENT_HANDLE,
    data: *const c_uchar,
    data_len: usize,
    key: *mut *mut c_uchar,
    key_len: *mut usize,
) -> c_int {
    ffi_boundary!("hsm_client_sign_with_identity", {
        // SAFETY: the SDK passes `data_len` readable bytes at `data`, a live handle and writable
        // out-parameters.
        let r = unsafe {
            ptr::slice("data", data, data_len)
                .map_err(Into::into)
                .and_then(|data| tpm_bytes(h, key, key_len, |t| t.sign_with_identity(data)))
        };
        to_code("hsm_client_sign_with_identity", r)
    })
}
