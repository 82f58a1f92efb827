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
//! Errors answer DPS's error body (`dps_wire::ErrorDetails`: `errorCode`, `trackingId`, `message`,
//! `timestampUtc`, `info` where it applies) with the code in `x-ms-error-code`; failed authentication is
//! 401 with errorCode 401002 and a message naming the check that failed.
//!
//! The same port serves the DPS service API (`2021-10-01`, `enrollments_api.rs`): CRUD of individual
//! enrollments and enrollment groups with etags, bulk calls of up to [`MAX_BULK`], paged queries and
//! registration states, authenticated with service SAS tokens of the [`ServicePolicy`]s in
//! [`ServerOptions::service_policies`]. Records live in a SQLite store (`store.rs`; in
//! [`ServerOptions::state_dir`], else in memory) that the configuration's enrollments seed; device
//! registrations are checked against it at once, and a `disabled` enrollment ends them `disabled`.
#![forbid(unsafe_code)]

mod amqp; // issue 23: AMQP
mod auth;
mod config;
mod credentials;
mod enrollments_api;
mod error;
mod http;
mod issuance;
mod limits;
mod mqtt;
mod records;
mod server;
mod service;
mod service_auth;
mod store;
mod tls;
mod tpm;
mod websocket;

/// Entry points for the fuzz targets (`fuzz/`): not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use std::sync::OnceLock;

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
            let store = crate::store::Store::open(None).ok()?;
            Service::new(&config, store, Vec::new(), std::time::Duration::from_secs(2)).ok()
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

pub use config::{DEFAULT_ASSIGNED_HUB, EmulatorConfig, Enrollment, ServiceSettings};
pub use enrollments_api::MAX_BULK;
pub use error::Error;
pub use issuance::{FIRST_ISSUING_API_VERSION, IssuanceOptions, IssuingCa, MAX_VALIDITY_DAYS, MIN_VALIDITY_DAYS};
pub use server::{Emulator, ServerOptions};
pub use service_auth::{ServicePolicy, ServiceRight};
pub use store::STATE_FILE;
