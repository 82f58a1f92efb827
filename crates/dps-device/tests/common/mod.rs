//! Test PKIs (rcgen), identities on files, the emulator, and a scripted HTTPS server for misbehaviour.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod mqtt_server;
pub mod scripted;

/// The TLS side of the scripted test servers: a fresh self-signed certificate for 127.0.0.1, and its
/// PEM for the clients under test to trust.
pub fn loopback_server_config() -> (std::sync::Arc<rustls::ServerConfig>, String) {
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(hsm_core::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der())),
        )
        .unwrap();
    (std::sync::Arc::new(config), cert.cert.pem())
}

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dps_device::{Attestation, Error, Options, ProvisioningClient, ServiceError, Transport};
use dps_emulator::{Emulator, EmulatorConfig, Enrollment};
use hsm_core::file::{FileSymmetric, FileX509, KeyReference};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

pub const SCOPE: &str = "0ne00000A0A";
pub const HUB: &str = "hub.example.test";
/// From shared/test-vectors.md: a group key and the key it derives for `GROUP_DEVICE`.
pub const GROUP_KEY: &str = "9okJC6lKhmgI33KikQOMre4DvF+vacd9NUl2ATGVC44YeJfOCvzyC1C6KzfcqEqVG3BG8p7Vq5TwEGGfadbhiQ==";
pub const GROUP_DEVICE_KEY: &str = "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ=";
pub const DEVICE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn root(cn: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn intermediate(&self, cn: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: CertifiedIssuer::signed_by(p, KeyPair::generate().unwrap(), &self.issuer).unwrap(),
        }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    pub fn leaf_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p
    }

    /// A file identity (leaf `cn`, then `extra` chain certificates) written into `dir`.
    pub fn file_identity(&self, dir: &Path, cn: &str, extra: &[&Ca]) -> Arc<FileX509> {
        let key = KeyPair::generate().unwrap();
        let leaf = Self::leaf_params(cn).signed_by(&key, &self.issuer).unwrap();
        let mut chain = leaf.pem();
        for ca in extra {
            chain.push_str(&ca.issuer.pem());
        }
        let cert_path = dir.join(format!("{cn}.cert.pem"));
        let key_path = dir.join(format!("{cn}.key.pem"));
        std::fs::write(&cert_path, chain).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Arc::new(FileX509::open(&cert_path, &key_path, KeyReference::Token).unwrap())
    }
}

pub fn x509(identity: Arc<FileX509>) -> Attestation {
    Attestation::X509(identity)
}

pub fn symmetric(registration_id: &str, key_b64: &str) -> Attestation {
    let key = hsm_core::sas::decode_key("test key", key_b64).unwrap();
    Attestation::SymmetricKey(Arc::new(FileSymmetric::new(registration_id.to_string(), key)))
}

pub fn emulator(enrollments: Vec<Enrollment>) -> Emulator {
    Emulator::start(EmulatorConfig {
        id_scope: SCOPE.to_string(),
        assigned_hub: HUB.to_string(),
        enrollments,
    })
    .unwrap()
}

pub fn roots(ca_pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in hsm_core::pem::parse_certificates("server CA", ca_pem.as_bytes()).unwrap() {
        roots.add(c).unwrap();
    }
    roots
}

/// Options for tests: no polling floor, a short overall timeout.
pub fn options() -> Options {
    Options {
        retry_floor: Duration::ZERO,
        timeout: Duration::from_secs(20),
        ..Options::default()
    }
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
    ProvisioningClient::new(&endpoint(emu, t), SCOPE, t, roots(&emu.server_ca_pem()), options)
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
/// refused connection (MQTT: CONNACK 5, not authorized; AMQP: the SASL outcome for a SAS token, the link
/// refused for a client chain), else the 401 (401002) of the request with `needle` in the service's
/// message.
pub fn assert_auth_refused(t: Transport, result: Result<dps_device::Assignment, Error>, needle: &str) {
    if !t.authenticates_at_connect() {
        return assert_denied(result, needle);
    }
    match (t, result) {
        (Transport::Mqtt | Transport::MqttWs, Err(Error::ConnectionRefused { code: 5, transport, .. }))
            if transport == t => {}
        (Transport::Amqp | Transport::AmqpWs, Err(Error::Transport { transport, message, .. }))
            if transport == t && (message.contains("refused the SAS token") || message.contains("link")) => {}
        (_, other) => panic!("expected {t} to refuse the connection (not authorized), got {other:?}"),
    }
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
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
    assert_eq!(a.status, "assigned");
    assert_eq!(a.substatus.as_deref(), Some("initialAssignment"));
    assert!(a.etag.as_ref().is_some_and(|e| !e.is_empty()));
    assert!(a.created_date_time_utc.as_ref().is_some_and(|e| e.contains('T')));
    assert!(a.last_updated_date_time_utc.as_ref().is_some_and(|e| e.contains('T')));
}
