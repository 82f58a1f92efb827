//! A local Azure Device Provisioning Service (DPS) emulator for tests and demos.
//!
//! It serves the DPS device REST API over HTTPS on 127.0.0.1 and authenticates devices for real:
//! client certificate chains (verified with webpki against the matching enrollment, after rustls has
//! checked the client's proof of possession during the handshake) and SAS tokens (HMAC-SHA256 with an
//! individual key or a key derived from a group key).
//!
//! - `PUT /{idScope}/registrations/{registrationId}/register?api-version=...` with
//!   `{"registrationId": ...}` answers `202 {"operationId", "status": "assigning"}`;
//! - `GET /{idScope}/registrations/{registrationId}/operations/{operationId}?api-version=...`
//!   answers `200 {"operationId", "status": "assigned", "registrationState": {...}}`.
//!
//! TPM registrations (a `tpm` node in the body) get the DPS activation challenge and are then checked with
//! the key they activated (see `tpm.rs`).
//!
//! Failed authentication answers 401 with `{"errorCode": 401002, "trackingId", "message"}`, where the
//! message names the check that failed.
#![forbid(unsafe_code)]

mod auth;
mod config;
mod error;
mod http;
mod mqtt;
mod server;
mod service;
mod tls;
mod tpm;

pub use config::{DEFAULT_ASSIGNED_HUB, EmulatorConfig, Enrollment};
pub use error::Error;
pub use server::Emulator;
