//! The rustls TLS IO for the Azure IoT C SDK: `tlsio_rustls_get_interface_description()`
//! returns the SDK's eight-function `IO_INTERFACE_DESCRIPTION` (azure-c-shared-utility
//! `xio.h`), created from a `TLSIO_CONFIG` (`tlsio.h`). The state machine is
//! [`tlsio_bridge::io::TlsIo`]; this module only crosses the C boundary: it reads the SDK's
//! arguments, turns each event into one callback call, and resolves key options to signers
//! with `hsm::open_signer`, so an alias-key token (`pkcs11:`, `tpm:`, `dice:`,
//! `file:`) signs in its backend and the private key never enters the TLS layer.
//!
//! Callbacks run on the caller's thread from inside `open`, `close`, `send` and `dowork`; a
//! callback may call back into the IO (send, close, dowork, even destroy: destruction is then
//! deferred until the outermost call returns).
//!
//! The C types are generated into `include/tlsio_rustls.h` by `scripts/gen-headers.sh` from
//! this file alone; each group is skipped when the SDK's own header (`xio.h`, `tlsio.h`,
//! `optionhandler.h`) was included first.
#![allow(non_camel_case_types, non_snake_case)]

mod underlying;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::ffi::{CString, c_char, c_int, c_uchar, c_void};
use std::sync::{Arc, Mutex};

use hsm_core::Error;
use tlsio_bridge::io::TcpTransport;
use tlsio_bridge::io::options::{KeyResolver, OptionKind, RetrievedValue, option_kind};
use tlsio_bridge::io::{Event, OpenResult, SendResult, TlsIo, Transport};

use super::errors::{self, AbiError};
use super::handle::{self, HandleKind};
use super::{malloc, ptr};
use underlying::{RawIoInterface, UnderlyingTransport};

// The underlying IO's view of the SDK's table and result values is this module's.
const _: () = assert!(std::mem::size_of::<RawIoInterface>() == std::mem::size_of::<IO_INTERFACE_DESCRIPTION>());
const _: () = assert!(std::mem::align_of::<RawIoInterface>() == std::mem::align_of::<IO_INTERFACE_DESCRIPTION>());
const _: () = assert!(underlying::IO_OPEN_OK == IO_OPEN_RESULT::IO_OPEN_OK as c_int);
const _: () = assert!(underlying::IO_SEND_OK == IO_SEND_RESULT::IO_SEND_OK as c_int);
const _: () = assert!(underlying::IO_SEND_CANCELLED == IO_SEND_RESULT::IO_SEND_CANCELLED as c_int);

/// `CONCRETE_IO_HANDLE` (`xio.h`).
#[cfg(not(tlsio_sdk_xio))]
pub type CONCRETE_IO_HANDLE = *mut c_void;

/// `IO_OPEN_RESULT` (`xio.h`). The SDK declares it with `MU_DEFINE_ENUM`, which puts an
/// `IO_OPEN_RESULT_INVALID` value first: OK is 1, not 0. The interoperability suite
/// (`scripts/sdk-interop.sh`) asserts these numbers against the SDK's own header at compile time.
#[cfg(not(tlsio_sdk_xio))]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, clippy::enum_variant_names)] // every value the C ABI defines, named as the SDK names them
pub enum IO_OPEN_RESULT {
    IO_OPEN_RESULT_INVALID = 0,
    IO_OPEN_OK = 1,
    IO_OPEN_ERROR = 2,
    IO_OPEN_CANCELLED = 3,
}

/// `IO_SEND_RESULT` (`xio.h`), also from `MU_DEFINE_ENUM`: `IO_SEND_RESULT_INVALID` is 0 and
/// OK is 1 (checked against the SDK's header as above).
#[cfg(not(tlsio_sdk_xio))]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, clippy::enum_variant_names)] // every value the C ABI defines, named as the SDK names them
pub enum IO_SEND_RESULT {
    IO_SEND_RESULT_INVALID = 0,
    IO_SEND_OK = 1,
    IO_SEND_ERROR = 2,
    IO_SEND_CANCELLED = 3,
}

