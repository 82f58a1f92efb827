//! The Azure IoT Device Provisioning Service wire, typed once for every side of this project:
//! the device library (`dps-device`), the service library (`dps-service`) and the emulator
//! (`dps-emulator`) build and read DPS messages only through these types.
//!
//! - [`api_version`]: the api-versions as a type, and which one a request needs.
//! - [`error`]: the error body every DPS answer of status >= 400 carries.
//! - [`device`]: the device API (registration request, operation status, registration state).
//! - [`service`]: the service API (enrollments, groups, attestation mechanisms, bulk, queries).
//!
//! Every object keeps the fields it does not model (`extra`), so a read-modify-write never drops
//! what a newer service version sent. The published specification's examples
//! (`../shared/specs/dps`) round-trip through these types (`tests/spec_device.rs`, `tests/spec_service.rs`).

pub mod api_version;
pub mod device;
pub mod error;
pub mod service;

pub use api_version::ApiVersion;
pub use error::ErrorDetails;
