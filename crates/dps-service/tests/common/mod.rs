//! The emulator (in-process) with shared access policies, and clients of it.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dps_emulator::{Emulator, EmulatorConfig, ServerOptions, ServicePolicy, ServiceRight};
use dps_service::{ClientOptions, ConnectionString, ServiceClient};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

pub use test_support::emulator::{HUB, SCOPE};
pub const OWNER: &str = "provisioningserviceowner";
pub const OWNER_KEY: &str = "b3duZXIta2V5LWZvci10aGUtZHBzLXNlcnZpY2UtdGVzdHM=";
pub const READER: &str = "reader";
pub const READER_KEY: &str = "cmVhZGVyLWtleS1mb3ItdGhlLWRwcy1zZXJ2aWNlLXRlc3Q=";

pub fn options(state_dir: Option<&Path>) -> ServerOptions {
    ServerOptions {
        retry_after: Duration::ZERO,
        state_dir: state_dir.map(Path::to_path_buf),
        service_policies: vec![
            ServicePolicy::owner(OWNER, OWNER_KEY),
            ServicePolicy {
                name: READER.into(),
                key: READER_KEY.to_string().into(),
                rights: vec![ServiceRight::EnrollmentRead, ServiceRight::RegistrationStatusRead],
            },
        ],
        ..ServerOptions::default()
    }
}

pub fn config() -> EmulatorConfig {
    test_support::emulator::config(vec![])
}

pub fn start() -> Emulator {
    Emulator::start_with(config(), 0, options(None)).unwrap()
}

pub fn ca_certs(emu: &Emulator) -> Vec<CertificateDer<'static>> {
    hsm_core::pem::parse_certificates("emulator CA", emu.server_ca_pem().as_bytes()).unwrap()
}

pub fn client_for(emu: &Emulator, policy: &str, key: &str) -> ServiceClient {
    let cs = ConnectionString::parse(&format!(
        "HostName={};SharedAccessKeyName={policy};SharedAccessKey={key}",
        emu.global_endpoint()
    ))
    .unwrap();
    ServiceClient::new(
        cs,
        ClientOptions {
            trusted_cas: Some(ca_certs(emu)),
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

pub fn owner(emu: &Emulator) -> ServiceClient {
    client_for(emu, OWNER, OWNER_KEY)
}

/// A webpki verifier over a root set that can grow: an emulator restarted on the same port comes back
/// with a new CA, which the test adds; every handshake is still verified for real.
#[derive(Debug)]
pub struct GrowingRoots {
    pub roots: RwLock<Vec<CertificateDer<'static>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl GrowingRoots {
    pub fn new(first: Vec<CertificateDer<'static>>) -> Arc<Self> {
        Arc::new(GrowingRoots {
            roots: RwLock::new(first),
            provider: hsm_core::tls::crypto_provider(),
        })
    }

    fn verifier(&self) -> Arc<rustls::client::WebPkiServerVerifier> {
        let mut store = rustls::RootCertStore::empty();
        for c in self.roots.read().unwrap().iter() {
            store.add(c.clone()).unwrap();
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&self.provider))
            .build()
            .unwrap()
    }

    pub fn tls_config(self: &Arc<Self>) -> Arc<rustls::ClientConfig> {
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::clone(&self.provider))
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::clone(self) as Arc<dyn ServerCertVerifier>)
                .with_no_client_auth(),
        )
    }
}

impl ServerCertVerifier for GrowingRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A self-signed CA and a leaf it issued, PEM.
pub struct Pki {
    pub ca_pem: String,
    pub leaf_pem: String,
    pub leaf_key_pem: String,
}

pub fn pki(leaf_cn: &str) -> Pki {
    let ca = test_support::pki::Ca::root("Test Root");
    let leaf = ca.leaf(leaf_cn);
    Pki {
        ca_pem: ca.pem(),
        leaf_pem: leaf.cert_pem(),
        leaf_key_pem: leaf.key_pem(),
    }
}

pub fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// base64 `TPM2B_PUBLIC` of an RSA-2048 storage-shaped key (the layout of an EK): enough for enrollment
/// records, where no TPM is challenged. `seed` varies the modulus.
pub fn ek(seed: u8) -> String {
    let mut area = Vec::new();
    for v in [0x0001u16, 0x000B] {
        area.extend_from_slice(&v.to_be_bytes()); // type RSA, nameAlg SHA-256
    }
    area.extend_from_slice(&0x0003_00B2u32.to_be_bytes()); // EK attributes (restricted decrypt)
    for v in [0u16, 0x0006, 128, 0x0043, 0x0010, 2048] {
        area.extend_from_slice(&v.to_be_bytes()); // no policy, AES-128-CFB, null scheme, 2048 bits
    }
    area.extend_from_slice(&0u32.to_be_bytes()); // default exponent
    area.extend_from_slice(&256u16.to_be_bytes());
    area.extend((0..256).map(|i: u32| if i == 0 { 0xC0 } else { seed.wrapping_add(i as u8) | 1 }));
    let mut out = (area.len() as u16).to_be_bytes().to_vec();
    out.extend(area);
    b64(&out)
}