/// `OPTIONHANDLER_RESULT` (`optionhandler.h`), declared with `MU_DEFINE_ENUM_WITHOUT_INVALID`:
/// no INVALID value, OK is 0 (asserted against the SDK's header as above). The SDK's option
/// handler functions return it; this library compares their results with these values.
#[cfg(not(tlsio_sdk_optionhandler))]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, clippy::enum_variant_names)] // every value the C ABI defines, named as the SDK names them
pub enum OPTIONHANDLER_RESULT {
    OPTIONHANDLER_OK = 0,
    OPTIONHANDLER_ERROR = 1,
    OPTIONHANDLER_INVALIDARG = 2,
}

/// The SDK's opaque option handler (`optionhandler.h`).
#[cfg(not(tlsio_sdk_optionhandler))]
pub struct OPTIONHANDLER_HANDLE_DATA_TAG {
    _opaque: [u8; 0],
}

/// `OPTIONHANDLER_HANDLE` (`optionhandler.h`).
#[cfg(not(tlsio_sdk_optionhandler))]
pub type OPTIONHANDLER_HANDLE = *mut OPTIONHANDLER_HANDLE_DATA_TAG;

#[cfg(not(tlsio_sdk_xio))]
pub type ON_BYTES_RECEIVED = Option<unsafe extern "C" fn(context: *mut c_void, buffer: *const c_uchar, size: usize)>;
#[cfg(not(tlsio_sdk_xio))]
pub type ON_SEND_COMPLETE = Option<unsafe extern "C" fn(context: *mut c_void, send_result: IO_SEND_RESULT)>;
#[cfg(not(tlsio_sdk_xio))]
pub type ON_IO_OPEN_COMPLETE = Option<unsafe extern "C" fn(context: *mut c_void, open_result: IO_OPEN_RESULT)>;
#[cfg(not(tlsio_sdk_xio))]
pub type ON_IO_CLOSE_COMPLETE = Option<unsafe extern "C" fn(context: *mut c_void)>;
#[cfg(not(tlsio_sdk_xio))]
pub type ON_IO_ERROR = Option<unsafe extern "C" fn(context: *mut c_void)>;

#[cfg(not(tlsio_sdk_xio))]
pub type IO_RETRIEVEOPTIONS = Option<unsafe extern "C" fn(concrete_io: CONCRETE_IO_HANDLE) -> OPTIONHANDLER_HANDLE>;
#[cfg(not(tlsio_sdk_xio))]
pub type IO_CREATE = Option<unsafe extern "C" fn(io_create_parameters: *mut c_void) -> CONCRETE_IO_HANDLE>;
#[cfg(not(tlsio_sdk_xio))]
pub type IO_DESTROY = Option<unsafe extern "C" fn(concrete_io: CONCRETE_IO_HANDLE)>;
#[cfg(not(tlsio_sdk_xio))]
pub type IO_OPEN = Option<
    unsafe extern "C" fn(
        concrete_io: CONCRETE_IO_HANDLE,
        on_io_open_complete: ON_IO_OPEN_COMPLETE,
        on_io_open_complete_context: *mut c_void,
        on_bytes_received: ON_BYTES_RECEIVED,
        on_bytes_received_context: *mut c_void,
        on_io_error: ON_IO_ERROR,
        on_io_error_context: *mut c_void,
    ) -> c_int,
>;
#[cfg(not(tlsio_sdk_xio))]
pub type IO_CLOSE = Option<
    unsafe extern "C" fn(
        concrete_io: CONCRETE_IO_HANDLE,
        on_io_close_complete: ON_IO_CLOSE_COMPLETE,
        callback_context: *mut c_void,
    ) -> c_int,
>;
#[cfg(not(tlsio_sdk_xio))]
pub type IO_SEND = Option<
    unsafe extern "C" fn(
        concrete_io: CONCRETE_IO_HANDLE,
        buffer: *const c_void,
        size: usize,
        on_send_complete: ON_SEND_COMPLETE,
        callback_context: *mut c_void,
    ) -> c_int,
>;
#[cfg(not(tlsio_sdk_xio))]
pub type IO_DOWORK = Option<unsafe extern "C" fn(concrete_io: CONCRETE_IO_HANDLE)>;
#[cfg(not(tlsio_sdk_xio))]
pub type IO_SETOPTION = Option<
    unsafe extern "C" fn(concrete_io: CONCRETE_IO_HANDLE, optionName: *const c_char, value: *const c_void) -> c_int,
