//! Stable C error codes, their explanations, and the per-thread last error.
//!
//! Ranges by origin: 0 success; 1..=99 this library (arguments, configuration, files,
//! parsing, unsupported operations, internal errors); 100..=199 PKCS#11; 200..=299 TPM;
//! 300..=399 DICE; 400..=499 TLS; 500..=599 vendor backends. Codes are never renumbered;
//! new ones are appended in their range.
//!
//! A device error also keeps the device's own return code, for C callers that act on it
//! (`hsm_abi_last_error_origin`, `hsm_abi_last_error_rv`). The mapping from errors to codes is
//! an exhaustive match: `hsm_core::Error` and `hsm_core::Origin` are not `#[non_exhaustive]`,
//! so a new variant does not compile until it has its code here.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int, c_ulong};

use hsm_core::{Error, Origin};

use super::ptr;

/// Success.
pub const HSM_ABI_OK: c_int = 0;
/// An argument is NULL, empty, not UTF-8, out of range, or a handle of the wrong kind.
pub const HSM_ABI_ERR_INVALID_ARGUMENT: c_int = 1;
/// No configuration was given (neither `HSM_ABI_CONFIG` nor `hsm_abi_configure_*`).
pub const HSM_ABI_ERR_NOT_CONFIGURED: c_int = 2;
/// The configuration is wrong: syntax, a missing section or key, an unknown backend.
pub const HSM_ABI_ERR_CONFIG: c_int = 3;
/// A file could not be read.
pub const HSM_ABI_ERR_IO: c_int = 4;
/// Data could not be parsed: PEM, certificate, key, key token, base64, activation blob.
pub const HSM_ABI_ERR_PARSE: c_int = 5;
/// The backend or key cannot do this operation (or the backend is not built in).
pub const HSM_ABI_ERR_UNSUPPORTED: c_int = 6;
/// A software cryptographic operation failed.
pub const HSM_ABI_ERR_CRYPTO: c_int = 7;
/// A bug in this library.
pub const HSM_ABI_ERR_INTERNAL: c_int = 8;
/// A panic was caught at the C boundary (a bug in this library).
pub const HSM_ABI_ERR_PANIC: c_int = 9;
/// An output buffer is too small; the needed size was written where documented.
pub const HSM_ABI_ERR_BUFFER_TOO_SMALL: c_int = 10;
/// `malloc` failed.
pub const HSM_ABI_ERR_OUT_OF_MEMORY: c_int = 11;
/// A versioned structure's `struct_size` is smaller than this version of the library needs.
pub const HSM_ABI_ERR_STRUCT_SIZE: c_int = 12;
/// A PKCS#11 module returned an error (its CK_RV: `hsm_abi_last_error_rv`).
pub const HSM_ABI_ERR_PKCS11: c_int = 100;
/// A TPM returned an error (its response code: `hsm_abi_last_error_rv`).
pub const HSM_ABI_ERR_TPM: c_int = 200;
/// The DICE engine failed.
pub const HSM_ABI_ERR_DICE: c_int = 300;
/// A TLS error.
pub const HSM_ABI_ERR_TLS: c_int = 400;
/// A vendor backend returned an error (its code: `hsm_abi_last_error_rv`).
pub const HSM_ABI_ERR_VENDOR: c_int = 500;

/// Every code and its explanation; `hsm_abi_error_string` reads this table.
const CODES: [(c_int, &CStr); 18] = [
    (HSM_ABI_OK, c"success"),
    (
        HSM_ABI_ERR_INVALID_ARGUMENT,
        c"invalid argument: NULL, empty, not UTF-8, out of range, or a handle of the wrong kind",
    ),
    (
        HSM_ABI_ERR_NOT_CONFIGURED,
        c"not configured: set HSM_ABI_CONFIG or call hsm_abi_configure_file/hsm_abi_configure_toml",
    ),
    (
        HSM_ABI_ERR_CONFIG,
        c"configuration error: bad syntax, missing section or key, or a backend not built in",
    ),
    (HSM_ABI_ERR_IO, c"a file could not be read"),
    (
        HSM_ABI_ERR_PARSE,
        c"cannot parse data (PEM, certificate, key, key token, base64 or blob)",
    ),
    (
        HSM_ABI_ERR_UNSUPPORTED,
        c"operation not supported by this backend or key",
    ),
    (HSM_ABI_ERR_CRYPTO, c"a cryptographic operation failed"),
    (HSM_ABI_ERR_INTERNAL, c"internal error of the library (a bug)"),
    (HSM_ABI_ERR_PANIC, c"a panic was caught at the C boundary (a bug)"),
    (
        HSM_ABI_ERR_BUFFER_TOO_SMALL,
        c"output buffer too small; the needed size was returned",
    ),
    (HSM_ABI_ERR_OUT_OF_MEMORY, c"out of memory"),
    (
        HSM_ABI_ERR_STRUCT_SIZE,
        c"struct_size too small for this version of the library",
    ),
    (HSM_ABI_ERR_PKCS11, c"PKCS#11 module error"),
    (HSM_ABI_ERR_TPM, c"TPM error"),
    (HSM_ABI_ERR_DICE, c"DICE engine error"),
    (HSM_ABI_ERR_TLS, c"TLS error"),
    (HSM_ABI_ERR_VENDOR, c"vendor backend error"),
];

