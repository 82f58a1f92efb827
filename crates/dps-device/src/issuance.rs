//! Certificates issued by DPS at registration (`csr` / `issuedCertificateChain`, DPS device API
//! `2025-07-01-preview` and later) and by IoT Hub renewal: reading the chain, and checking it before use.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Error, Transport, protocol};

/// Whether a DPS device api-version knows `csr`: `2025-07-01-preview` and every later one (versions are
/// dates).
pub(crate) fn api_version_knows_csr(version: &str) -> bool {
    version.get(..10).is_some_and(|date| date >= "2025-07-01")
}

/// One certificate of a service answer: base64 DER (DPS `issuedCertificateChain`) or PEM (IoT Hub may
/// answer either).
pub(crate) fn decode_certificate(text: &str) -> Result<Vec<u8>, String> {
    if text.contains("-----BEGIN") {
        let mut certs =
            hsm_core::pem::parse_certificates("issued certificate", text.as_bytes()).map_err(|e| e.to_string())?;
        return match certs.len() {
            1 => Ok(certs.remove(0).to_vec()),
            n => Err(format!("a PEM entry holds {n} certificates, expected 1")),
        };
    }
    B64.decode(text.trim()).map_err(|e| format!("not base64: {e}"))
}

/// `issuedCertificateChain` of a registrationState: None when absent.
pub(crate) fn read_chain(t: Transport, value: Option<&Value>) -> Result<Option<Vec<Vec<u8>>>, Error> {
    let items = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => return Err(protocol(t, "issuedCertificateChain is not a non-empty array")),
    };
    decode_chain(items, "issuedCertificateChain")
        .map(Some)
        .map_err(|m| protocol(t, m))
}

/// The certificates of a JSON array (base64 DER or PEM strings), DER, in order; the error names
/// `field[i]`.
pub(crate) fn decode_chain(items: &[Value], field: &str) -> Result<Vec<Vec<u8>>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let text = item.as_str().ok_or_else(|| format!("{field}[{i}] is not a string"))?;
            decode_certificate(text).map_err(|e| crate::error::sanitize(&format!("{field}[{i}]: {e}")))
        })
        .collect()
}

/// Check an issued chain (DER, leaf first, ending with the root) before storing or using it: the leaf's
/// public key is the one of `csr` (DER PKCS#10), its subject CN is `registration_id`, each certificate is
/// signed by the next (the last by itself), every certificate after the leaf is a CA, and all are valid
/// now. The error names the first check that failed.
pub fn verify_issued_chain(chain: &[Vec<u8>], csr: &[u8], registration_id: &str) -> Result<(), Error> {
    let refuse = |m: String| Error::IssuedChain(m);
    if chain.is_empty() {
        return Err(refuse("the chain is empty".into()));
    }
    let (_, request) =
        X509CertificationRequest::from_der(csr).map_err(|e| refuse(format!("the CSR does not parse: {e}")))?;
    let certs = chain
        .iter()
        .enumerate()
        .map(|(i, der)| match X509Certificate::from_der(der) {
            Ok(([], c)) => Ok(c),
            Ok(_) => Err(refuse(format!("certificate {i} has trailing bytes"))),
            Err(e) => Err(refuse(format!("certificate {i} does not parse: {e}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = &certs[0];
    if leaf.public_key().raw != request.certification_request_info.subject_pki.raw {
        return Err(refuse(
            "the leaf certificate's public key is not the key of our CSR (a certificate for another key)".into(),
        ));
    }
    let cn = leaf.subject().iter_common_name().next().and_then(|c| c.as_str().ok());
    if cn != Some(registration_id) {
        return Err(refuse(format!(
            "the leaf certificate's CN {cn:?} is not the registration id '{registration_id}'"
        )));
    }
    for (i, cert) in certs.iter().enumerate() {
        let issuer = certs.get(i + 1).unwrap_or(cert);
        let what = match i + 1 == certs.len() {
            true => "the root is not self-signed".to_string(),
            false => format!("certificate {i} is not signed by certificate {}", i + 1),
        };
        if cert.issuer() != issuer.subject() || cert.verify_signature(Some(issuer.public_key())).is_err() {
            return Err(refuse(what));
        }
        if i > 0 && !cert.is_ca() {
            return Err(refuse(format!("certificate {i} signs another but is not a CA")));
        }
        if !cert.validity().is_valid() {
            let v = cert.validity();
            return Err(refuse(format!(
                "certificate {i} is not valid now (valid from {} to {})",
                v.not_before, v.not_after
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dated_versions_from_2025_07_01_know_csr() {
        assert!(api_version_knows_csr("2025-07-01-preview"));
        assert!(api_version_knows_csr("2026-11-01"));
        assert!(!api_version_knows_csr("2021-06-01"));
        assert!(!api_version_knows_csr("latest"));
        assert!(!api_version_knows_csr(""));
    }

    #[test]
    fn chain_entries_must_be_strings_of_base64_or_pem() {
        let t = Transport::Https;
        assert!(read_chain(t, None).unwrap().is_none());
        assert_eq!(
            read_chain(t, Some(&serde_json::json!(["AAEC"]))).unwrap(),
            Some(vec![vec![0, 1, 2]])
        );
        for bad in [
            serde_json::json!([]),
            serde_json::json!([1]),
            serde_json::json!("x"),
            serde_json::json!(["!"]),
        ] {
            assert!(read_chain(t, Some(&bad)).is_err(), "{bad}");
        }
    }
}
