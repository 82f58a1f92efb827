//! Shared test helpers: a CA that issues for CSRs (what DPS does with the `csr` field), ring
//! verification of signatures, and the SoftHSM2 token of this test process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::OnceLock;

use hsm_core::SigningKey;
use hsm_pkcs11::testing::{SoftHsm, TestModule};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::FromDer as _;

/// The test CA (panicking wrappers).
pub struct Ca(hsm_issued::testing::Ca);

impl Ca {
    pub fn new(name: &str) -> Ca {
        Ca(hsm_issued::testing::Ca::new(name).unwrap())
    }
    pub fn issue(&self, csr: &[u8]) -> Vec<CertificateDer<'static>> {
        self.0.issue(csr).unwrap()
    }
    pub fn issue_for_other_key(&self, cn: &str) -> Vec<CertificateDer<'static>> {
        self.0.issue_for_other_key(cn).unwrap()
    }
    pub fn intermediate(&self) -> CertificateDer<'static> {
        self.0.intermediate()
    }
    pub fn root(&self) -> CertificateDer<'static> {
        self.0.root()
    }
}

/// Parse a DER CSR, check its signature, and return (CN, SubjectPublicKeyInfo DER).
pub fn read_csr(der: &[u8]) -> (String, Vec<u8>) {
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(der).unwrap();
    csr.verify_signature().expect("the CSR's self-signature verifies");
    let info = &csr.certification_request_info;
    let cn = info
        .subject
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    (cn, info.subject_pki.raw.to_vec())
}

/// The key signs, and ring verifies the signature with the leaf's public key.
pub fn assert_signs_for(key: &dyn SigningKey, leaf: &CertificateDer<'_>) {
    let spki = hsm_core::pem::public_key_spki(leaf).unwrap();
    assert_eq!(key.public_key_spki().unwrap(), spki, "the key is the leaf's");
    let message = b"issued identity signs";
    let sig = key.sign(hsm_core::SignatureScheme::EcdsaP384Sha384, message).unwrap();
    let (_, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P384_SHA384_ASN1,
        parsed.subject_public_key.data.as_ref(),
    )
    .verify(message, &sig)
    .expect("ring verifies the signature with the leaf's key");
}

pub const PIN: &str = "user-pin-1234";
pub const LABEL: &str = "issued-test";

pub struct Token {
    pub hsm: SoftHsm,
    pub pin_file: PathBuf,
}

/// The process-wide SoftHSM2 token (fails, never skips, when softhsm2 is missing).
pub fn token() -> &'static Token {
    static T: OnceLock<Token> = OnceLock::new();
    T.get_or_init(|| {
        let hsm = SoftHsm::create().expect("SoftHSM2 must be installed (apt-get install softhsm2)");
        for (name, value) in hsm.environment() {
            // SAFETY: inside OnceLock initialization, before any PKCS#11 module is loaded;
            // nothing else in this test binary touches the environment concurrently.
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var(name, value);
            }
        }
        hsm.init_token(LABEL, "so-pin-0000", PIN).unwrap();
        let pin_file = hsm.pin_file("user.pin", PIN).unwrap();
        Token { hsm, pin_file }
    })
}

impl Token {
    /// The key source: the test token, with module path and PIN file.
    pub fn key_source(&self) -> String {
        format!(
            "pkcs11:token={LABEL}?module-path={}&pin-source=file:{}",
            self.hsm.module().display(),
            self.pin_file.display()
        )
    }

    /// The objects of the generations 1 to 16 of `registration_id` on the token, as
    /// `label/type`, sorted (searched by label: other tests change other labels meanwhile).
    pub fn objects(&self, registration_id: &str) -> Vec<String> {
        let base = hsm_pkcs11::Pkcs11Uri::parse(&self.key_source()).unwrap();
        let mut out = Vec::new();
        for generation in 1..=16 {
            let mut uri = base.clone();
            let label = hsm_issued::KeySource::name(registration_id, generation);
            uri.object = Some(label.clone());
            for found in hsm_pkcs11::tools::list_objects(&uri.to_token_string()).unwrap() {
                let found = hsm_pkcs11::Pkcs11Uri::parse(&found).unwrap();
                out.push(format!(
                    "{label}/{}",
                    found.object_type.map(|t| t.as_str()).unwrap_or("?")
                ));
            }
        }
        out.sort();
        out
    }
}
