//! The material an enrollment record is completed with: the symmetric key generated when a client names
//! none, the certificates parsed from what a client sent (PEM, base64 PEM or base64 DER), and each
//! certificate's info as DPS reports it.

use base64::Engine as _;
use dps_wire::service::X509CertificateInfo;
use rustls_pki_types::CertificateDer;
use serde_json::Map;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A 64-byte random key, base64 (what DPS generates when a symmetric-key enrollment names none).
pub(crate) fn random_key() -> Result<String, String> {
    use ring::rand::SecureRandom as _;
    let mut key = zeroize::Zeroizing::new([0u8; 64]);
    ring::rand::SystemRandom::new()
        .fill(key.as_mut())
        .map_err(|_| "the system random generator failed".to_string())?;
    Ok(B64.encode(key.as_ref()))
}

/// PEM (one or more certificates), the base64 of PEM, or the base64 of one DER certificate (the service
/// SDKs send each of these).
pub(crate) fn parse_certificates(what: &str, text: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = |bytes: &[u8]| hsm_core::pem::parse_certificates(what, bytes).map_err(|e| e.to_string());
    let chain = if text.contains("-----BEGIN") {
        pem(text.as_bytes())?
    } else {
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| format!("{what} is neither PEM nor base64 DER: {e}"))?;
        if bytes.starts_with(b"-----BEGIN") {
            pem(&bytes)?
        } else {
            vec![CertificateDer::from(bytes)]
        }
    };
    if chain.is_empty() {
        return Err(format!("{what} holds no certificate"));
    }
    for c in &chain {
        x509_parser::parse_x509_certificate(c).map_err(|e| format!("{what} is not an X.509 certificate: {e}"))?;
    }
    Ok(chain)
}

pub(crate) fn certificate_info(what: &str, der: &CertificateDer<'_>) -> Result<X509CertificateInfo, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("{what} is not an X.509 certificate: {e}"))?;
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02X}")).collect::<String>();
    let time = |t: x509_parser::time::ASN1Time| {
        crate::ids_and_times::rfc3339_from_unix(u64::try_from(t.timestamp()).unwrap_or(0))
    };
    Ok(X509CertificateInfo {
        subject_name: Some(cert.subject().to_string()),
        sha1_thumbprint: Some(hex(
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref()
        )),
        sha256_thumbprint: Some(hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())),
        issuer_name: Some(cert.issuer().to_string()),
        not_before_utc: Some(time(cert.validity().not_before)),
        not_after_utc: Some(time(cert.validity().not_after)),
        serial_number: Some(hex(cert.raw_serial())),
        version: Some(i64::from(cert.version().0) + 1),
        extra: Map::new(),
    })
}
