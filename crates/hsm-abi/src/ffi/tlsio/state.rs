//! The state of one TLS IO handle: the SDK's callbacks, the transport (own socket or the SDK's
//! underlying IO), the re-entrancy count that defers destruction, and the delivery of the state
//! machine's events as callback calls.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Arc;

use hsm_core::Error;
use tlsio_bridge::io::options::KeyResolver;
use tlsio_bridge::io::{Event, OpenResult, SendResult, TcpTransport, TlsIo, Transport};

use super::tlsio_types::{
    CONCRETE_IO_HANDLE, IO_OPEN_RESULT, IO_SEND_RESULT, ON_BYTES_RECEIVED, ON_IO_CLOSE_COMPLETE, ON_IO_ERROR,
    ON_IO_OPEN_COMPLETE, ON_SEND_COMPLETE,
};
use super::underlying::UnderlyingTransport;
use crate::ffi::errors::{self, AbiError};
use crate::ffi::handle::{self, HandleKind};

/// What a send's completion calls.
#[derive(Debug, Clone, Copy)]
pub(super) struct SendCallback {
    pub(super) callback: ON_SEND_COMPLETE,
    pub(super) context: *mut c_void,
}

#[derive(Clone, Copy)]
pub(super) struct OpenCallbacks {
    pub(super) on_open_complete: ON_IO_OPEN_COMPLETE,
    pub(super) open_context: *mut c_void,
    pub(super) on_bytes_received: ON_BYTES_RECEIVED,
    pub(super) bytes_context: *mut c_void,
    pub(super) on_error: ON_IO_ERROR,
    pub(super) error_context: *mut c_void,
}

pub(super) const NO_CALLBACKS: OpenCallbacks = OpenCallbacks {
    on_open_complete: None,
    open_context: std::ptr::null_mut(),
    on_bytes_received: None,
    bytes_context: std::ptr::null_mut(),
    on_error: None,
    error_context: std::ptr::null_mut(),
};

/// The TLS IO's transport: its own socket, or the SDK's underlying IO.
#[derive(Debug)]
pub(super) enum AnyTransport {
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

pub(super) type Io = TlsIo<AnyTransport, SendCallback>;

/// One TLS IO handle.
pub(super) struct Tlsio {
    pub(super) io: std::cell::RefCell<Io>,
    pub(super) callbacks: Cell<OpenCallbacks>,
    pub(super) close_callback: Cell<(ON_IO_CLOSE_COMPLETE, *mut c_void)>,
    /// Calls into this handle under way (callbacks may re-enter).
    pub(super) depth: Cell<u32>,
    pub(super) destroy_requested: Cell<bool>,
}

impl HandleKind for Tlsio {
    const NAME: &'static str = "rustls TLS IO";
}

pub(super) fn resolver() -> KeyResolver {
    Arc::new(crate::open_signer)
}

/// Run `f` on the handle; destroy it afterwards if a callback asked for that meanwhile.
///
/// # Safety
/// `h` is NULL or a handle from `tlsio_rustls_create`, used on one thread at a time.
pub(super) unsafe fn with_tlsio<R>(op: &'static str, h: CONCRETE_IO_HANDLE, f: impl FnOnce(&Tlsio) -> R) -> Option<R> {
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
pub(super) fn deliver(t: &Tlsio) {
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

pub(super) fn borrow_error() -> AbiError {
    Error::invalid("concrete_io", "this TLS IO is busy in another call on the same thread").into()
}
