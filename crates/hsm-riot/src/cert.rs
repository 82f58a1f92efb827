//! The DeviceID and Alias certificates.
//!
//! - DeviceID: subject `CN=<registration id>, O=hsm-riot, OU=DICE DeviceID`, a CA limited to
//!   path length 0 with key usage keyCertSign; self-signed, or signed by a group CA.
//! - Alias: subject `CN=<registration id>, O=hsm-riot, OU=DICE Alias`, an end entity with key
//!   usage digitalSignature, extended key usage clientAuth and the DiceTcbInfo extension;
//!   signed by the DeviceID key.
//!
//! Serial numbers are 16 bytes of SHA-256("hsm-riot/v1 serial" || subject SPKI), top bit
//! cleared (positive) and next bit set (always 16 bytes long): unique per key, reproducible.
//! Signatures with DICE keys use RFC 6979 nonces, so a self-signed chain is byte-for-byte
//! reproducible from the same UDS, firmware, registration id and validity.

use std::path::Path;

use std::sync::Arc;

use der::asn1::OctetString;
use hsm_core::file::FileKey;
use hsm_core::x509::{self, Name, oid};
use hsm_core::{Error, Result, SignatureScheme, SigningKey, pem};
use rustls_pki_types::CertificateDer;
use sha2::{Digest as _, Sha256};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::serial_number::SerialNumber;

use crate::derive::DiceKeys;
use crate::key::DiceKey;
use crate::tcbinfo::{TCB_INFO, TcbInfo};

/// Validity period of the certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The first instant the certificates are valid.
    pub not_before: OffsetDateTime,
    /// The last instant the certificates are valid.
    pub not_after: OffsetDateTime,
}

impl Default for Validity {
    /// From 2025-01-01T00:00:00Z to 9999-12-31T23:59:59Z, the RFC 5280 (4.1.2.5) value for
    /// "no well-defined expiration date" (a device identity lives as long as the device).
    /// Fixed dates keep the certificates reproducible.
    fn default() -> Self {
        Validity {
            not_before: time::macros::datetime!(2025-01-01 00:00:00 UTC),
            not_after: time::macros::datetime!(9999-12-31 23:59:59 UTC),
        }
    }
}

impl Validity {
    /// `not_before` (RFC 3339, default 2025-01-01T00:00:00Z) plus `validity_days` (default:
    /// until 9999-12-31T23:59:59Z). `what` names the source in errors.
    pub(crate) fn from_parts(what: &str, not_before: Option<&str>, validity_days: Option<u32>) -> Result<Self> {
        let default = Validity::default();
        let not_before = match not_before {
            Some(s) => {
                OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339).map_err(|e| {
                    Error::parse(
                        format!("{what} not_before"),
                        format!("`{s}` is not an RFC 3339 time: {e}"),
                    )
                })?
            }
            None => default.not_before,
        };
        let not_after = match validity_days {
            Some(0) => return Err(Error::parse(format!("{what} validity_days"), "must be at least 1")),
            Some(d) => not_before
                .checked_add(time::Duration::days(i64::from(d)))
                .filter(|t| *t <= default.not_after)
                .ok_or_else(|| {
                    Error::parse(
                        format!("{what} validity_days"),
                        format!("{d} days ends after year 9999"),
                    )
                })?,
            None => default.not_after,
        };
        if not_after <= not_before {
            return Err(Error::parse(
                format!("{what} not_before"),
                "the validity period ends before it begins",
            ));
        }
        Ok(Validity { not_before, not_after })
    }
}