>;

/// The SDK's IO function table (`xio.h`); field order is ABI.
#[cfg(not(tlsio_sdk_xio))]
#[repr(C)]
pub struct IO_INTERFACE_DESCRIPTION {
    pub concrete_io_retrieveoptions: IO_RETRIEVEOPTIONS,
    pub concrete_io_create: IO_CREATE,
    pub concrete_io_destroy: IO_DESTROY,
    pub concrete_io_open: IO_OPEN,
    pub concrete_io_close: IO_CLOSE,
    pub concrete_io_send: IO_SEND,
    pub concrete_io_dowork: IO_DOWORK,
    pub concrete_io_setoption: IO_SETOPTION,
}

/// The parameters of the TLS IO's create (`tlsio.h`). Fields appended by later SDK versions
/// (`invoke_on_send_complete_callback_for_fragments`, `protocol`) follow these four and are
/// not read.
#[cfg(not(tlsio_sdk_tlsio))]
#[repr(C)]
pub struct TLSIO_CONFIG {
    pub hostname: *const c_char,
    pub port: c_int,
    pub underlying_io_interface: *const IO_INTERFACE_DESCRIPTION,
    pub underlying_io_parameters: *mut c_void,
}

static INTERFACE: IO_INTERFACE_DESCRIPTION = IO_INTERFACE_DESCRIPTION {
    concrete_io_retrieveoptions: Some(tlsio_rustls_retrieveoptions),
    concrete_io_create: Some(tlsio_rustls_create),
    concrete_io_destroy: Some(tlsio_rustls_destroy),
    concrete_io_open: Some(tlsio_rustls_open),
    concrete_io_close: Some(tlsio_rustls_close),
    concrete_io_send: Some(tlsio_rustls_send),
    concrete_io_dowork: Some(tlsio_rustls_dowork),
    concrete_io_setoption: Some(tlsio_rustls_setoption),
};

/// The rustls TLS IO: what `platform_get_default_tlsio()` returns to make the SDK use it.
/// Static; never NULL; never free it.
///
/// Options (`setoption`): `TrustedCerts` (PEM; without it the system trust store is used),
/// `x509certificate` + `x509privatekey` or `x509EccCertificate` + `x509EccAliasKey` (a PEM
/// chain, and an alias-key token such as a `pkcs11:` URI, or a PEM key for compatibility),
/// `tls_version` (`int*`: 12 = TLS 1.2 and 1.3, 13 = TLS 1.3 only), `underlying_io_options`,
/// `x509PrivatekeyType` (0 only), `tls_renegotiation` (ignored). Other names go to the
/// underlying IO when there is one, else fail with `HSM_ABI_ERR_UNSUPPORTED`.
#[unsafe(no_mangle)]
pub extern "C" fn tlsio_rustls_get_interface_description() -> *const IO_INTERFACE_DESCRIPTION {
    ffi_boundary!("tlsio_rustls_get_interface_description", {
        std::ptr::from_ref(&INTERFACE)
    })
}

/// What a send's completion calls.
#[derive(Debug, Clone, Copy)]
struct SendCallback {
    callback: ON_SEND_COMPLETE,
    context: *mut c_void,
}

#[derive(Clone, Copy)]
struct OpenCallbacks {
    on_open_complete: ON_IO_OPEN_COMPLETE,
    open_context: *mut c_void,
    on_bytes_received: ON_BYTES_RECEIVED,
    bytes_context: *mut c_void,
    on_error: ON_IO_ERROR,
    error_context: *mut c_void,
}

const NO_CALLBACKS: OpenCallbacks = OpenCallbacks {
    on_open_complete: None,
    open_context: std::ptr::null_mut(),
    on_bytes_received: None,
    bytes_context: std::ptr::null_mut(),
    on_error: None,
    error_context: std::ptr::null_mut(),
};

/// The TLS IO's transport: its own socket, or the SDK's underlying IO.
#[derive(Debug)]
enum AnyTransport {
    Tcp(TcpTransport),
    Underlying(UnderlyingTransport),
}

