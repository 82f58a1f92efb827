//! Test PKIs made with rcgen, and a real HTTPS client (ureq on rustls/ring) for the emulator.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dps_emulator::{Emulator, EmulatorConfig, Enrollment};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

pub const SCOPE: &str = "0ne00000A0A";
pub const HUB: &str = "hub.example.test";
/// From shared/test-vectors.md.
pub const GROUP_KEY: &str = "9okJC6lKhmgI33KikQOMre4DvF+vacd9NUl2ATGVC44YeJfOCvzyC1C6KzfcqEqVG3BG8p7Vq5TwEGGfadbhiQ==";
pub const GROUP_DEVICE_KEY: &str = "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ=";

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    hsm_core::tls::crypto_provider()
}

/// A CA that can issue intermediates and leaves.
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

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A client leaf with subject CN `cn`.
    pub fn leaf(&self, cn: &str) -> Device {
        self.leaf_with(cn, |_| {})
    }

    pub fn leaf_with(&self, cn: &str, edit: impl FnOnce(&mut CertificateParams)) -> Device {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        edit(&mut p);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Device {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

/// A device's TLS identity: chain (leaf first) and private key.
pub struct Device {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Device {
    pub fn with_intermediate(mut self, ca: &Ca) -> Device {
        self.chain.push(ca.der());
        self
    }

    pub fn leaf(&self) -> CertificateDer<'static> {
        self.chain[0].clone()
    }
}

pub fn config(enrollments: Vec<Enrollment>) -> EmulatorConfig {
    EmulatorConfig {
        id_scope: SCOPE.to_string(),
        assigned_hub: HUB.to_string(),
        enrollments,
    }
}

/// Which TLS versions a client offers.
#[derive(Clone, Copy)]
pub enum Tls {
    Any,
    Only12,
}

pub fn client_builder(
    server_ca_pem: &str,
    tls: Tls,
) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
    let mut roots = RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut server_ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = match tls {
        Tls::Any => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Tls::Only12 => &[&rustls::version::TLS12],
    };
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
}

/// A ureq agent trusting the emulator's CA, optionally presenting a client certificate.
pub fn agent(emu: &Emulator, device: Option<&Device>, tls: Tls) -> ureq::Agent {
    let builder = client_builder(&emu.server_ca_pem(), tls);
    let config = match device {
        Some(d) => builder
            .with_client_auth_cert(d.chain.clone(), d.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .timeout(Duration::from_secs(20))
        .build()
}

/// Presents `chain` but signs the handshake with `key`, whatever it is (rustls' own consistency check is
/// bypassed on purpose: the server must catch the mismatch).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesClientCert for Fixed {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

pub fn agent_with_mismatched_key(
    emu: &Emulator,
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
) -> ureq::Agent {
    let signing_key = provider().key_provider.load_private_key(key.clone_key()).unwrap();
    let config = client_builder(&emu.server_ca_pem(), Tls::Any)
        .with_client_cert_resolver(Arc::new(Fixed(Arc::new(CertifiedKey::new(chain, signing_key)))));
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .timeout(Duration::from_secs(20))
        .build()
}

pub fn register_url(emu: &Emulator, scope: &str, registration_id: &str) -> String {
    format!(
        "https://{}/{scope}/registrations/{registration_id}/register?api-version=2021-06-01",
        emu.global_endpoint()
    )
}

pub fn operation_url(emu: &Emulator, registration_id: &str, operation_id: &str) -> String {
    format!(
        "https://{}/{SCOPE}/registrations/{registration_id}/operations/{operation_id}?api-version=2021-06-01",
        emu.global_endpoint()
    )
}

/// Status and JSON body of a response, 4xx included; transport errors panic.
pub fn outcome(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match result {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

pub fn put_register(agent: &ureq::Agent, emu: &Emulator, registration_id: &str, auth: Option<&str>) -> (u16, Value) {
    let mut req = agent.put(&register_url(emu, SCOPE, registration_id));
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    outcome(req.send_json(json!({ "registrationId": registration_id })))
}

/// The whole device flow: PUT register (202 assigning), then poll until assigned; returns the final body.
pub fn provision(agent: &ureq::Agent, emu: &Emulator, registration_id: &str, auth: Option<&str>) -> Value {
    let (status, body) = put_register(agent, emu, registration_id, auth);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "assigning");
    let operation_id = body["operationId"].as_str().unwrap().to_string();
    assert!(!operation_id.is_empty());
    for _ in 0..10 {
        let mut req = agent.get(&operation_url(emu, registration_id, &operation_id));
        if let Some(a) = auth {
            req = req.set("Authorization", a);
        }
        let (status, body) = outcome(req.call());
        match status {
            202 => assert_eq!(body["status"], "assigning"),
            200 => {
                assert_eq!(body["operationId"], operation_id.as_str());
                return body;
            }
            other => panic!("poll answered {other}: {body}"),
        }
    }
    panic!("never assigned");
}

pub fn assert_assigned(body: &Value, registration_id: &str) {
    assert_eq!(body["status"], "assigned", "{body}");
    let state = &body["registrationState"];
    assert_eq!(state["registrationId"], registration_id);
    assert_eq!(state["deviceId"], registration_id);
    assert_eq!(state["assignedHub"], HUB);
    assert_eq!(state["status"], "assigned");
    assert_eq!(state["substatus"], "initialAssignment");
    for field in ["createdDateTimeUtc", "lastUpdatedDateTimeUtc", "etag"] {
        assert!(
            state[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} in {body}"
        );
    }
}

/// Asserts a 401 with errorCode 401002, a tracking id, and a message containing `needle`.
pub fn assert_denied((status, body): (u16, Value), needle: &str) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errorCode"], 401002, "{body}");
    assert!(body["trackingId"].as_str().is_some_and(|s| s.len() >= 32), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A DPS SAS token for `registration_id` signed with a raw key.
pub fn sas(registration_id: &str, key_b64: &str, expiry: u64) -> String {
    let key = hsm_core::sas::decode_key("test key", key_b64).unwrap();
    hsm_core::sas::Audience::Dps {
        id_scope: SCOPE.to_string(),
        registration_id: registration_id.to_string(),
    }
    .sign_with_key(&key, expiry)
}

/// Wait until `stream`'s peer closes it; how long that took.
pub fn until_closed(stream: &mut std::net::TcpStream, limit: Duration) -> Duration {
    let started = std::time::Instant::now();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 256];
    while started.elapsed() < limit {
        match std::io::Read::read(stream, &mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return started.elapsed(),
        }
    }
    panic!("still open after {limit:?}");
}
