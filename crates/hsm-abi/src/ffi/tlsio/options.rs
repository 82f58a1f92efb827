//! The options of the SDK's table: `setoption` (each option by its kind, unknown names forwarded
//! to the underlying IO) and `retrieveoptions` (an SDK option handler holding copies of the
//! options set, through the C shim).

use std::collections::BTreeSet;
use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::Mutex;

use hsm_core::Error;
use tlsio_bridge::io::options::{OptionKind, RetrievedValue, option_kind};

use super::shim;
use super::state::{AnyTransport, Io, borrow_error, with_tlsio};
use super::tlsio_types::{CONCRETE_IO_HANDLE, OPTIONHANDLER_HANDLE, OPTIONHANDLER_RESULT};
use crate::ffi::errors::{self, AbiError};
use crate::ffi::{malloc, ptr};

/// Unknown option names already logged (each is logged once per process).
static UNKNOWN_LOGGED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// # Safety
/// `h` is NULL or a live handle; `name` NULL or NUL-terminated; `value` what the option takes.
pub(super) unsafe extern "C" fn tlsio_rustls_setoption(
    h: CONCRETE_IO_HANDLE,
    name: *const c_char,
    value: *const c_void,
) -> c_int {
    ffi_boundary!("tlsio_rustls_setoption", {
        // SAFETY: caller's promise.
        let name_str = match unsafe { ptr::cstr("optionName", name) } {
            Ok(n) => n,
            Err(e) => return errors::record("tlsio_rustls_setoption", &e.into()),
        };
        // SAFETY: caller's promise.
        let r = unsafe {
            with_tlsio("tlsio_rustls_setoption", h, |t| {
                let Ok(mut io) = t.io.try_borrow_mut() else {
                    return Err(Some(borrow_error()));
                };
                // (inside the unsafe block above: the caller's promise about `value`)
                set_option(&mut io, name, name_str, value)
            })
        };
        match r {
            Some(Ok(())) => errors::HSM_ABI_OK,
            Some(Err(None)) => errors::HSM_ABI_ERR_UNSUPPORTED,
            Some(Err(Some(e))) => errors::record("tlsio_rustls_setoption", &e),
            None => errors::HSM_ABI_ERR_INVALID_ARGUMENT,
        }
    })
}

/// `Err(None)`: an unknown option already logged once.
///
/// # Safety
/// As for [`tlsio_rustls_setoption`].
unsafe fn set_option(
    io: &mut Io,
    name: *const c_char,
    name_str: &str,
    value: *const c_void,
) -> Result<(), Option<AbiError>> {
    if value.is_null() {
        return Err(Some(
            Error::invalid("value", format!("is NULL for option `{name_str}`")).into(),
        ));
    }
    match option_kind(name_str) {
        OptionKind::Str => {
            // SAFETY: string options are NUL-terminated strings.
            let v = unsafe { ptr::cstr("value", value.cast::<c_char>()) }.map_err(|e| Some(e.into()))?;
            io.set_option_str(name_str, v).map_err(|e| Some(e.into()))
        }
        OptionKind::Int => {
            // SAFETY: integer options point to an `int`.
            let v = unsafe { value.cast::<c_int>().read_unaligned() };
            io.set_option_int(name_str, v).map_err(|e| Some(e.into()))
        }
        OptionKind::Bool => Ok(()),
        OptionKind::UnderlyingOptions => match io.transport_mut() {
            AnyTransport::Underlying(u) => {
                // SAFETY: the value is an OPTIONHANDLER_HANDLE; fed to the live underlying IO.
                let rc = unsafe { shim::feed(value.cast_mut(), u.handle()) };
                if rc == OPTIONHANDLER_RESULT::OPTIONHANDLER_OK as c_int {
                    Ok(())
                } else {
                    Err(Some(
                        Error::unsupported(
                            "the rustls TLS IO",
                            format!("feeding underlying_io_options to the underlying IO (result {rc})"),
                        )
                        .into(),
                    ))
                }
            }
            AnyTransport::Tcp(_) => {
                tracing::debug!("underlying_io_options ignored: this TLS IO uses its own socket");
                Ok(())
            }
        },
        OptionKind::Unknown => match io.transport_mut() {
            // SAFETY: forwarded as given, as the SDK's own TLS layers do.
            AnyTransport::Underlying(u) => match unsafe { u.set_option(name, value) } {
                0 => Ok(()),
                rc => Err(Some(
                    Error::unsupported("the underlying IO", format!("option `{name_str}` (result {rc})")).into(),
                )),
            },
            AnyTransport::Tcp(_) => {
                let first = UNKNOWN_LOGGED
                    .lock()
                    .map(|mut s| s.insert(name_str.to_string()))
                    .unwrap_or(true);
                if first {
                    Err(Some(
                        Error::unsupported("the rustls TLS IO", format!("option `{name_str}`")).into(),
                    ))
                } else {
                    Err(None)
                }
            }
        },
    }
}

