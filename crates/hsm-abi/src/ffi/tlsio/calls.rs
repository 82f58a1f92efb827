//! The IO functions of the SDK's table that drive the connection: create, destroy, open, close,
//! send and dowork. Each runs on the handle through `with_tlsio` and then delivers the events.

use std::cell::Cell;
use std::ffi::{c_int, c_void};

use hsm_core::Error;
use tlsio_bridge::io::{TcpTransport, TlsIo};

use super::state::{
    AnyTransport, NO_CALLBACKS, OpenCallbacks, SendCallback, Tlsio, borrow_error, deliver, resolver, with_tlsio,
};
use super::tlsio_types::{
    CONCRETE_IO_HANDLE, ON_BYTES_RECEIVED, ON_IO_CLOSE_COMPLETE, ON_IO_ERROR, ON_IO_OPEN_COMPLETE, ON_SEND_COMPLETE,
    TLSIO_CONFIG,
};
use super::underlying::{RawIoInterface, UnderlyingTransport};
use crate::ffi::errors::{self, AbiError};
use crate::ffi::{handle, ptr};

/// # Safety
/// `parameters` is NULL or a valid `TLSIO_CONFIG*` (with a valid underlying IO table, if any).
pub(super) unsafe extern "C" fn tlsio_rustls_create(parameters: *mut c_void) -> CONCRETE_IO_HANDLE {
    ffi_boundary!("tlsio_rustls_create", {
        // SAFETY: caller's promise.
        let r = unsafe { create(parameters.cast::<TLSIO_CONFIG>().cast_const()) };
        errors::to_ptr("tlsio_rustls_create", r)
    })
}

/// # Safety
/// As for [`tlsio_rustls_create`].
unsafe fn create(config: *const TLSIO_CONFIG) -> Result<*mut c_void, AbiError> {
    if config.is_null() {
        return Err(Error::invalid("io_create_parameters", "is NULL (a TLSIO_CONFIG* is expected)").into());
    }
    // SAFETY: a valid TLSIO_CONFIG by the caller's promise; only the first four fields are
    // read, each by address, so a shorter (older) struct is read within bounds.
    let (hostname, port, iface, params) = unsafe {
        (
            std::ptr::addr_of!((*config).hostname).read(),
            std::ptr::addr_of!((*config).port).read(),
            std::ptr::addr_of!((*config).underlying_io_interface).read(),
            std::ptr::addr_of!((*config).underlying_io_parameters).read(),
        )
    };
    // SAFETY: the SDK's hostname is NULL or NUL-terminated.
    let host = unsafe { ptr::cstr("TLSIO_CONFIG.hostname", hostname) }?;
    let port =
        u16::try_from(port).map_err(|_| Error::invalid("TLSIO_CONFIG.port", format!("{port} is not a TCP port")))?;
    let transport = if iface.is_null() {
        AnyTransport::Tcp(TcpTransport::new())
    } else {
        // SAFETY: a valid table and its parameters, by the caller's promise.
        AnyTransport::Underlying(unsafe { UnderlyingTransport::create(iface.cast::<RawIoInterface>(), params) }?)
    };
    let io = TlsIo::new(host, port, transport, resolver())?;
    tracing::debug!(host, port, underlying = !iface.is_null(), "rustls TLS IO created");
    Ok(handle::into_raw(Tlsio {
        io: std::cell::RefCell::new(io),
        callbacks: Cell::new(NO_CALLBACKS),
        close_callback: Cell::new((None, std::ptr::null_mut())),
        depth: Cell::new(0),
        destroy_requested: Cell::new(false),
    })?)
}

/// # Safety
/// `h` is NULL or from `tlsio_rustls_create` and not destroyed.
pub(super) unsafe extern "C" fn tlsio_rustls_destroy(h: CONCRETE_IO_HANDLE) {
    ffi_boundary!("tlsio_rustls_destroy", {
        if h.is_null() {
            return;
        }
        // SAFETY: caller's promise.
        let busy = unsafe {
            with_tlsio("tlsio_rustls_destroy", h, |t| {
                t.callbacks.set(NO_CALLBACKS);
                t.close_callback.set((None, std::ptr::null_mut()));
                t.destroy_requested.set(true);
                // Called from one of our callbacks: the handle is freed when that call returns.
                t.depth.get() > 1
            })
        };
        if busy == Some(true) {
            tracing::debug!("TLS IO destroyed from a callback: freed when the outer call returns");
        }
    })
}

