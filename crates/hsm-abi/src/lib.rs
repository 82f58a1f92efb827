//! The C ABI of hsm-abi.
//!
//! This crate builds `libhsm_abi.a` / `libhsm_abi.so`, the one library a C program links:
//!
//! - the seven symbols of the Azure IoT C SDK's custom HSM interface (`hsm_client_*`, see
//!   `include/hsm_client_data.h`), so the unmodified SDK can use any backend of this project;
//! - the `hsm_abi_*` extensions (`include/hsm_abi.h`): configuration, error codes and messages,
//!   and a versioned signer table shared by the TLS bridge and vendor backends.
//!
//! The safe part, from a configuration to backend objects, is the facade crate `hsm`; this crate
//! is the C layer over it. All `unsafe` code lives in the `ffi` module; [`vendor`] connects the
//! vendor tables of `ffi::vendor` to `hsm::vendor`.
#![warn(missing_docs)]
#![deny(unsafe_code)]
#![deny(unreachable_pub)]

#[allow(unsafe_code)]
pub mod ffi;
mod state;
#[cfg(feature = "vendor")]
pub mod vendor;

/// Make the backends that need this library (vendor tables) available to `hsm`; called by every
/// entry point that opens identities.
pub(crate) fn install_backends() {
    #[cfg(feature = "vendor")]
    vendor::install();
}

/// `hsm::open_signer` with this library's backends installed.
pub(crate) fn open_signer(token: &str) -> hsm_core::Result<std::sync::Arc<dyn hsm_core::SigningKey>> {
    install_backends();
    hsm::open_signer(token)
}