/// A CA that signs the DeviceID certificate (group enrollment): its certificate chain (CA
/// first, as in the PEM file) and its private key (software, from a PEM file).
pub struct CaSigner {
    key: Arc<FileKey>,
    /// The CA's subject: the DeviceID certificate's issuer.
    name: Name,
    /// The CA's key identifier (its subjectKeyIdentifier, else the SHA-256 one of its key): the
    /// DeviceID certificate's authorityKeyIdentifier.
    key_id: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    #[cfg(feature = "pki")]
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl std::fmt::Debug for CaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSigner")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl CaSigner {
    /// Load a CA certificate file (the CA first, then its own issuers, if any) and its key.
    pub(crate) fn from_files(cert_path: &Path, key_path: &Path) -> Result<Self> {
        let cert_pem = pem::read_file("read CA certificate", cert_path)?;
        let key_pem = pem::read_file("read CA private key", key_path)?;
        let key_text = std::str::from_utf8(&key_pem)
            .map_err(|_| Error::parse(format!("CA private key {}", key_path.display()), "not UTF-8 PEM text"))?;
        Self::from_pem(
            &format!("CA certificate {}", cert_path.display()),
            &cert_pem,
            &format!("CA private key {}", key_path.display()),
            key_text,
        )
    }

    /// From PEM texts; `cert_what` / `key_what` name them in errors.
    pub fn from_pem(cert_what: &str, cert_pem: &[u8], key_what: &str, key_pem: &str) -> Result<Self> {
        let chain = pem::parse_certificates(cert_what, cert_pem)?;
        let key = FileKey::from_pem(key_what, key_pem.as_bytes())?;
        let ca = x509::parse(cert_what, &chain[0])?;
        let ca_spki = x509::spki_der(&ca)?;
        let key_spki = key.public_key_spki()?;
        if hsm_core::der::spki_public_key_bits(&ca_spki)? != hsm_core::der::spki_public_key_bits(&key_spki)? {
            return Err(Error::parse(
                key_what,
                format!("it does not match the first certificate of {cert_what}"),
            ));
        }
        if !matches!(x509::basic_constraints(cert_what, &ca)?, Some((true, _))) {
            return Err(Error::parse(
                cert_what,
                "the first certificate is not a CA (basicConstraints cA)",
            ));
        }
        let key_id = match x509::extension(cert_what, &ca, &oid::SUBJECT_KEY_IDENTIFIER)? {
            Some(v) => <SubjectKeyIdentifier as der::Decode>::from_der(v)
                .map_err(|e| Error::parse(cert_what, format!("subjectKeyIdentifier: {e}")))?
                .0
                .into_bytes(),
            None => x509::key_identifier(&key_spki),
        };
        #[cfg(feature = "pki")]
        let issuer = rcgen::Issuer::from_ca_cert_der(
            &chain[0],
            rcgen::KeyPair::from_pem(key_pem).map_err(|e| Error::parse(key_what, e))?,
        )
        .map_err(|e| Error::parse(cert_what, e))?;
        Ok(CaSigner {
            key: Arc::new(key),
            name: ca.tbs_certificate.subject,
            key_id,
            chain,
            #[cfg(feature = "pki")]
            issuer,
        })
    }

    #[cfg(feature = "pki")]
    pub(crate) fn issuer(&self) -> &rcgen::Issuer<'static, rcgen::KeyPair> {
        &self.issuer
    }

    /// Refuse a CA whose path length constraint leaves no room for another CA below it: the
    /// DeviceID certificate is one, so every verifier would reject the chain.
    pub(crate) fn check_can_sign_a_ca(&self, what: &str) -> Result<()> {
        let ca = x509::parse(what, &self.chain[0])?;
        if let Ok(Some((_, Some(0)))) = x509::basic_constraints(what, &ca) {
            return Err(Error::parse(
                what,
                format!(
                    "CA `{}` has pathlen 0, so it cannot sign the DeviceID certificate (itself a CA); \
                     use a CA with pathlen >= 1 or none (hsmctl certs makes its intermediate with pathlen 1)",
                    x509::name_to_string(&self.name)
                ),
            ));
        }
        Ok(())
    }

    /// The CA's certificates, CA first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

/// The certificates of a DICE identity.
#[derive(Debug, Clone)]
pub struct DiceChain {
    /// The Alias certificate (layer 1, the TLS client certificate), signed by the DeviceID key.
    pub alias: CertificateDer<'static>,
    /// The DeviceID certificate (layer 0), self-signed or signed by the group CA.
    pub device_id: CertificateDer<'static>,
    /// The group CA's chain when the DeviceID is CA-signed (CA first); empty otherwise.
    pub ca_chain: Vec<CertificateDer<'static>>,
}

