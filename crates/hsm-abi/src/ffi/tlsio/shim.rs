//! The C shim (`tlsio/optionhandler_shim.c`) over the SDK's OptionHandler API, which it
//! references weakly. Each declaration sits in its function so that cbindgen, which reads this
//! crate for the public headers, does not see these private symbols.

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
