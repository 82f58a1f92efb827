//! The C exports of the vendor loader: registering a table, checking a library.

use std::ffi::{c_char, c_int};
use std::path::Path;

use super::errors::to_code;
use super::ptr;
use super::vendor::{HSM_ABI_VENDOR_TABLE, VendorTable};

/// Register a vendor table from a C program linked with this library, before the SDK starts.
/// The table is validated (version, `struct_size`, mandatory fields, complete optional groups)
/// and copied; its `name` selects it in the configuration (`registered = "name"`); registering a
/// name again replaces the table for identities opened afterwards. Returns 0, or
/// `HSM_ABI_ERR_CONFIG` with the reason in `hsm_abi_last_error`.
///
/// # Safety
/// `table` is NULL or a valid table; the functions it points to stay valid for the process.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_vendor_register(table: *const HSM_ABI_VENDOR_TABLE) -> c_int {
    ffi_boundary!("hsm_abi_vendor_register", {
        // SAFETY: promise of the caller, as documented.
        let r = unsafe { VendorTable::register(table) }.map(|_| ());
        to_code("hsm_abi_vendor_register", r.map_err(Into::into))
    })
}

/// Load a vendor shared object (as `library = "..."` does) and check its table, without opening
/// an identity. Returns 0 or an error code (reason in `hsm_abi_last_error`).
///
/// # Safety
/// `path` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_vendor_check_library(path: *const c_char) -> c_int {
    ffi_boundary!("hsm_abi_vendor_check_library", {
        // SAFETY: promise of the caller, as documented.
        let r = unsafe { ptr::cstr("path", path) }.and_then(|p| VendorTable::load(Path::new(p)).map(|_| ()));
        to_code("hsm_abi_vendor_check_library", r.map_err(Into::into))
    })
}
