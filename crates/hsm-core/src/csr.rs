//! PKCS#10 certificate signing requests signed through [`SigningKey`], whatever holds the key (a
//! token, a TPM, a file): the one place every backend and tool makes its requests.

use std::sync::Mutex;

use x509_parser::prelude::FromDer as _;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::{Curve, Error, KeyAlgorithm, Result, SignatureScheme, SigningKey};

/// A backend key's public half as rcgen wants a subject key (to issue a certificate for a key
/// that stays in its device).
pub struct SubjectKey {
    public: Vec<u8>,
    scheme: SignatureScheme,
    algorithm: &'static rcgen::SignatureAlgorithm,
}

impl SubjectKey {
    /// The public key of `key` with the signature algorithm its requests use: ECDSA with SHA-256
    /// or SHA-384 for P-256 or P-384, RSA PKCS#1 v1.5 with SHA-256 for RSA.
    pub fn of(key: &dyn SigningKey) -> Result<Self> {
        let (scheme, algorithm) = match key.algorithm() {
            KeyAlgorithm::Ec(Curve::P256) => (SignatureScheme::EcdsaP256Sha256, &rcgen::PKCS_ECDSA_P256_SHA256),
            KeyAlgorithm::Ec(Curve::P384) => (SignatureScheme::EcdsaP384Sha384, &rcgen::PKCS_ECDSA_P384_SHA384),
            KeyAlgorithm::Rsa { .. } => (SignatureScheme::RsaPkcs1Sha256, &rcgen::PKCS_RSA_SHA256),
        };
        let spki = key.public_key_spki()?;
        let (_, parsed) =
            SubjectPublicKeyInfo::from_der(&spki).map_err(|e| Error::parse("the key's SubjectPublicKeyInfo", e))?;
        Ok(SubjectKey {
            public: parsed.subject_public_key.data.to_vec(),
            scheme,
            algorithm,
        })
    }
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

/// rcgen's view of a key it cannot see: every signature goes to the backend, whose error is kept.
struct Remote<'a> {
    key: &'a dyn SigningKey,
    public: SubjectKey,
    error: Mutex<Option<Error>>,
}

impl rcgen::PublicKeyData for Remote<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.public.algorithm
    }
}

impl rcgen::SigningKey for Remote<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.key.sign(self.public.scheme, msg).map_err(|e| {
            if let Ok(mut slot) = self.error.lock() {
                *slot = Some(e);
            }
            rcgen::Error::RemoteKeyError
        })
    }
}

/// The DER request with subject `CN=common_name` for `key`, signed by it: ECDSA with SHA-256 or
/// SHA-384 for P-256 or P-384, RSA PKCS#1 v1.5 with SHA-256 for RSA.
pub fn request_der(key: &dyn SigningKey, common_name: &str) -> Result<Vec<u8>> {
    if common_name.is_empty() {
        return Err(Error::invalid("common name", "must not be empty"));
    }
    let remote = Remote {
        key,
        public: SubjectKey::of(key)?,
        error: Mutex::new(None),
    };
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| Error::invalid("common name", e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let csr =
        params
            .serialize_request(&remote)
            .map_err(|e| match remote.error.lock().ok().and_then(|mut s| s.take()) {
                Some(inner) => inner,
                None => Error::Crypto {
                    op: "make a certificate request",
                    reason: e.to_string(),
                },
            })?;
    Ok(csr.der().to_vec())
}

/// [`request_der`] in PEM armour (`-----BEGIN CERTIFICATE REQUEST-----`, for files and `openssl req`).
pub fn request_pem(key: &dyn SigningKey, common_name: &str) -> Result<String> {
    Ok(der_to_pem(&request_der(key, common_name)?))
}

/// PEM armour around a DER request.
pub(crate) fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE REQUEST-----\n");
    out
}
