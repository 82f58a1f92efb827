//! PKCS#10 certificate signing requests signed through [`SigningKey`], whatever holds the key (a
//! token, a TPM, a file): the one place every backend and tool makes its requests.

use ::der::asn1::SetOfVec;
use x509_cert::request::{CertReqInfo, Version};

use crate::x509::{self, oid};
use crate::{Error, Result, SigningKey};

/// A backend key's public half as rcgen wants a subject key (to issue a certificate for a key
/// that stays in its device; feature `rcgen`, for tools and tests: the C library never links rcgen).
#[cfg(feature = "rcgen")]
pub struct SubjectKey {
    public: Vec<u8>,
    algorithm: &'static rcgen::SignatureAlgorithm,
}

#[cfg(feature = "rcgen")]
impl SubjectKey {
    /// The public key of `key` with the signature algorithm its requests use: ECDSA with SHA-256
    /// or SHA-384 for P-256 or P-384, RSA PKCS#1 v1.5 with SHA-256 for RSA.
    pub fn of(key: &dyn SigningKey) -> Result<Self> {
        let algorithm = match key.algorithm() {
            crate::KeyAlgorithm::Ec(crate::Curve::P256) => &rcgen::PKCS_ECDSA_P256_SHA256,
            crate::KeyAlgorithm::Ec(crate::Curve::P384) => &rcgen::PKCS_ECDSA_P384_SHA384,
            crate::KeyAlgorithm::Rsa { .. } => &rcgen::PKCS_RSA_SHA256,
        };
        Ok(SubjectKey {
            public: crate::der::spki_public_key_bits(&key.public_key_spki()?)?,
            algorithm,
        })
    }
}

#[cfg(feature = "rcgen")]
impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

/// The DER request with subject `CN=common_name` for `key`, signed by it: ECDSA with SHA-256 or
/// SHA-384 for P-256 or P-384, RSA PKCS#1 v1.5 with SHA-256 for RSA. No attributes (an empty
/// `[0]` set, as RFC 2986 requires).
pub fn request_der(key: &dyn SigningKey, common_name: &str) -> Result<Vec<u8>> {
    if common_name.is_empty() {
        return Err(Error::invalid("common name", "must not be empty"));
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject: x509::utf8_name(&[(oid::COMMON_NAME, common_name)])?,
        public_key: x509::subject_public_key_info(key.algorithm(), &key.public_key_spki()?)?,
        attributes: SetOfVec::new(),
    };
    let (scheme, algorithm) = x509::signature_algorithm(key.algorithm());
    x509::sign(&info, &algorithm, |tbs| key.sign(scheme, tbs))
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