/// Errors at the C boundary: the backends' errors plus the ABI's own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AbiError {
    #[error(transparent)]
    Core(#[from] Error),
    #[error("`{what}`: a buffer of {given} bytes is too small; {needed} bytes are needed")]
    BufferTooSmall {
        what: &'static str,
        given: usize,
        needed: usize,
    },
    #[error("`{what}`: struct_size {given} is smaller than {needed}, the size in this library version")]
    StructSize {
        what: &'static str,
        given: usize,
        needed: usize,
    },
    #[error("malloc of {0} bytes failed")]
    OutOfMemory(usize),
    #[error("panic: {0}")]
    Panic(String),
}

pub(crate) type AbiResult<T> = std::result::Result<T, AbiError>;

/// The stable code of an error.
pub(crate) fn code_of(e: &AbiError) -> c_int {
    match e {
        AbiError::Core(core) => match core {
            Error::InvalidArgument { .. } => HSM_ABI_ERR_INVALID_ARGUMENT,
            Error::NotConfigured(_) => HSM_ABI_ERR_NOT_CONFIGURED,
            Error::Config { .. } => HSM_ABI_ERR_CONFIG,
            Error::Io { .. } => HSM_ABI_ERR_IO,
            Error::Parse { .. } => HSM_ABI_ERR_PARSE,
            Error::Unsupported { .. } => HSM_ABI_ERR_UNSUPPORTED,
            Error::Crypto { .. } => HSM_ABI_ERR_CRYPTO,
            Error::Device { origin, .. } => origin_code(*origin),
            Error::Internal(_) => HSM_ABI_ERR_INTERNAL,
        },
        AbiError::BufferTooSmall { .. } => HSM_ABI_ERR_BUFFER_TOO_SMALL,
        AbiError::StructSize { .. } => HSM_ABI_ERR_STRUCT_SIZE,
        AbiError::OutOfMemory(_) => HSM_ABI_ERR_OUT_OF_MEMORY,
        AbiError::Panic(_) => HSM_ABI_ERR_PANIC,
    }
}

/// The first code of the range of a device origin.
fn origin_code(origin: Origin) -> c_int {
    match origin {
        Origin::Pkcs11 => HSM_ABI_ERR_PKCS11,
        Origin::Tpm => HSM_ABI_ERR_TPM,
        Origin::Dice => HSM_ABI_ERR_DICE,
        Origin::Tls => HSM_ABI_ERR_TLS,
        Origin::Vendor => HSM_ABI_ERR_VENDOR,
    }
}

/// The device's origin (range code) and raw return code of an error, `None` when the error
/// did not come from a device.
fn device_code(e: &AbiError) -> Option<(c_int, u64)> {
    match e {
        AbiError::Core(Error::Device { origin, rv, .. }) => Some((origin_code(*origin), *rv)),
        _ => None,
    }
}

/// This thread's last failure.
struct LastError {
    message: String,
    /// `HSM_ABI_OK` or the range code of the device that failed.
    origin: c_int,
    /// The device's return code (0 when `origin` is `HSM_ABI_OK`).
    rv: u64,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = const {
        RefCell::new(LastError { message: String::new(), origin: HSM_ABI_OK, rv: 0 })
    };
}

/// Log a failure of export `op`, keep it as this thread's last error, and return its code.
pub(crate) fn record(op: &'static str, e: &AbiError) -> c_int {
    let code = code_of(e);
    let message = format!("{op}: {e}");
    if code == HSM_ABI_ERR_BUFFER_TOO_SMALL {
        tracing::debug!(code, "{message}");
    } else {
        tracing::error!(code, "{message}");
    }
    // `try_with`: during thread teardown the slot may be gone; the failure is still logged.
    let (origin, rv) = device_code(e).unwrap_or((HSM_ABI_OK, 0));
    let _ = LAST_ERROR.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = LastError { message, origin, rv };
        }
    });
    code
}

/// `Ok` -> [`HSM_ABI_OK`]; `Err` -> recorded, its code.
pub(crate) fn to_code(op: &'static str, r: AbiResult<()>) -> c_int {
    match r {
        Ok(()) => HSM_ABI_OK,
        Err(e) => record(op, &e),
    }
}