impl Transport for AnyTransport {
    fn open(&mut self, host: &str, port: u16) -> std::io::Result<()> {
        match self {
            AnyTransport::Tcp(t) => t.open(host, port),
            AnyTransport::Underlying(t) => t.open(host, port),
        }
    }
    fn poll_open(&mut self) -> std::io::Result<bool> {
        match self {
            AnyTransport::Tcp(t) => t.poll_open(),
            AnyTransport::Underlying(t) => t.poll_open(),
        }
    }
    fn pump(&mut self) {
        match self {
            AnyTransport::Tcp(t) => t.pump(),
            AnyTransport::Underlying(t) => t.pump(),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            AnyTransport::Tcp(t) => t.read(buf),
            AnyTransport::Underlying(t) => t.read(buf),
        }
    }
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            AnyTransport::Tcp(t) => t.write(buf),
            AnyTransport::Underlying(t) => t.write(buf),
        }
    }
    fn close(&mut self) {
        match self {
            AnyTransport::Tcp(t) => t.close(),
            AnyTransport::Underlying(t) => t.close(),
        }
    }
}

type Io = TlsIo<AnyTransport, SendCallback>;

/// One TLS IO handle.
struct Tlsio {
    io: std::cell::RefCell<Io>,
    callbacks: Cell<OpenCallbacks>,
    close_callback: Cell<(ON_IO_CLOSE_COMPLETE, *mut c_void)>,
    /// Calls into this handle under way (callbacks may re-enter).
    depth: Cell<u32>,
    destroy_requested: Cell<bool>,
}

impl HandleKind for Tlsio {
    const NAME: &'static str = "rustls TLS IO";
}

fn resolver() -> KeyResolver {
    Arc::new(crate::open_signer)
}

/// Run `f` on the handle; destroy it afterwards if a callback asked for that meanwhile.
///
/// # Safety
/// `h` is NULL or a handle from `tlsio_rustls_create`, used on one thread at a time.
unsafe fn with_tlsio<R>(op: &'static str, h: CONCRETE_IO_HANDLE, f: impl FnOnce(&Tlsio) -> R) -> Option<R> {
    // SAFETY: caller's promise.
    let t = match unsafe { handle::get::<Tlsio>(h) } {
        Ok(t) => t,
        Err(e) => {
            errors::record(op, &e.into());
            return None;
        }
    };
    t.depth.set(t.depth.get() + 1);
    let r = f(t);
    t.depth.set(t.depth.get() - 1);
    if t.depth.get() == 0 && t.destroy_requested.get() {
        // SAFETY: the outermost call on this handle, which was asked to be destroyed.
        if let Err(e) = unsafe { handle::destroy::<Tlsio>(h) } {
            errors::record(op, &e.into());
        }
    }
    Some(r)
}

