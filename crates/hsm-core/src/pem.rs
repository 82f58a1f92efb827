//! PEM and certificate helpers.

use std::path::Path;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

/// Read a PEM file (a regular file of at most `crate::fs::PEM_MAX` bytes), naming it in
/// the error; zeroized when dropped, as it may hold a private key.
pub fn read_file(op: &'static str, path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    crate::fs::read_bounded(op, path, crate::fs::PEM_MAX)
}

/// Parse every `CERTIFICATE` block of a PEM text; other blocks are an error.
pub fn parse_certificates(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let mut out = Vec::new();
    for item in rustls_pemfile::read_all(&mut &pem[..]) {
        match item.map_err(|e| Error::parse(what, format!("bad PEM: {e}")))? {
            rustls_pemfile::Item::X509Certificate(c) => {
                x509_parser::parse_x509_certificate(&c).map_err(|e| {
                    Error::parse(what, format!("certificate {} is not valid X.509: {e}", out.len() + 1))
                })?;
                out.push(c)
            }
            _ => return Err(Error::parse(what, "expected only CERTIFICATE blocks")),
        }
    }
    if out.is_empty() {
        return Err(Error::parse(what, "no PEM CERTIFICATE block found"));
    }
    Ok(out)
}

/// Parse exactly one private key (PKCS#8, SEC1 or PKCS#1) from PEM.
pub fn parse_private_key(what: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    let mut keys = Vec::new();
    for item in rustls_pemfile::read_all(&mut &pem[..]) {
        match item.map_err(|e| Error::parse(what, format!("bad PEM: {e}")))? {
            rustls_pemfile::Item::Pkcs8Key(k) => keys.push(PrivateKeyDer::from(k)),
            rustls_pemfile::Item::Sec1Key(k) => keys.push(PrivateKeyDer::from(k)),
            rustls_pemfile::Item::Pkcs1Key(k) => keys.push(PrivateKeyDer::from(k)),
            _ => {}
        }
    }
    match keys.len() {
        1 => Ok(keys.remove(0)),
        0 => Err(Error::parse(what, "no PEM private key block found")),
        n => Err(Error::parse(what, format!("{n} private keys found, expected one"))),
    }
}

/// PEM text for a chain, leaf first.
pub fn certificates_to_pem(chain: &[CertificateDer<'_>]) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    for c in chain {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// The subject common name of a certificate.
pub fn common_name(cert: &CertificateDer<'_>) -> Result<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| Error::parse("certificate", e))?;
    let cn = parsed.subject().iter_common_name().next().ok_or_else(|| {
        Error::parse(
            "certificate",
            format!("subject `{}` has no common name", parsed.subject()),
        )
    })?;
    cn.as_str()
        .map(str::to_string)
        .map_err(|e| Error::parse("certificate common name", e))
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn public_key_spki(cert: &CertificateDer<'_>) -> Result<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| Error::parse("certificate", e))?;
    Ok(parsed.public_key().raw.to_vec())
}

/// Algorithm, curve or modulus size of a DER SubjectPublicKeyInfo.
pub fn key_algorithm_from_spki(spki: &[u8]) -> Result<crate::KeyAlgorithm> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let (_, info) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).map_err(|e| Error::parse("public key", e))?;
    match info.parsed().map_err(|e| Error::parse("public key", e))? {
        PublicKey::RSA(rsa) => {
            let modulus = rsa.modulus.iter().skip_while(|b| **b == 0).count();
            Ok(crate::KeyAlgorithm::Rsa {
                bits: u32::try_from(modulus * 8).map_err(|e| Error::parse("RSA public key", e))?,
            })
        }
        PublicKey::EC(_) => {
            let curve = info
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or_else(|| Error::parse("EC public key", "no named curve"))?;
            match curve.to_id_string().as_str() {
                "1.2.840.10045.3.1.7" => Ok(crate::KeyAlgorithm::Ec(crate::Curve::P256)),
                "1.3.132.0.34" => Ok(crate::KeyAlgorithm::Ec(crate::Curve::P384)),
                other => Err(Error::parse(
                    "EC public key",
                    format!("curve {other} is not supported (P-256, P-384 are)"),
                )),
            }
        }
        _ => Err(Error::parse(
            "public key",
            "only EC (P-256, P-384) and RSA keys are supported",
        )),
    }
}
