//! Certificates issued by DPS at registration (`csr` / `issuedCertificateChain`, DPS device API
//! `2025-07-01-preview` and later; stable from `2026-04-01`) and by IoT Hub renewal: the CSR checked
//! before it is sent, reading the chain, and checking it before use.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::der_parser::asn1_rs::Oid;
use x509_parser::oid_registry::{OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::protocol;
use crate::{Error, Transport};

/// A CSR DPS can issue to: a DER PKCS#10 request whose key is ECDSA P-384 (DPS issues to no other
/// key). Checked before anything is sent.
pub(crate) fn check_csr(csr: &[u8]) -> Result<(), Error> {
    if csr.is_empty() {
        return Err(Error::InvalidRequest("the CSR is empty".into()));
    }
    let (_, request) = X509CertificationRequest::from_der(csr)
        .map_err(|e| Error::InvalidRequest(format!("the CSR is not a DER PKCS#10 request: {e}")))?;
    let spki = &request.certification_request_info.subject_pki;
    let algorithm = &spki.algorithm;
    let curve = algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o: Oid<'_>| o.to_id_string());
    if algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY && curve == Some(OID_NIST_EC_P384.to_id_string()) {
        return Ok(());
    }
    let key = match (algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY, curve) {
        (true, Some(c)) => format!("an EC key on curve {c}"),
        (true, None) => "an EC key without a named curve".to_string(),
        (false, _) => format!("a key of algorithm {}", algorithm.algorithm.to_id_string()),
    };
    Err(Error::InvalidRequest(format!(
        "the CSR's key is {key}: DPS issues certificates to ECDSA P-384 keys only (curve secp384r1, \
         1.3.132.0.34); make the key with P-384"
    )))
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
pub(crate) fn read_chain(t: Transport, value: Option<&[String]>) -> Result<Option<Vec<Vec<u8>>>, Error> {
    let items = match value {
        None => return Ok(None),
        Some([]) => return Err(protocol(t, "issuedCertificateChain is an empty array")),
        Some(items) => items,
    };
    decode_chain(items, "issuedCertificateChain")
        .map(Some)
        .map_err(|m| protocol(t, m))
}

/// The certificates of a JSON array (base64 DER or PEM strings), DER, in order; the error names
/// `field[i]`.
pub(crate) fn decode_chain(items: &[String], field: &str) -> Result<Vec<Vec<u8>>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, text)| decode_certificate(text).map_err(|e| crate::error::sanitize(&format!("{field}[{i}]: {e}"))))
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
    fn chain_entries_must_be_base64_or_pem() {
        let t = Transport::Https;
        assert!(read_chain(t, None).unwrap().is_none());
        assert_eq!(
            read_chain(t, Some(&["AAEC".to_string()])).unwrap(),
            Some(vec![vec![0, 1, 2]])
        );
        assert!(read_chain(t, Some(&[])).is_err());
        assert!(read_chain(t, Some(&["!".to_string()])).is_err());
    }

    #[test]
    fn only_p384_csrs_pass() {
        let csr = |alg: &'static rcgen::SignatureAlgorithm| {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, "d");
            p.serialize_request(&key).unwrap().der().to_vec()
        };
        check_csr(&csr(&rcgen::PKCS_ECDSA_P384_SHA384)).unwrap();
        let e = check_csr(&csr(&rcgen::PKCS_ECDSA_P256_SHA256)).unwrap_err();
        assert!(
            e.to_string().contains("1.2.840.10045.3.1.7") && e.to_string().contains("P-384"),
            "{e}"
        );
        let e = check_csr(&csr(&rcgen::PKCS_ED25519)).unwrap_err();
        assert!(e.to_string().contains("algorithm 1.3.101.112"), "{e}");
        assert!(check_csr(b"junk").is_err());
        assert!(check_csr(b"").is_err());
    }
}
