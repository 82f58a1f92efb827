//! The C ABI of hsm-abi.
//!
//! This crate builds `libhsm_abi.a` / `libhsm_abi.so`, the one library a C program links:
//!
//! - the seven symbols of the Azure IoT C SDK's custom HSM interface (`hsm_client_*`, see
//!   `include/hsm_client_data.h`), so the unmodified SDK can use any backend of this project;
//! - the `hsm_abi_*` extensions (`include/hsm_abi.h`): configuration, error codes and messages,
//!   and a versioned signer table shared by the TLS bridge and vendor backends.
//!
//! [`registry`] is the safe part: it turns a [`hsm_core::config::Config`] into backend objects
//! and is used by the CLI as well. All `unsafe` code lives in the `ffi` module.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod ffi;
pub mod registry;
mod state;
#[cfg(feature = "vendor")]
pub mod vendor;

pub use state::{clear_config, set_config};
