//! A transport over an "underlying IO" the SDK hands the TLS layer (`TLSIO_CONFIG`'s
//! `underlying_io_interface`: a socket IO, an HTTP proxy IO...): bytes go out by its `send`,
//! come in through its `on_bytes_received`, and its `dowork` runs once per TLS `dowork`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_uchar, c_void};
use std::io;

use tlsio_bridge::io::Transport;

/// The SDK's `IO_INTERFACE_DESCRIPTION`, as this module calls it: the callbacks it gives the
/// underlying IO take their result enums as `int` (same C ABI), so that a value coming in from
/// C is never read as a Rust enum. The parent module asserts at compile time that it has the
/// size and alignment of its `IO_INTERFACE_DESCRIPTION`.
#[repr(C)]
pub(crate) struct RawIoInterface {
    retrieveoptions: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    create: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    destroy: Option<unsafe extern "C" fn(*mut c_void)>,
    #[allow(clippy::type_complexity)]
    open: Option<
        unsafe extern "C" fn(
            *mut c_void,
            Option<unsafe extern "C" fn(*mut c_void, c_int)>,
            *mut c_void,
            Option<unsafe extern "C" fn(*mut c_void, *const c_uchar, usize)>,
            *mut c_void,
            Option<unsafe extern "C" fn(*mut c_void)>,
            *mut c_void,
        ) -> c_int,
    >,
    close: Option<unsafe extern "C" fn(*mut c_void, Option<unsafe extern "C" fn(*mut c_void)>, *mut c_void) -> c_int>,
    send: Option<
        unsafe extern "C" fn(
            *mut c_void,
            *const c_void,
            usize,
            Option<unsafe extern "C" fn(*mut c_void, c_int)>,
            *mut c_void,
        ) -> c_int,
    >,
    dowork: Option<unsafe extern "C" fn(*mut c_void)>,
    setoption: Option<unsafe extern "C" fn(*mut c_void, *const c_char, *const c_void) -> c_int>,
}

/// `IO_OPEN_OK`, `IO_SEND_OK` and `IO_SEND_CANCELLED` (`xio.h`) as the `int`s the callbacks
/// receive; the parent module asserts at compile time that they are its enums' values.
pub(crate) const IO_OPEN_OK: c_int = 1;
pub(crate) const IO_SEND_OK: c_int = 1;
pub(crate) const IO_SEND_CANCELLED: c_int = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Closed,
    Opening,
    Open,
    Failed,
}

/// What the underlying IO's callbacks write to; boxed so its address is stable.
struct Shared {
    state: Cell<LinkState>,
    received: RefCell<VecDeque<u8>>,
    error: Cell<bool>,
}

/// An underlying IO instance, created from the SDK's table and parameters, destroyed on drop.
pub(crate) struct UnderlyingTransport {
    table: RawIoInterface,
    handle: *mut c_void,
    shared: Box<Shared>,
}

impl std::fmt::Debug for UnderlyingTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnderlyingTransport")
            .field("state", &self.shared.state.get())
            .finish_non_exhaustive()
    }
}

impl UnderlyingTransport {
    /// Create the underlying IO.
    ///
    /// # Safety
    /// `iface` points to a valid `IO_INTERFACE_DESCRIPTION` (read as [`RawIoInterface`]) whose
    /// functions follow the SDK's xio contract; `parameters` is what its `create` expects.
    pub(crate) unsafe fn create(iface: *const RawIoInterface, parameters: *mut c_void) -> hsm_core::Result<Self> {
        // SAFETY: same size and layout as `IO_INTERFACE_DESCRIPTION` (asserted in the parent
        // module; only callback argument types differ, `int` for a C enum, which has the same
        // ABI); valid for reads per the caller.
        let table = unsafe { iface.read() };
        let (Some(create), Some(_), Some(_), Some(_), Some(_), Some(_)) = (
            table.create,
            table.destroy,
            table.open,
            table.close,
            table.send,
            table.dowork,
        ) else {
            return Err(hsm_core::Error::invalid(
                "underlying_io_interface",
                "create, destroy, open, close, send and dowork must not be NULL",
            ));
        };
        // SAFETY: the SDK's create with the parameters meant for it (caller's promise).
        let handle = unsafe { create(parameters) };
        if handle.is_null() {
            return Err(hsm_core::Error::invalid(
                "underlying_io_interface",
                "its create returned NULL",
            ));
        }
        Ok(UnderlyingTransport {
            table,
            handle,
            shared: Box::new(Shared {
                state: Cell::new(LinkState::Closed),
                received: RefCell::new(VecDeque::new()),
                error: Cell::new(false),
            }),
        })
    }

    fn context(&self) -> *mut c_void {
        std::ptr::from_ref::<Shared>(&self.shared).cast_mut().cast()
    }

    /// Pass an option the TLS layer does not know to the underlying IO.
    ///
    /// # Safety
    /// `name` is NUL-terminated; `value` is what the option expects.
    pub(crate) unsafe fn set_option(&mut self, name: *const c_char, value: *const c_void) -> c_int {
        match self.table.setoption {
            // SAFETY: the underlying IO's own setoption on its live handle.
            Some(f) => unsafe { f(self.handle, name, value) },
            None => -1,
        }
    }

