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
//! `$iothub/credentials` renewal (`services/iot_hub.rs`).
//!
//! TPM registrations (a `tpm` node in the body) get the DPS activation challenge and are then checked with
//! the key they activated (see `tpm_attestation.rs`).
//!
//! The code: three services (`services/`: device API, service API, IoT Hub endpoints) answer
//! transport-neutral requests (`request.rs`) through one request handler; each listener (`listeners/`:
//! HTTPS, MQTT, AMQP, MQTT and AMQP over WebSockets) is an adapter from its wire to those requests, started through one
//! entry point within one connection bound (see the README's "Code layout").
//!
//! Errors answer DPS's error body (`dps_wire::ErrorDetails`: `errorCode`, `trackingId`, `message`,
//! `timestampUtc`, `info` where it applies) with the code in `x-ms-error-code`; failed authentication is
//! 401 with errorCode 401002 and a message naming the check that failed.
//!
//! The same port serves the DPS service API (`2021-10-01`, `services/service_api.rs`): CRUD of individual
//! enrollments and enrollment groups with etags, bulk calls of up to [`MAX_BULK`], paged queries and
//! registration states, authenticated with service SAS tokens of the [`ServicePolicy`]s in
//! [`ServerOptions::service_policies`]. Records live in a SQLite store (`store.rs`; in
//! [`ServerOptions::state_dir`], else in memory) that the configuration's enrollments seed; device
//! registrations are checked against it at once, and a `disabled` enrollment ends them `disabled`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

mod config;
mod device_auth;
mod device_sas;
mod emulator;
mod enrollments;
mod error;
mod ids_and_times;
mod issuance;
mod listeners;
mod record_material;
mod records;
mod request;
mod services;
mod store;
mod tls;
mod tpm_attestation;

/// Entry points for the fuzz targets (`fuzz/`): not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use std::sync::{Arc, OnceLock};

    use crate::config::{EmulatorConfig, Enrollment};
    use crate::listeners::http_codec;
    use crate::request::{Client, Transport};
    use crate::services::RequestHandler;

    /// Read requests from `data` as a connection would deliver them, answer each with the request handler (one
    /// symmetric-key group enrollment) and write the answers to a buffer.
    pub fn http(data: &[u8]) {
        static HANDLER: OnceLock<Option<RequestHandler>> = OnceLock::new();
        let handler = HANDLER.get_or_init(|| {
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
            let enrollments = Arc::new(crate::enrollments::Enrollments::new(&config, store).ok()?);
            let options = crate::ServerOptions::default();
            let issuer = Arc::new(crate::issuance::CertificateIssuer::new(&options.issuance).ok()?);
            Some(crate::emulator::request_handler(
                enrollments,
                issuer,
                Default::default(),
                &options,
            ))
        });
        let Some(handler) = handler else { return };
        let mut input = data;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Ok(Some(request)) = http_codec::read_request(&mut input, &mut buf) {
            let keep_alive = request.keep_alive;
            let client = Client {
                transport: Transport::Https,
                chain: None,
            };
            let response = handler.handle(&request.into_request(client));
            let _ = http_codec::write_response(&mut out, &response, keep_alive);
        }
    }
}

pub use config::{DEFAULT_ASSIGNED_HUB, EmulatorConfig, Enrollment, ServiceSettings};
pub use emulator::{Emulator, ServerOptions};
pub use error::Error;
pub use issuance::{FIRST_ISSUING_API_VERSION, IssuanceOptions, IssuingCa, MAX_VALIDITY_DAYS, MIN_VALIDITY_DAYS};
pub use services::hub_devices::{HubMessage, MAX_HUB_MESSAGES};
pub use services::service_api::MAX_BULK;
pub use services::service_policies::{ServicePolicy, ServiceRight};
pub use store::STATE_FILE;
