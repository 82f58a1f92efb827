//! Certificate issuance: the emulator's issuing CA (ECDSA P-384) signs the CSR a device sends with its
//! registration (DPS device API `2025-07-01-preview`, field `csr`) or with an IoT Hub
//! `$iothub/credentials` request (`services/device_api.rs`, `services/iot_hub.rs`).
//!
//! A CSR is accepted when it parses as DER PKCS#10, its signature verifies with its own key, its key is
//! EC P-384 and its subject CN equals the registration (device) id. The leaf gets CN = the id, the CSR's
//! key, `digitalSignature` and `clientAuth`, and the configured validity; the chain returned is
//! `[leaf, root]` (leaf first, ending with the root, as the service does).

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384,
};
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::Error;

/// Shortest and longest validity of an issued certificate (the service's range).
pub const MIN_VALIDITY_DAYS: u32 = 7;
/// See [`MIN_VALIDITY_DAYS`].
pub const MAX_VALIDITY_DAYS: u32 = 90;

/// An issuing CA given to the emulator: certificate and PKCS#8 key, both PEM.
#[derive(Clone)]
pub struct IssuingCa {
    /// The CA certificate (PEM).
    pub certificate_pem: String,
    /// Its PKCS#8 private key (PEM; a secret, zeroized when dropped).
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCa")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// How the emulator issues certificates.
#[derive(Debug, Clone)]
pub struct IssuanceOptions {
    /// Validity of an issued certificate, in days ([`MIN_VALIDITY_DAYS`] to [`MAX_VALIDITY_DAYS`]).
    /// Default 30.
    pub validity_days: u32,
    /// The issuing CA; `None` (the default) generates an ECDSA P-384 root at start
    /// ([`crate::Emulator::issuing_ca_pem`]).
    pub ca: Option<IssuingCa>,
    /// Time between the `202` and the `200` answer of an IoT Hub `issueCertificate` request; the
    /// operation is "in progress" (409005 to a request without `replace`) meanwhile. Default 0.
    pub credentials_delay: Duration,
    /// Answer the first this many `issueCertificate` requests `429` (errorCode 429002, `retry-after=1`
    /// in the topic), as a throttled hub does. Default 0.
    pub credentials_throttle: u32,
}

impl Default for IssuanceOptions {
    fn default() -> Self {
        IssuanceOptions {
            validity_days: 30,
            ca: None,
            credentials_delay: Duration::ZERO,
            credentials_throttle: 0,
        }
    }
}

/// Why a CSR was refused (goes to the device in the error body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused(pub(crate) String);

pub(crate) struct CertificateIssuer {
    issuer: Issuer<'static, KeyPair>,
    root: CertificateDer<'static>,
    root_pem: String,
    validity: time::Duration,
}

fn cert_err(what: &'static str) -> impl Fn(rcgen::Error) -> Error {
    move |e| Error::Certificate {
        what,
        reason: e.to_string(),
    }
}

impl CertificateIssuer {
    pub(crate) fn new(options: &IssuanceOptions) -> Result<Self, Error> {
        if !(MIN_VALIDITY_DAYS..=MAX_VALIDITY_DAYS).contains(&options.validity_days) {
            return Err(Error::config(
                "server options",
                "issuance.validity_days",
                format!(
                    "{} days is outside {MIN_VALIDITY_DAYS} to {MAX_VALIDITY_DAYS}",
                    options.validity_days
                ),
            ));
        }
        let (issuer, root, root_pem) = match &options.ca {
            Some(ca) => {
                let key = KeyPair::from_pem(&ca.key_pem).map_err(cert_err("issuing CA key (PEM)"))?;
                let root = hsm_core::pem::parse_certificates("issuing CA", ca.certificate_pem.as_bytes())
                    .map_err(Error::Core)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::Certificate {
                        what: "issuing CA",
                        reason: "no certificate in the PEM".into(),
                    })?;
                let issuer = Issuer::from_ca_cert_der(&root, key).map_err(cert_err("issuing CA"))?;
                (issuer, root, ca.certificate_pem.clone())
            }
            None => {
                let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(cert_err("issuing CA key"))?;
                let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err("issuing CA"))?;
                params
                    .distinguished_name
                    .push(DnType::CommonName, "dps-emulator issuing CA");
                params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
                params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
                let now = time::OffsetDateTime::now_utc();
                params.not_before = now - time::Duration::hours(1);
                params.not_after = now + time::Duration::days(3650);
                let cert = params.self_signed(&key).map_err(cert_err("issuing CA"))?;
                let (root, pem) = (cert.der().clone(), cert.pem());
                (Issuer::new(params, key), root, pem)
            }
        };
        Ok(CertificateIssuer {
            issuer,
            root,
            root_pem,
            validity: time::Duration::days(i64::from(options.validity_days)),
        })
    }

    pub(crate) fn root_pem(&self) -> &str {
        &self.root_pem
    }

    #[cfg(test)]
    pub(crate) fn root(&self) -> &CertificateDer<'static> {
        &self.root
    }

    /// Check `csr` (DER) for `id` and issue; the chain is leaf first, ending with the root.
    pub(crate) fn issue(&self, csr: &[u8], id: &str) -> Result<Vec<CertificateDer<'static>>, Refused> {
        check_csr(csr, id)?;
        let request = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr))
            .map_err(|e| Refused(format!("the CSR cannot be used: {e}")))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| Refused(format!("cannot build the certificate: {e}")))?;
        params.distinguished_name.push(DnType::CommonName, id);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + self.validity;
        let mut serial = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
            .map_err(|_| Refused("the system random generator failed".into()))?;
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let leaf = params
            .signed_by(&request.public_key, &self.issuer)
            .map_err(|e| Refused(format!("signing the certificate failed: {e}")))?;
        Ok(vec![leaf.der().clone(), self.root.clone()])
    }

    /// Whether `leaf` was issued by this CA to `id` and is valid now (for IoT Hub CONNECT).
    pub(crate) fn admits(&self, leaf: &CertificateDer<'_>, id: &str) -> Result<(), String> {
        let (_, root) = X509Certificate::from_der(&self.root).map_err(|e| format!("the issuing CA: {e}"))?;
        let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| format!("the client certificate: {e}"))?;
        cert.verify_signature(Some(root.public_key()))
            .map_err(|_| "the client certificate was not issued by the emulator's issuing CA".to_string())?;
        if !cert.validity().is_valid() {
            return Err("the client certificate is not valid now".into());
        }
        let cn = common_name(cert.subject());
        if cn.as_deref() != Some(id) {
            return Err(format!(
                "the client certificate's CN {cn:?} is not the device id '{id}'"
            ));
        }
        Ok(())
    }
}

