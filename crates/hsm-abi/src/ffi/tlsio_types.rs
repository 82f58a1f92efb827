//! The C types of the SDK's IO interface (`xio.h`, `tlsio.h`, `optionhandler.h`) as the rustls
//! TLS IO uses them; cbindgen writes them into `include/tlsio_rustls.h`, each group guarded so the
//! SDK's own definitions win when its header was included first.

#![allow(non_camel_case_types, non_snake_case)]

use std::ffi::{c_char, c_int, c_uchar, c_void};

use super::underlying::{self, RawIoInterface};

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