    /// The handle of the underlying IO (to feed it options).
    pub(crate) fn handle(&self) -> *mut c_void {
        self.handle
    }
}

/// # Safety
/// `ctx` is the `Shared` of a live transport.
unsafe fn shared<'a>(ctx: *mut c_void) -> Option<&'a Shared> {
    // SAFETY: the context given to the underlying IO is the address of a boxed `Shared` that
    // outlives the underlying IO (destroyed first in `Drop`).
    unsafe { ctx.cast::<Shared>().cast_const().as_ref() }
}

unsafe extern "C" fn on_open_complete(ctx: *mut c_void, result: c_int) {
    // SAFETY: our context (see `shared`).
    if let Some(s) = unsafe { shared(ctx) } {
        s.state.set(if result == IO_OPEN_OK {
            LinkState::Open
        } else {
            LinkState::Failed
        });
    }
}

unsafe extern "C" fn on_bytes_received(ctx: *mut c_void, buffer: *const c_uchar, size: usize) {
    // SAFETY: our context (see `shared`).
    let Some(s) = (unsafe { shared(ctx) }) else {
        return;
    };
    if buffer.is_null() || size == 0 {
        return;
    }
    // SAFETY: the underlying IO passes `size` readable bytes at `buffer` for this call.
    let data = unsafe { std::slice::from_raw_parts(buffer, size) };
    if let Ok(mut r) = s.received.try_borrow_mut() {
        r.extend(data);
    } else {
        s.error.set(true);
    }
}

unsafe extern "C" fn on_error(ctx: *mut c_void) {
    // SAFETY: our context (see `shared`).
    if let Some(s) = unsafe { shared(ctx) } {
        s.error.set(true);
        if s.state.get() == LinkState::Opening {
            s.state.set(LinkState::Failed);
        }
    }
}

unsafe extern "C" fn on_send_complete(ctx: *mut c_void, result: c_int) {
    // SAFETY: our context (see `shared`).
    if let Some(s) = unsafe { shared(ctx) } {
        // IO_SEND_CANCELLED comes with a close we asked for; anything else but OK is an error.
        if result != IO_SEND_OK && result != IO_SEND_CANCELLED {
            s.error.set(true);
        }
    }
}

impl Transport for UnderlyingTransport {
    fn open(&mut self, _host: &str, _port: u16) -> io::Result<()> {
        self.shared.error.set(false);
        self.shared.received.borrow_mut().clear();
        self.shared.state.set(LinkState::Opening);
        let ctx = self.context();
        let Some(open) = self.table.open else {
            return Err(io::Error::other("the underlying IO has no open"));
        };
        // SAFETY: the underlying IO's open on its live handle; the callbacks' context is our
        // boxed `Shared`, alive until after the underlying IO is destroyed.
        let rc = unsafe {
            open(
                self.handle,
                Some(on_open_complete),
                ctx,
                Some(on_bytes_received),
                ctx,
                Some(on_error),
                ctx,
            )
        };
        if rc != 0 {
            self.shared.state.set(LinkState::Closed);
            return Err(io::Error::other(format!("the underlying IO's open failed ({rc})")));
        }
        Ok(())
    }

    fn poll_open(&mut self) -> io::Result<bool> {
        match self.shared.state.get() {
            LinkState::Open => Ok(true),
            LinkState::Opening => Ok(false),
            LinkState::Failed => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the underlying IO failed to open",
            )),
            LinkState::Closed => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the underlying IO is closed",
            )),
        }
    }

    fn pump(&mut self) {
        if let Some(dowork) = self.table.dowork {
            // SAFETY: the underlying IO's dowork on its live handle.
            unsafe { dowork(self.handle) };
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut r = self.shared.received.borrow_mut();
        if r.is_empty() {
            return if self.shared.error.get() {
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "the underlying IO reported an error",
                ))
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(r.len());
        for (dst, src) in buf.iter_mut().zip(r.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.shared.error.get() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the underlying IO reported an error",
            ));
        }
        let Some(send) = self.table.send else {
            return Err(io::Error::other("the underlying IO has no send"));
        };
        let ctx = self.context();
        // SAFETY: the underlying IO's send on its live handle; it copies or sends the bytes
        // before returning (xio contract) and completes through our callback.
        let rc = unsafe { send(self.handle, buf.as_ptr().cast(), buf.len(), Some(on_send_complete), ctx) };
        if rc != 0 {
            return Err(io::Error::other(format!("the underlying IO's send failed ({rc})")));
        }
        Ok(buf.len())
    }

    fn close(&mut self) {
        if self.shared.state.get() != LinkState::Closed
            && let Some(close) = self.table.close
        {
            // SAFETY: the underlying IO's close on its live handle, no callback.
            unsafe { close(self.handle, None, std::ptr::null_mut()) };
        }
        self.shared.state.set(LinkState::Closed);
    }
}

impl Drop for UnderlyingTransport {
    fn drop(&mut self) {
        if let Some(destroy) = self.table.destroy {
            // SAFETY: destroyed once, before `shared` (its callbacks' context) is freed.
            unsafe { destroy(self.handle) };
        }
    }
}