/// Make the callbacks of every queued event, one at a time, without holding the IO borrowed.
fn deliver(t: &Tlsio) {
    loop {
        let (event, last_error) = {
            let Ok(mut io) = t.io.try_borrow_mut() else {
                return;
            };
            let e = io.next_event();
            (e, io.last_error().map(str::to_string))
        };
        let Some(event) = event else {
            return;
        };
        if t.destroy_requested.get() {
            return;
        }
        let cbs = t.callbacks.get();
        let tls_failure = |what: &str| {
            let e = Error::Device {
                origin: hsm_core::Origin::Tls,
                op: what.to_string(),
                rv: 0,
                message: last_error.clone().unwrap_or_else(|| "unknown cause".into()),
            };
            errors::record("tlsio_rustls", &e.into());
        };
        match event {
            Event::OpenComplete(result) => {
                let r = match result {
                    OpenResult::Ok => IO_OPEN_RESULT::IO_OPEN_OK,
                    OpenResult::Error => {
                        tls_failure("open");
                        IO_OPEN_RESULT::IO_OPEN_ERROR
                    }
                    OpenResult::Cancelled => IO_OPEN_RESULT::IO_OPEN_CANCELLED,
                };
                if let Some(cb) = cbs.on_open_complete {
                    // SAFETY: the SDK's callback with the context it gave to open.
                    unsafe { cb(cbs.open_context, r) };
                }
            }
            Event::BytesReceived(bytes) => {
                if let Some(cb) = cbs.on_bytes_received {
                    // SAFETY: the SDK's callback; `bytes` stays alive during the call.
                    unsafe { cb(cbs.bytes_context, bytes.as_ptr(), bytes.len()) };
                }
            }
            Event::SendComplete(s, result) => {
                let r = match result {
                    SendResult::Ok => IO_SEND_RESULT::IO_SEND_OK,
                    SendResult::Error => IO_SEND_RESULT::IO_SEND_ERROR,
                    SendResult::Cancelled => IO_SEND_RESULT::IO_SEND_CANCELLED,
                };
                if let Some(cb) = s.callback {
                    // SAFETY: the SDK's callback with the context it gave to send.
                    unsafe { cb(s.context, r) };
                }
            }
            Event::Error => {
                tls_failure("connection");
                if let Some(cb) = cbs.on_error {
                    // SAFETY: the SDK's callback with the context it gave to open.
                    unsafe { cb(cbs.error_context) };
                }
            }
            Event::CloseComplete => {
                let (cb, ctx) = t.close_callback.replace((None, std::ptr::null_mut()));
                if let Some(cb) = cb {
                    // SAFETY: the SDK's callback with the context it gave to close.
                    unsafe { cb(ctx) };
                }
            }
        }
    }
}

fn borrow_error() -> AbiError {
    Error::invalid("concrete_io", "this TLS IO is busy in another call on the same thread").into()
}

