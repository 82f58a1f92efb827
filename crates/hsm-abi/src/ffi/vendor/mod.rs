//! Vendor backends: the versioned table a hardware vendor implements in C (or Rust), loaded from
//! a shared object at run time or registered by a C program linked with the library.
//!
//! Memory rule (one rule for every field): **output buffers belong to the caller**. A function
//! that produces bytes takes `buf` and `len`: on entry `*len` is the capacity of `buf` (0 when
//! `buf` is NULL). If the output does not fit (or `buf` is NULL), the function stores the needed
//! size in `*len`, writes nothing to `buf` and returns `HSM_ABI_ERR_BUFFER_TOO_SMALL`. On success
//! it writes the output to `buf[0..n]`, stores `n` in `*len` and returns 0. The vendor never
//! hands memory to the library and the library never frees anything of the vendor's, so the two
//! sides may use different allocators.
//!
//! Threading rule: `open` and `close` are never called concurrently with other calls on the same
//! identity; every other function may be called from any thread, concurrently, on the same
//! identity too. A device that cannot do that serializes inside the vendor library.
//!
//! Everything the library reads back from a vendor is checked (lengths against capacities,
//! writes past the capacity, UTF-8, key descriptions, signature DER and validity), so a vendor
//! returning garbage gives an error instead of undefined behaviour in the library.
//!
//! Layout (the dependency runs one way, top to bottom):
//! - [`table_v1`]: the C table of version 1, its function types and constants (what a vendor
//!   implements; `include/hsm_abi.h` is generated from it);
//! - [`loader`]: reading and validating a table, loading it from a shared object, the registry
//!   of tables registered by the application;
//! - [`raw`]: an identity opened in a table, called through guarded buffers (the conformance
//!   probes and the checked calls behind `hsm::vendor::RawVendorIdentity`, implemented in
//!   `crate::vendor`).
//!
//! The C exports (`hsm_abi_vendor_register`, `hsm_abi_vendor_check_library`) are in
//! `ffi::vendor_exports`, the built-in backends seen as a vendor table in `ffi::vendor_builtin`:
//! both sit above the facade `hsm`, whose `vendor` module sees this one only through
//! `crate::vendor` (the loader it installs).

pub mod loader;
pub mod raw;
pub mod table_v1;

pub use loader::{BytesField, Capabilities, VendorTable};
pub(crate) use loader::{MAX_OUTPUT, V1_SIZE};
pub use raw::{Probe, RawIdentity};
pub use table_v1::*;