fn common_name(name: &x509_parser::x509::X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
}

/// The first DPS device API version that knows `csr` and `issuedCertificateChain`.
pub const FIRST_ISSUING_API_VERSION: &str = "2025-07-01-preview";

/// The checks of the service: DER PKCS#10, self-signature, EC P-384, CN = id.
pub(crate) fn check_csr(csr: &[u8], id: &str) -> Result<(), Refused> {
    let (rest, request) = X509CertificationRequest::from_der(csr)
        .map_err(|e| Refused(format!("the CSR is not a DER PKCS#10 certification request: {e}")))?;
    if !rest.is_empty() {
        return Err(Refused(
            "the CSR has trailing bytes after the DER PKCS#10 request".into(),
        ));
    }
    request
        .verify_signature()
        .map_err(|e| Refused(format!("the CSR's signature does not verify with its own key: {e}")))?;
    let info = &request.certification_request_info;
    let spki = &info.subject_pki;
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm != x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let name = match *algorithm == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
            true => "RSA".to_string(),
            false => format!("algorithm {algorithm}"),
        };
        return Err(Refused(format!(
            "the CSR's key is {name}: an EC P-384 (secp384r1) key is required"
        )));
    }
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
    if curve.as_ref() != Some(&x509_parser::oid_registry::OID_NIST_EC_P384) {
        let shown = curve.map_or_else(|| "unnamed".to_string(), |c| c.to_id_string());
        return Err(Refused(format!(
            "the CSR's key is on EC curve {shown}: an EC P-384 (secp384r1) key is required"
        )));
    }
    match common_name(&info.subject) {
        Some(cn) if cn == id => Ok(()),
        Some(cn) => Err(Refused(format!(
            "the CSR's subject CN '{cn}' does not match the registration id '{id}'"
        ))),
        None => Err(Refused(format!(
            "the CSR's subject has no CN: it must be the registration id '{id}'"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn csr(alg: &'static rcgen::SignatureAlgorithm, cn: &str) -> Vec<u8> {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    #[test]
    fn p384_csr_with_the_right_cn_is_issued_a_chain_to_the_root() {
        let issuer = CertificateIssuer::new(&IssuanceOptions::default()).unwrap();
        let chain = issuer.issue(&csr(&PKCS_ECDSA_P384_SHA384, "dev-1"), "dev-1").unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(&chain[1], issuer.root());
        issuer.admits(&chain[0], "dev-1").unwrap();
        let err = issuer.admits(&chain[0], "dev-2").unwrap_err();
        assert!(err.contains("is not the device id"), "{err}");
    }

    #[test]
    fn refusals_name_the_reason() {
        let wrong_cn = check_csr(&csr(&PKCS_ECDSA_P384_SHA384, "other"), "dev-1").unwrap_err();
        assert!(wrong_cn.0.contains("CN 'other' does not match"), "{wrong_cn:?}");
        let p256 = check_csr(&csr(&rcgen::PKCS_ECDSA_P256_SHA256, "dev-1"), "dev-1").unwrap_err();
        assert!(p256.0.contains("EC P-384"), "{p256:?}");
        let ed = check_csr(&csr(&rcgen::PKCS_ED25519, "dev-1"), "dev-1").unwrap_err();
        assert!(ed.0.contains("EC P-384"), "{ed:?}");
        // Made with `openssl req -new -newkey rsa:2048 -subj /CN=rsa-device -outform DER`.
        let rsa = check_csr(include_bytes!("../tests/data/rsa-device.csr.der"), "rsa-device").unwrap_err();
        assert!(rsa.0.contains("key is RSA"), "{rsa:?}");
        let garbage = check_csr(b"not a csr", "dev-1").unwrap_err();
        assert!(garbage.0.contains("not a DER PKCS#10"), "{garbage:?}");
        let mut tampered = csr(&PKCS_ECDSA_P384_SHA384, "dev-1");
        let at = tampered.len() - 3;
        tampered[at] ^= 1;
        let bad_sig = check_csr(&tampered, "dev-1").unwrap_err();
        assert!(bad_sig.0.contains("signature"), "{bad_sig:?}");
    }

    #[test]
    fn validity_outside_7_to_90_days_is_refused() {
        for days in [6, 91] {
            let options = IssuanceOptions {
                validity_days: days,
                ..IssuanceOptions::default()
            };
            let Err(e) = CertificateIssuer::new(&options) else {
                panic!("{days} days accepted")
            };
            assert!(e.to_string().contains("outside 7 to 90"), "{e}");
        }
    }
}
