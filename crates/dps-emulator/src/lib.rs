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
//!   answers `200 {"operationId", "status": "assigned", "registrationState": {...}}`;
//! - `POST /{idScope}/registrations/{registrationId}?api-version=...` (status lookup) answers the
//!   registration state of an assigned device.
//!
//! A register body with a `csr` (DPS device API `2025-07-01-preview`) gets an `issuedCertificateChain`
//! from the emulator's issuing CA (`issuance.rs`); the MQTT listener also serves IoT Hub
//! `$iothub/credentials` renewal (`credentials.rs`).
//!
//! TPM registrations (a `tpm` node in the body) get the DPS activation challenge and are then checked with
//! the key they activated (see `tpm.rs`).
//!
//! Failed authentication answers 401 with `{"errorCode": 401002, "trackingId", "message"}`, where the
//! message names the check that failed.
#![forbid(unsafe_code)]

mod auth;
mod config;
mod credentials;
mod error;
mod http;
mod issuance;
mod mqtt;
mod server;
mod service;
mod tls;
mod tpm;
mod websocket;

/// Entry points for the fuzz targets (`fuzz/`): not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use std::sync::OnceLock;

    use crate::auth::Trust;
    use crate::config::{EmulatorConfig, Enrollment};
    use crate::service::Service;

    /// Read requests from `data` as a connection would deliver them, answer each with the service (one
    /// symmetric-key group enrollment) and write the answers to a buffer.
    pub fn http(data: &[u8]) {
        static SERVICE: OnceLock<Option<Service>> = OnceLock::new();
        let service = SERVICE.get_or_init(|| {
            let config = EmulatorConfig {
                id_scope: "0ne00000A0A".into(),
                assigned_hub: "hub.example.test".into(),
                enrollments: vec![Enrollment::SymmetricGroup {
                    name: "g".into(),
                    primary_key: "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==".into(),
                    secondary_key: None,
                }],
            };
            let trust = Trust::new(&config).ok()?;
            Some(Service::new(
                config.id_scope,
                config.assigned_hub,
                trust,
                std::time::Duration::from_secs(2),
            ))
        });
        let Some(service) = service else { return };
        let mut input = data;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Ok(Some(request)) = crate::http::read_request(&mut input, &mut buf) {
            let _ = service.handle(&request, None).write_to(&mut out, request.keep_alive);
        }
    }
}

pub use config::{DEFAULT_ASSIGNED_HUB, EmulatorConfig, Enrollment};
pub use error::Error;
pub use issuance::{FIRST_ISSUING_API_VERSION, IssuanceOptions, IssuingCa, MAX_VALIDITY_DAYS, MIN_VALIDITY_DAYS};
pub use server::{Emulator, ServerOptions};