/// # Safety
/// `parameters` is NULL or a valid `TLSIO_CONFIG*` (with a valid underlying IO table, if any).
unsafe extern "C" fn tlsio_rustls_create(parameters: *mut c_void) -> CONCRETE_IO_HANDLE {
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
unsafe extern "C" fn tlsio_rustls_destroy(h: CONCRETE_IO_HANDLE) {
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
unsafe extern "C" fn tlsio_rustls_open(
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
unsafe extern "C" fn tlsio_rustls_close(
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
unsafe extern "C" fn tlsio_rustls_send(
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
unsafe extern "C" fn tlsio_rustls_dowork(h: CONCRETE_IO_HANDLE) {
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

/// Unknown option names already logged (each is logged once per process).
static UNKNOWN_LOGGED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// # Safety
/// `h` is NULL or a live handle; `name` NULL or NUL-terminated; `value` what the option takes.
unsafe extern "C" fn tlsio_rustls_setoption(h: CONCRETE_IO_HANDLE, name: *const c_char, value: *const c_void) -> c_int {
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

/// The C shim (`tlsio/optionhandler_shim.c`) over the SDK's OptionHandler API, which it
/// references weakly. Each declaration sits in its function so that cbindgen, which reads this
/// crate for the public headers, does not see these private symbols.
mod shim {
    use std::ffi::{c_char, c_int, c_void};

    pub(super) type Clone = unsafe extern "C" fn(*const c_char, *mut c_void) -> *mut c_void;
    pub(super) type Destroy = unsafe extern "C" fn(*const c_char, *mut c_void);
    pub(super) type Set = unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_void) -> c_int;

    /// Whether the SDK's OptionHandler functions are linked into the program.
    pub(super) fn available() -> bool {
        unsafe extern "C" {
            fn hsm_abi_tlsio_option_handler_available() -> c_int;
        }
        // SAFETY: no arguments; reads the addresses of weak symbols.
        unsafe { hsm_abi_tlsio_option_handler_available() != 0 }
    }

    /// `OptionHandler_Create`, or NULL when absent.
    ///
    /// # Safety
    /// The callbacks follow the option handler's contract.
    pub(super) unsafe fn create(clone: Clone, destroy: Destroy, set: Set) -> *mut c_void {
        unsafe extern "C" {
            fn hsm_abi_tlsio_option_handler_create(clone: Clone, destroy: Destroy, set: Set) -> *mut c_void;
        }
        // SAFETY: forwarded promise.
        unsafe { hsm_abi_tlsio_option_handler_create(clone, destroy, set) }
    }

    /// `OptionHandler_AddOption`: 0 on success.
    ///
    /// # Safety
    /// `handle` is live; `name` NUL-terminated; `value` what the clone callback takes.
    pub(super) unsafe fn add(handle: *mut c_void, name: *const c_char, value: *mut c_void) -> c_int {
        unsafe extern "C" {
            fn hsm_abi_tlsio_option_handler_add(handle: *mut c_void, name: *const c_char, value: *mut c_void) -> c_int;
        }
        // SAFETY: forwarded promise.
        unsafe { hsm_abi_tlsio_option_handler_add(handle, name, value) }
    }

    /// `OptionHandler_FeedOptions`: 0 on success.
    ///
    /// # Safety
    /// `handle` is an SDK option handler; `destination` a live IO handle of the kind it feeds.
    pub(super) unsafe fn feed(handle: *mut c_void, destination: *mut c_void) -> c_int {
        unsafe extern "C" {
            fn hsm_abi_tlsio_option_handler_feed(handle: *mut c_void, destination: *mut c_void) -> c_int;
        }
        // SAFETY: forwarded promise.
        unsafe { hsm_abi_tlsio_option_handler_feed(handle, destination) }
    }

    /// `OptionHandler_Destroy`.
    ///
    /// # Safety
    /// `handle` is live and not used afterwards.
    pub(super) unsafe fn destroy(handle: *mut c_void) {
        unsafe extern "C" {
            fn hsm_abi_tlsio_option_handler_destroy(handle: *mut c_void);
        }
        // SAFETY: forwarded promise.
        unsafe { hsm_abi_tlsio_option_handler_destroy(handle) }
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
unsafe extern "C" fn tlsio_rustls_retrieveoptions(h: CONCRETE_IO_HANDLE) -> OPTIONHANDLER_HANDLE {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_create_checks_its_arguments() {
        let t = tlsio_rustls_get_interface_description();
        // SAFETY: a static table.
        let t = unsafe { &*t };
        assert!(t.concrete_io_retrieveoptions.is_some() && t.concrete_io_setoption.is_some());
        let create = t.concrete_io_create.unwrap();
        // SAFETY: NULL is allowed and reported.
        assert!(unsafe { create(std::ptr::null_mut()) }.is_null());
        assert!(errors::last_error().contains("TLSIO_CONFIG"));
        let mut cfg = TLSIO_CONFIG {
            hostname: c"localhost".as_ptr(),
            port: 70000,
            underlying_io_interface: std::ptr::null(),
            underlying_io_parameters: std::ptr::null_mut(),
        };
        // SAFETY: a valid config with a bad port.
        assert!(unsafe { create((&raw mut cfg).cast()) }.is_null());
        assert!(errors::last_error().contains("70000"));
        cfg.port = 443;
        // SAFETY: a valid config.
        let h = unsafe { create((&raw mut cfg).cast()) };
        assert!(!h.is_null());
        let set = t.concrete_io_setoption.unwrap();
        // SAFETY: live handle, valid option values.
        unsafe {
            assert_eq!(
                set(h, c"no_such_option".as_ptr(), c"x".as_ptr().cast()),
                errors::HSM_ABI_ERR_UNSUPPORTED
            );
            assert_eq!(
                set(h, c"x509privatekey".as_ptr(), c"not a token".as_ptr().cast()),
                errors::HSM_ABI_ERR_PARSE
            );
            let v: c_int = 13;
            assert_eq!(set(h, c"tls_version".as_ptr(), (&raw const v).cast()), 0);
            // Without the SDK linked, retrieveoptions reports and returns NULL.
            assert!(t.concrete_io_retrieveoptions.unwrap()(h).is_null());
            assert!(errors::last_error().contains("OptionHandler"));
            // Send before open fails; close of a closed IO does nothing.
            assert_ne!(
                t.concrete_io_send.unwrap()(h, c"x".as_ptr().cast(), 1, None, std::ptr::null_mut()),
                0
            );
            assert_eq!(t.concrete_io_close.unwrap()(h, None, std::ptr::null_mut()), 0);
            t.concrete_io_destroy.unwrap()(h);
            t.concrete_io_destroy.unwrap()(std::ptr::null_mut());
        }
    }
}
