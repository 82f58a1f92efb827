//! The versioned signer table, as one path for Rust users: the C types and the key description
//! are in `ffi::signer_types` (below the registry, shared with the vendor layer), the exports in
//! `ffi::signer_exports` (above the registry).

pub use super::signer_exports::*;
pub use super::signer_types::*;