/// # Safety
/// `h` is NULL or a live handle; the callbacks are NULL or valid with their contexts until the
/// IO is closed or destroyed.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe extern "C" fn tlsio_rustls_open(
    h: CONCRETE_IO_HANDLE,
    on_io_open_complete: ON_IO_OPEN_COMPLETE,
    on_io_open_complete_context: *mut c_void,
    on_bytes_received: ON_BYTES_RECEIVED,
    on_bytes_received_context: *mut c_void,
    on_io_error: ON_IO_ERROR,
    on_io_error_context: *mut c_void,
) -> c_int {
    ffi_boundary!("tlsio_rustls_open", {
        // SAFETY: caller's promise.
        let r = unsafe {
            with_tlsio("tlsio_rustls_open", h, |t| {
                let r = {
                    let Ok(mut io) = t.io.try_borrow_mut() else {
                        return Err(borrow_error());
                    };
                    if !io.is_closed() {
                        // A wrong call: the callbacks of the open under way stay as they are.
                        return io.open().map_err(AbiError::from);
                    }
                    t.callbacks.set(OpenCallbacks {
                        on_open_complete: on_io_open_complete,
                        open_context: on_io_open_complete_context,
                        on_bytes_received,
                        bytes_context: on_bytes_received_context,
                        on_error: on_io_error,
                        error_context: on_io_error_context,
                    });
                    io.open().map_err(AbiError::from)
                };
                // An open that failed at once calls the open callback with IO_OPEN_ERROR here
                // and then returns non-zero, as the SDK's socket and OpenSSL IOs do.
                deliver(t);
                r
            })
        };
        match r {
            Some(r) => errors::to_code("tlsio_rustls_open", r),
            None => errors::HSM_ABI_ERR_INVALID_ARGUMENT,
        }
    })
}

/// # Safety
/// `h` is NULL or a live handle; the callback is NULL or valid with its context.
pub(super) unsafe extern "C" fn tlsio_rustls_close(
    h: CONCRETE_IO_HANDLE,
    on_io_close_complete: ON_IO_CLOSE_COMPLETE,
    callback_context: *mut c_void,
) -> c_int {
    ffi_boundary!("tlsio_rustls_close", {
        // SAFETY: caller's promise.
        let r = unsafe {
            with_tlsio("tlsio_rustls_close", h, |t| {
                {
                    let Ok(mut io) = t.io.try_borrow_mut() else {
                        return Err(borrow_error());
                    };
                    t.close_callback.set((on_io_close_complete, callback_context));
                    io.close();
                }
                deliver(t);
                Ok(())
            })
        };
        match r {
            Some(r) => errors::to_code("tlsio_rustls_close", r),
            None => errors::HSM_ABI_ERR_INVALID_ARGUMENT,
        }
    })
}

/// # Safety
/// `h` is NULL or a live handle; `buffer` holds `size` readable bytes (NULL only with 0).
pub(super) unsafe extern "C" fn tlsio_rustls_send(
    h: CONCRETE_IO_HANDLE,
    buffer: *const c_void,
    size: usize,
    on_send_complete: ON_SEND_COMPLETE,
    callback_context: *mut c_void,
) -> c_int {
    ffi_boundary!("tlsio_rustls_send", {
        // SAFETY: caller's promise.
        let data = match unsafe { ptr::slice("buffer", buffer.cast::<u8>(), size) } {
            Ok(d) => d,
            Err(e) => return errors::record("tlsio_rustls_send", &e.into()),
        };
        let token = SendCallback {
            callback: on_send_complete,
            context: callback_context,
        };
        // SAFETY: caller's promise.
        let r = unsafe {
            with_tlsio("tlsio_rustls_send", h, |t| {
                let r = {
                    let Ok(mut io) = t.io.try_borrow_mut() else {
                        return Err(borrow_error());
                    };
                    io.send(data, token).map_err(AbiError::from)
                };
                deliver(t);
                r
            })
        };
        match r {
            Some(r) => errors::to_code("tlsio_rustls_send", r),
            None => errors::HSM_ABI_ERR_INVALID_ARGUMENT,
        }
    })
}

/// # Safety
/// `h` is NULL or a live handle.
pub(super) unsafe extern "C" fn tlsio_rustls_dowork(h: CONCRETE_IO_HANDLE) {
    ffi_boundary!("tlsio_rustls_dowork", {
        // SAFETY: caller's promise.
        unsafe {
            with_tlsio("tlsio_rustls_dowork", h, |t| {
                if let Ok(mut io) = t.io.try_borrow_mut() {
                    io.dowork();
                }
                deliver(t);
            })
        };
    })
}