impl DiceChain {
    /// Alias, DeviceID, then the CA chain: what the device presents.
    pub fn to_vec(&self) -> Vec<CertificateDer<'static>> {
        let mut v = vec![self.alias.clone(), self.device_id.clone()];
        v.extend(self.ca_chain.iter().cloned());
        v
    }
}

fn serial_for(key: &DiceKey) -> Result<SerialNumber> {
    let mut h = Sha256::new();
    h.update(b"hsm-riot/v1 serial");
    h.update(key.spki());
    let d = h.finalize();
    let mut s = [0u8; 16];
    s.copy_from_slice(&d[..16]);
    s[0] = (s[0] & 0x7f) | 0x40;
    SerialNumber::new(&s).map_err(|e| Error::Internal(format!("a 16-byte serial number: {e}")))
}

fn name(registration_id: &str, unit: &str) -> Result<Name> {
    x509::utf8_name(&[
        (oid::COMMON_NAME, registration_id),
        (oid::ORGANIZATION, "hsm-riot"),
        (oid::ORGANIZATIONAL_UNIT, unit),
    ])
}

fn octets(v: Vec<u8>) -> Result<OctetString> {
    OctetString::new(v).map_err(|e| Error::Internal(format!("a key identifier: {e}")))
}

fn authority_key_id(key_id: Vec<u8>) -> Result<Extension> {
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(octets(key_id)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    x509::make_extension(oid::AUTHORITY_KEY_IDENTIFIER, false, &aki)
}

/// Signs the DER of a TBSCertificate.
type SignFn<'a> = Box<dyn Fn(&[u8]) -> Result<Vec<u8>> + 'a>;

/// Who signs a certificate: its name, key identifier, algorithm and signature.
struct Signer<'a> {
    name: Name,
    key_id: Vec<u8>,
    algorithm: AlgorithmIdentifierOwned,
    sign: SignFn<'a>,
}

impl<'a> Signer<'a> {
    /// A DICE key: ECDSA P-256 with SHA-256 and RFC 6979 nonces (reproducible certificates).
    fn dice(name: Name, key: &'a DiceKey) -> Self {
        Signer {
            name,
            key_id: x509::key_identifier(key.spki()),
            algorithm: x509::signature_algorithm(hsm_core::KeyAlgorithm::Ec(hsm_core::Curve::P256)).1,
            sign: Box::new(|tbs| Ok(key.sign_sha256(tbs))),
        }
    }

    fn ca(ca: &'a CaSigner) -> Self {
        let (scheme, algorithm): (SignatureScheme, _) = x509::signature_algorithm(ca.key.algorithm());
        Signer {
            name: ca.name.clone(),
            key_id: ca.key_id.clone(),
            algorithm,
            sign: Box::new(move |tbs| ca.key.sign(scheme, tbs)),
        }
    }
}

/// A certificate for `subject_key` named `subject`, signed by `signer`.
fn issue(
    subject: Name,
    subject_key: &DiceKey,
    validity: &Validity,
    signer: &Signer<'_>,
    extensions: Vec<Extension>,
) -> Result<CertificateDer<'static>> {
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: serial_for(subject_key)?,
        signature: signer.algorithm.clone(),
        issuer: signer.name.clone(),
        validity: x509_cert::time::Validity {
            not_before: x509::time(validity.not_before.unix_timestamp())?,
            not_after: x509::time(validity.not_after.unix_timestamp())?,
        },
        subject,
        subject_public_key_info: <spki::SubjectPublicKeyInfoOwned as der::Decode>::from_der(subject_key.spki())
            .map_err(|e| Error::Internal(format!("a DICE key's SubjectPublicKeyInfo: {e}")))?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    Ok(CertificateDer::from(x509::sign(&tbs, &signer.algorithm, &signer.sign)?))
}

