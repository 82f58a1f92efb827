//! Shared test helpers: a CA that issues for CSRs (what DPS does with the `csr` field), ring
//! verification of signatures, and what the tests ask of the SoftHSM2 token of `test_support`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hsm_core::SigningKey;
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

/// The process-wide SoftHSM2 token (fails, never skips, when softhsm2 is missing).
pub fn token() -> &'static test_support::softhsm::Fixture {
    test_support::softhsm::fixture()
}

/// What these tests ask of the token.
pub trait TokenExt {
    /// The key source: the test token, with module path and PIN file.
    fn key_source(&self) -> String;
    /// The objects of the generations 1 to 16 of `registration_id` on the token, as
    /// `label/type`, sorted (searched by label: other tests change other labels meanwhile).
    fn objects(&self, registration_id: &str) -> Vec<String>;
}

impl TokenExt for test_support::softhsm::Fixture {
    fn key_source(&self) -> String {
        self.uri("")
    }

    fn objects(&self, registration_id: &str) -> Vec<String> {
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
