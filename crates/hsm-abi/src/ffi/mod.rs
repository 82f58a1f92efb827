//! Everything `extern "C"`: the only module of the crate with `unsafe` code.
//!
//! Rules kept by every export:
//! - the body runs inside `ffi_boundary!` (below): a panic never crosses into C, the function
//!   returns a fallback chosen by its return type (`int`: [`errors::HSM_ABI_ERR_PANIC`],
//!   pointer: NULL, `void`: nothing, `size_t` and `unsigned long`: 0);
//! - pointers from C go through the helpers of `ptr`, which turn NULL and invalid UTF-8 into
//!   errors; output parameters are written only on success (documented exceptions: the
//!   "needed size" of a too-small buffer);
//! - memory handed to C comes from `malloc` (module `malloc`) and is released with `free()`;
//! - every failure is logged with `tracing` and kept as this thread's last error
//!   (`errors::hsm_abi_last_error`).

/// Run an export body: catch panics, record them, and return the fallback value of the
/// function's return type. `$op` names the export in logs and in the last error.
macro_rules! ffi_boundary {
    ($op:literal, $body:block) => {{
        $crate::ffi::boundary::enter();
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(payload) => {
                $crate::ffi::boundary::panicked($op, payload.as_ref());
                $crate::ffi::boundary::Fallback::fallback()
            }
        }
    }};
}

pub(crate) mod boundary;
pub mod errors;
pub mod ext;
mod handle;
mod malloc;
mod ptr;
// The C SDK's hsm_client_data.h types, mirrored field for field and documented there; cbindgen copies doc
// comments into the generated headers, so they are not repeated here.
#[allow(missing_docs)]
pub mod sdk;
pub mod signer;
// `pub` in the C-facing modules marks the C ABI (cbindgen writes headers for `pub` items only),
// not Rust API: unreachable from Rust by design.
#[allow(unreachable_pub)]
mod signer_exports;
// The signer table's entries are documented in the typedefs they hold (cbindgen writes the header).
#[allow(missing_docs)]
pub(crate) mod signer_types;
#[allow(unreachable_pub)]
mod tlsio;
#[cfg(feature = "vendor")]
pub mod vendor;
// In this order, not sorted: cbindgen writes the exports in the order of the modules, and
// include/hsm_abi.h lists the registration before the built-in table.
#[cfg(feature = "vendor")]
#[allow(unreachable_pub)]
mod vendor_exports;

#[cfg(feature = "vendor")]
#[allow(unreachable_pub)]
mod vendor_builtin;
