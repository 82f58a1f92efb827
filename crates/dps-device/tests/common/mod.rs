//! Clients of the emulator, attestations and assertions, and scripted servers for misbehaviour; PKIs,
//! the emulator and TLS come from `test_support`.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod amqp_server;
pub mod mqtt_server;
pub mod scripted;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dps_device::{
    AssignedDeviceSubstatus, Attestation, EnrollmentStatus, Error, Options, ProvisioningClient, ServiceError, Transport,
};
use dps_emulator::{Emulator, Enrollment};
use hsm_core::file::{FileSymmetric, FileX509};

pub use test_support::emulator::{DEVICE_KEY, GROUP_DEVICE_KEY, GROUP_KEY, HUB, SCOPE, now};
pub use test_support::pki::{Ca, KeyType};
pub use test_support::tls::{loopback_server_config, roots};

pub fn x509(identity: Arc<FileX509>) -> Attestation {
    Attestation::X509(identity)
}

pub fn symmetric(registration_id: &str, key_b64: &str) -> Attestation {
    let key = hsm_core::sas::decode_key("test key", key_b64).unwrap();
    Attestation::SymmetricKey(Arc::new(FileSymmetric::new(registration_id.to_string(), key)))
}

pub fn emulator(enrollments: Vec<Enrollment>) -> Emulator {
    test_support::emulator::start(enrollments)
}

/// Options for tests: no polling floor, a short overall timeout.
pub fn options() -> Options {
    Options {
        retry_floor: Duration::ZERO,
        timeout: Duration::from_secs(20),
        ..Options::default()
    }
}

/// The test options with an overall `timeout`.
pub fn timeout_after(timeout: Duration) -> Options {
    Options { timeout, ..options() }
}

/// A client over `t` for a test's own server (scripted or hostile) at `endpoint`, trusting its `ca_pem`.
pub fn client_to(endpoint: &str, ca_pem: &str, t: Transport, options: Options) -> ProvisioningClient {
    ProvisioningClient::new(endpoint, SCOPE, t, roots(ca_pem), options)
}

/// Registers the symmetric-key device `d` (`DEVICE_KEY`), which must fail: the error and how long it took.
pub async fn failed_registration(client: &ProvisioningClient) -> (Error, Duration) {
    let started = Instant::now();
    let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
    (e, started.elapsed())
}

/// `e` is a transport error of `t`.
pub fn assert_transport_error(e: &Error, t: Transport) {
    assert!(
        matches!(e, Error::Transport { transport, .. } if *transport == t),
        "expected a transport error of {t}: {e:?}"
    );
}

/// The emulator's listener for `t`: the test table's emulator adapter (a new transport adds its
/// listener here; see docs/adding-a-transport.md).
pub fn endpoint(emu: &Emulator, t: Transport) -> String {
    match t {
        Transport::Https | Transport::MqttWs | Transport::AmqpWs => emu.global_endpoint(),
        Transport::Mqtt => emu.mqtt_endpoint(),
        Transport::Amqp => emu.amqp_endpoint(),
        other => panic!("the emulator has no listener for {other} in the tests' table (tests/common/mod.rs)"),
    }
}

/// A client for the emulator over `t`.
pub fn client(emu: &Emulator, t: Transport, options: Options) -> ProvisioningClient {
    ProvisioningClient::builder(SCOPE)
        .endpoint(&endpoint(emu, t))
        .transport(t)
        .trust_roots(roots(&emu.server_ca_pem()))
        .options(options)
        .build()
        .unwrap()
}

/// A client for the emulator's HTTPS endpoint.
pub fn https_client(emu: &Emulator, options: Options) -> ProvisioningClient {
    client(emu, Transport::Https, options)
}

/// A client for the emulator's AMQP endpoint.
pub fn amqp_client(emu: &Emulator, options: Options) -> ProvisioningClient {
    client(emu, Transport::Amqp, options)
}

/// A client for the emulator's MQTT endpoint.
pub fn mqtt_client(emu: &Emulator, options: Options) -> ProvisioningClient {
    client(emu, Transport::Mqtt, options)
}

/// A refused authentication as `t` reports it: on a transport that authenticates when it connects, a
/// refused connection, code 5 (MQTT: CONNACK 5, not authorized; AMQP: the SASL outcome `auth` for a SAS
/// token, the link refused with `amqp:unauthorized-access` for a client chain), else the 401 (401002) of the request with `needle` in the service's
/// message.
pub fn assert_auth_refused(t: Transport, result: Result<dps_device::Assignment, Error>, needle: &str) {
    if !t.authenticates_at_connect() {
        return assert_denied(result, needle);
    }
    match result {
        Err(e @ Error::ConnectionRefused { code: 5, .. }) => {
            let Error::ConnectionRefused { transport, reason, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*transport, t, "{e:?}");
            // The classification a caller acts on: a refusal at connect, not worth retrying unchanged.
            assert!(e.is_connect() && !e.is_retryable() && !e.is_timeout(), "{t}: {e:?}");
            // The client library's refusal is kept as the source (MQTT: the CONNACK; AMQP: the SASL
            // outcome or the refused link with the server's description).
            let source = std::error::Error::source(&e).unwrap_or_else(|| panic!("{t}: no source in {e:?}"));
            if matches!(t, Transport::Amqp | Transport::AmqpWs) {
                assert!(
                    reason.contains("SASL authentication (outcome auth")
                        || reason.contains("(amqp:unauthorized-access)"),
                    "{t}: {reason}"
                );
                assert!(format!("{source:?}").contains("Auth") || format!("{source:?}").contains("UnauthorizedAccess"));
            }
        }
        other => panic!("expected {t} to refuse the connection (not authorized), got {other:?}"),
    }
}

/// The service error of a refused registration, with the emulator's error shape.
pub fn service_error(result: Result<dps_device::Assignment, Error>) -> ServiceError {
    match result {
        Err(Error::Service(e)) => e,
        other => panic!("expected a service error, got {other:?}"),
    }
}

/// A 401 with errorCode 401002, a tracking id and `needle` in the message.
pub fn assert_denied(result: Result<dps_device::Assignment, Error>, needle: &str) {
    let e = service_error(result);
    assert_eq!(e.status, 401, "{e}");
    assert_eq!(e.error_code, Some(401002), "{e}");
    assert!(e.tracking_id.as_ref().is_some_and(|t| t.len() >= 32), "{e}");
    assert!(e.message.contains(needle), "{:?} lacks {needle:?}", e.message);
}

pub fn assert_assigned(a: &dps_device::Assignment, registration_id: &str) {
    assert_eq!(a.registration_id, registration_id);
    assert_eq!(a.device_id, registration_id);
    assert_eq!(a.assigned_hub, HUB);
    assert_eq!(a.status, EnrollmentStatus::Assigned);
    assert_eq!(a.substatus, Some(AssignedDeviceSubstatus::InitialAssignment));
    assert!(a.etag.as_ref().is_some_and(|e| !e.is_empty()));
    assert!(a.created_date_time_utc.as_ref().is_some_and(|e| e.contains('T')));
    assert!(a.last_updated_date_time_utc.as_ref().is_some_and(|e| e.contains('T')));
}

/// `a` assigns `registration_id` (as `assert_assigned` checks) and carries the TPM authentication key of
/// the hub (the answer to a TPM attestation).
pub fn assert_tpm_assigned(a: &dps_device::Assignment, registration_id: &str) {
    assert_assigned(a, registration_id);
    assert!(
        a.state
            .tpm
            .as_ref()
            .and_then(|t| t.authentication_key.as_ref())
            .is_some(),
        "{:?}",
        a.state
    );
}