/// The option handler's copy of one option value (malloc'd; released by [`destroy_option`]).
///
/// # Safety
/// `name` is NUL-terminated; `value` is what that option takes.
unsafe extern "C" fn clone_option(name: *const c_char, value: *mut c_void) -> *mut c_void {
    ffi_boundary!("tlsio_rustls clone_option", {
        // SAFETY: the option handler passes the name it was given.
        let Ok(name) = (unsafe { ptr::cstr("name", name) }) else {
            return std::ptr::null_mut();
        };
        if value.is_null() {
            return std::ptr::null_mut();
        }
        let r = match option_kind(name) {
            OptionKind::Str => {
                // SAFETY: string options are NUL-terminated.
                match unsafe { ptr::cstr("value", value.cast::<c_char>()) } {
                    Ok(s) => malloc::malloc_cstr("option value", s).map(|p| p.cast::<c_void>()),
                    Err(e) => Err(e.into()),
                }
            }
            OptionKind::Int => {
                // SAFETY: integer options point to an `int`.
                let v = unsafe { value.cast::<c_int>().read_unaligned() };
                malloc::malloc_bytes(&v.to_ne_bytes()).map(|p| p.cast::<c_void>())
            }
            _ => Err(Error::unsupported("the rustls TLS IO", format!("copying option `{name}`")).into()),
        };
        errors::to_ptr("tlsio_rustls clone_option", r)
    })
}

/// # Safety
/// `value` is NULL or from [`clone_option`].
unsafe extern "C" fn destroy_option(_name: *const c_char, value: *mut c_void) {
    ffi_boundary!("tlsio_rustls destroy_option", {
        // SAFETY: allocated with malloc by `clone_option`; freed once by the option handler.
        unsafe { libc::free(value) }
    })
}

/// # Safety
/// As for [`tlsio_rustls_setoption`].
unsafe extern "C" fn feed_option(handle: *mut c_void, name: *const c_char, value: *mut c_void) -> c_int {
    // SAFETY: forwarded promise.
    unsafe { tlsio_rustls_setoption(handle, name, value.cast_const()) }
}

/// # Safety
/// `h` is NULL or a live handle.
pub(super) unsafe extern "C" fn tlsio_rustls_retrieveoptions(h: CONCRETE_IO_HANDLE) -> OPTIONHANDLER_HANDLE {
    ffi_boundary!("tlsio_rustls_retrieveoptions", {
        // SAFETY: caller's promise.
        let r = unsafe {
            with_tlsio("tlsio_rustls_retrieveoptions", h, |t| {
                let Ok(io) = t.io.try_borrow() else {
                    return Err(borrow_error());
                };
                retrieve(&io)
            })
        };
        match r {
            Some(r) => errors::to_ptr("tlsio_rustls_retrieveoptions", r),
            None => std::ptr::null_mut(),
        }
    })
}

fn retrieve(io: &Io) -> Result<OPTIONHANDLER_HANDLE, AbiError> {
    if !shim::available() {
        return Err(Error::unsupported(
            "this program",
            "retrieveoptions: the SDK's OptionHandler functions (azure-c-shared-utility) are not linked in",
        )
        .into());
    }
    // SAFETY: our three callbacks have the signatures the option handler calls.
    let oh = unsafe { shim::create(clone_option, destroy_option, feed_option) };
    if oh.is_null() {
        return Err(Error::Internal("OptionHandler_Create returned NULL".into()).into());
    }
    for (name, value) in io.options().retrievable() {
        let cname = CString::new(name).map_err(|e| Error::Internal(e.to_string()))?;
        let rc = match value {
            RetrievedValue::Str(s) => match CString::new(s) {
                // SAFETY: live handler; the value is copied by `clone_option` during the call.
                Ok(v) => unsafe { shim::add(oh, cname.as_ptr(), v.as_ptr().cast_mut().cast()) },
                Err(_) => -1,
            },
            RetrievedValue::Int(i) => {
                let mut v: c_int = i;
                // SAFETY: as above; `v` outlives the call.
                unsafe { shim::add(oh, cname.as_ptr(), (&raw mut v).cast()) }
            }
        };
        if rc != OPTIONHANDLER_RESULT::OPTIONHANDLER_OK as c_int {
            // SAFETY: the handler created above, destroyed once.
            unsafe { shim::destroy(oh) };
            return Err(Error::Internal(format!("OptionHandler_AddOption({name}) failed with {rc}")).into());
        }
    }
    Ok(oh.cast())
}