/// Issue the DeviceID and Alias certificates for derived keys. The extensions and their order
/// are those the certificates always had: DeviceID: authorityKeyIdentifier (CA-signed only),
/// keyUsage (critical), subjectKeyIdentifier, basicConstraints (critical); Alias:
/// authorityKeyIdentifier, keyUsage (critical), extKeyUsage, DiceTcbInfo.
pub fn issue_chain(
    keys: &DiceKeys,
    registration_id: &str,
    validity: &Validity,
    ca: Option<&CaSigner>,
) -> Result<DiceChain> {
    let device_name = name(registration_id, "DICE DeviceID")?;
    let device_signer = Signer::dice(device_name.clone(), &keys.device_id);
    let signer = match ca {
        Some(ca) => Signer::ca(ca),
        None => Signer::dice(device_name.clone(), &keys.device_id),
    };
    let mut extensions = Vec::new();
    if ca.is_some() {
        extensions.push(authority_key_id(signer.key_id.clone())?);
    }
    extensions.extend([
        x509::make_extension(oid::KEY_USAGE, true, &KeyUsage(KeyUsages::KeyCertSign.into()))?,
        x509::make_extension(
            oid::SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(octets(device_signer.key_id.clone())?),
        )?,
        x509::make_extension(
            oid::BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: Some(0),
            },
        )?,
    ]);
    let device_id = issue(device_name, &keys.device_id, validity, &signer, extensions)?;

    let tcb_info = TcbInfo::for_alias_layer(&keys.fwid.0).to_der()?;
    let alias_extensions = vec![
        authority_key_id(device_signer.key_id.clone())?,
        x509::make_extension(oid::KEY_USAGE, true, &KeyUsage(KeyUsages::DigitalSignature.into()))?,
        x509::make_extension(oid::EXT_KEY_USAGE, false, &ExtendedKeyUsage(vec![oid::CLIENT_AUTH]))?,
        Extension {
            extn_id: TCB_INFO,
            critical: false,
            extn_value: octets(tcb_info)?,
        },
    ];
    let alias = issue(
        name(registration_id, "DICE Alias")?,
        &keys.alias,
        validity,
        &device_signer,
        alias_extensions,
    )?;

    Ok(DiceChain {
        alias,
        device_id,
        ca_chain: ca.map(|c| c.chain.clone()).unwrap_or_default(),
    })
}

/// Check a registration id the way DPS does: 1 to 128 characters of `a-z 0-9 - . _ :`
/// (DPS compares case-insensitively and stores lowercase), ending in a letter, digit or `-`.
pub fn check_registration_id(what: &str, id: &str) -> Result<()> {
    let bad = |reason: &str| Error::parse(what, format!("registration id `{id}`: {reason}"));
    if id.is_empty() || id.len() > 128 {
        return Err(bad("must have 1 to 128 characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_' | ':')))
    {
        return Err(bad(&format!(
            "character {c:?} is not allowed (lowercase letters, digits, - . _ :)"
        )));
    }
    if id.ends_with(['.', '_', ':']) {
        return Err(bad("must end with a letter, a digit or `-`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_parts() {
        let v = Validity::from_parts("t", Some("2026-01-01T00:00:00Z"), Some(365)).unwrap();
        assert_eq!(v.not_after.year(), 2027);
        assert_eq!(Validity::from_parts("t", None, None).unwrap(), Validity::default());
        let e = Validity::from_parts("t", Some("yesterday"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not_before") && e.contains("RFC 3339"), "{e}");
        let e = Validity::from_parts("t", None, Some(0)).unwrap_err().to_string();
        assert!(e.contains("validity_days"), "{e}");
        let e = Validity::from_parts("t", Some("9999-12-31T00:00:00Z"), Some(2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("after year 9999"), "{e}");
    }

    #[test]
    fn registration_ids() {
        assert!(check_registration_id("r", "device-0001").is_ok());
        assert!(check_registration_id("r", "a.b_c:d-").is_ok());
        assert!(check_registration_id("r", "").is_err());
        assert!(
            check_registration_id("r", "Device")
                .unwrap_err()
                .to_string()
                .contains("'D'")
        );
        assert!(check_registration_id("r", "dev.").is_err());
        assert!(check_registration_id("r", &"a".repeat(129)).is_err());
    }
}