/// `Ok(p)` -> `p`; `Err` -> recorded, NULL.
pub(crate) fn to_ptr<T>(op: &'static str, r: AbiResult<*mut T>) -> *mut T {
    match r {
        Ok(p) => p,
        Err(e) => {
            record(op, &e);
            std::ptr::null_mut()
        }
    }
}

/// This thread's last error message (empty if nothing failed yet on this thread).
pub fn last_error() -> String {
    LAST_ERROR
        .try_with(|last| last.try_borrow().map(|l| l.message.clone()).unwrap_or_default())
        .unwrap_or_default()
}

/// This thread's last device failure: the range code of its origin and the device's return
/// code; `(HSM_ABI_OK, 0)` when the last failure was not a device's (or nothing failed yet).
pub(crate) fn last_device_code() -> (c_int, u64) {
    LAST_ERROR
        .try_with(|last| last.try_borrow().map(|l| (l.origin, l.rv)).unwrap_or((HSM_ABI_OK, 0)))
        .unwrap_or((HSM_ABI_OK, 0))
}

/// The explanation of an error code, or `None` for an unknown code.
pub fn error_string(code: c_int) -> Option<&'static CStr> {
    CODES.iter().find(|(c, _)| *c == code).map(|(_, s)| *s)
}

/// Every defined error code, in ascending order.
pub fn all_codes() -> impl Iterator<Item = c_int> {
    CODES.iter().map(|(c, _)| *c)
}

/// A static, NUL-terminated explanation of `code`; `"unknown error code"` for codes this
/// library does not define. Never NULL; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn hsm_abi_error_string(code: c_int) -> *const c_char {
    ffi_boundary!("hsm_abi_error_string", {
        error_string(code).unwrap_or(c"unknown error code").as_ptr()
    })
}

/// Copy this thread's last error message (the detailed cause of the last failure of any
/// `hsm_client_*` / `hsm_abi_*` function on this thread) into `buf`, truncated to `len - 1`
/// bytes and always NUL-terminated when `len > 0`. Returns the buffer size the whole message
/// needs, its terminating NUL included: the message was truncated if the result is `> len`.
/// `buf` may be NULL when `len` is 0, to ask for the size. An empty message (result 1) means
/// nothing failed on this thread yet.
///
/// # Safety
/// `buf` must be NULL or point to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_last_error(buf: *mut c_char, len: usize) -> usize {
    ffi_boundary!("hsm_abi_last_error", {
        let message = last_error();
        if len > 0 && !buf.is_null() {
            // SAFETY: the caller gives `len` writable bytes at the non-NULL `buf`.
            let out = unsafe { ptr::slice_mut("buf", buf.cast::<u8>(), len) };
            if let Ok(out) = out {
                let n = message.len().min(len - 1);
                out[..n].copy_from_slice(&message.as_bytes()[..n]);
                out[n] = 0;
            }
        }
        message.len() + 1
    })
}

/// Where this thread's last failure came from, when a device returned an error code:
/// `HSM_ABI_ERR_PKCS11`, `HSM_ABI_ERR_TPM`, `HSM_ABI_ERR_DICE`, `HSM_ABI_ERR_TLS` or
/// `HSM_ABI_ERR_VENDOR` (the first code of the range the failing call returned). `HSM_ABI_OK`
/// when the last failure did not come from a device (a bad argument, the configuration, a
/// file, ...) or nothing failed yet on this thread. Like `hsm_abi_last_error`, it describes the
/// last failure on this thread until the next one; a successful call does not reset it.
#[unsafe(no_mangle)]
pub extern "C" fn hsm_abi_last_error_origin() -> c_int {
    ffi_boundary!("hsm_abi_last_error_origin", { last_device_code().0 })
}

/// The device's own return code of this thread's last failure, to act on the cause: for
/// `HSM_ABI_ERR_PKCS11` the module's CK_RV (e.g. `CKR_PIN_INCORRECT` 0xA0, `CKR_TOKEN_NOT_PRESENT`
/// 0xE0 when no token matches, `CKR_DEVICE_REMOVED` 0x32), for `HSM_ABI_ERR_TPM` the TPM 2.0
/// response code (TPM2_RC), for `HSM_ABI_ERR_VENDOR` the vendor's `int` code as a 32-bit
/// unsigned value. 0 when `hsm_abi_last_error_origin()` is `HSM_ABI_OK`.
#[unsafe(no_mangle)]
pub extern "C" fn hsm_abi_last_error_rv() -> c_ulong {
    ffi_boundary!("hsm_abi_last_error_rv", {
        // Device codes are 32-bit (CK_RV values, TPM2_RC, a vendor's int): no truncation where
        // `unsigned long` is 32 bits wide.
        c_ulong::try_from(last_device_code().1).unwrap_or(c_ulong::MAX)
    })
}
