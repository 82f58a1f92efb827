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

use hsm_core::{Error, Result, pem};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::derive::DiceKeys;
use crate::key::DiceKey;
use crate::tcbinfo::{TCB_INFO_OID, TcbInfo};

pub(crate) fn rcgen_err(op: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |e| Error::Crypto {
        op,
        reason: e.to_string(),
    }
}

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
            not_before: rcgen::date_time_ymd(2025, 1, 1),
            not_after: rcgen::date_time_ymd(9999, 12, 31) + time::Duration::seconds(86_399),
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
    issuer: Issuer<'static, KeyPair>,
    chain: Vec<CertificateDer<'static>>,
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
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::parse(key_what, e))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&chain[0]).map_err(|e| Error::parse(cert_what, e))?;
        if *parsed.public_key().subject_public_key.data != *rcgen::PublicKeyData::der_bytes(&key) {
            return Err(Error::parse(
                key_what,
                format!("it does not match the first certificate of {cert_what}"),
            ));
        }
        if !parsed.is_ca() {
            return Err(Error::parse(
                cert_what,
                "the first certificate is not a CA (basicConstraints cA)",
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&chain[0], key).map_err(|e| Error::parse(cert_what, e))?;
        Ok(CaSigner { issuer, chain })
    }

    #[cfg(feature = "pki")]
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// Refuse a CA whose path length constraint leaves no room for another CA below it: the
    /// DeviceID certificate is one, so every verifier would reject the chain.
    pub(crate) fn check_can_sign_a_ca(&self, what: &str) -> Result<()> {
        let (_, parsed) = x509_parser::parse_x509_certificate(&self.chain[0]).map_err(|e| Error::parse(what, e))?;
        if let Ok(Some(bc)) = parsed.basic_constraints() {
            if bc.value.path_len_constraint == Some(0) {
                return Err(Error::parse(
                    what,
                    format!(
                        "CA `{}` has pathlen 0, so it cannot sign the DeviceID certificate (itself a CA); \
                         use a CA with pathlen >= 1 or none (hsmctl certs makes its intermediate with pathlen 1)",
                        parsed.subject()
                    ),
                ));
            }
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

fn serial_for(key: &DiceKey) -> SerialNumber {
    let mut h = Sha256::new();
    h.update(b"hsm-riot/v1 serial");
    h.update(key.spki());
    let d = h.finalize();
    let mut s = [0u8; 16];
    s.copy_from_slice(&d[..16]);
    s[0] = (s[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&s)
}

fn name(registration_id: &str, unit: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, registration_id);
    dn.push(DnType::OrganizationName, "hsm-riot");
    dn.push(DnType::OrganizationalUnitName, unit);
    dn
}

/// The parameters of the DeviceID certificate.
fn device_id_params(keys: &DiceKeys, registration_id: &str, validity: &Validity, ca_signed: bool) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(registration_id, "DICE DeviceID");
    p.not_before = validity.not_before;
    p.not_after = validity.not_after;
    p.serial_number = Some(serial_for(&keys.device_id));
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    p.use_authority_key_identifier_extension = ca_signed;
    p
}

/// Issue the DeviceID and Alias certificates for derived keys.
pub fn issue_chain(
    keys: &DiceKeys,
    registration_id: &str,
    validity: &Validity,
    ca: Option<&CaSigner>,
) -> Result<DiceChain> {
    let dev_params = device_id_params(keys, registration_id, validity, ca.is_some());
    let device_id = match ca {
        Some(ca) => dev_params
            .signed_by(&keys.device_id, &ca.issuer)
            .map_err(rcgen_err("issue the DeviceID certificate"))?,
        None => dev_params
            .self_signed(&keys.device_id)
            .map_err(rcgen_err("issue the DeviceID certificate"))?,
    };

    let mut alias = CertificateParams::default();
    alias.distinguished_name = name(registration_id, "DICE Alias");
    alias.not_before = validity.not_before;
    alias.not_after = validity.not_after;
    alias.serial_number = Some(serial_for(&keys.alias));
    alias.is_ca = IsCa::NoCa;
    alias.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    alias.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    alias.use_authority_key_identifier_extension = true;
    alias.custom_extensions = vec![CustomExtension::from_oid_content(
        TCB_INFO_OID,
        TcbInfo::for_alias_layer(&keys.fwid.0).to_der(),
    )];
    let issuer = Issuer::from_params(&dev_params, &keys.device_id);
    let alias = alias
        .signed_by(&keys.alias, &issuer)
        .map_err(rcgen_err("issue the Alias certificate"))?;

    Ok(DiceChain {
        alias: alias.der().clone(),
        device_id: device_id.der().clone(),
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
