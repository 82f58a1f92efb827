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
                <crate::x509::Certificate as ::der::Decode>::from_der(&c).map_err(|e| {
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
    crate::x509::common_name(&crate::x509::parse("certificate", cert)?.tbs_certificate.subject)
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn public_key_spki(cert: &CertificateDer<'_>) -> Result<Vec<u8>> {
    crate::x509::spki_der(&crate::x509::parse("certificate", cert)?)
}

/// Algorithm, curve or modulus size of a DER SubjectPublicKeyInfo.
pub fn key_algorithm_from_spki(spki: &[u8]) -> Result<crate::KeyAlgorithm> {
    use crate::x509::oid;
    use ::der::Decode as _;
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki).map_err(|e| Error::parse("public key", e))?;
    let bits = info
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| Error::parse("public key", "the public key is not a whole number of bytes"))?;
    match info.algorithm.oid {
        oid::RSA_ENCRYPTION => {
            // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
            let [modulus, _exponent] =
                <[::der::asn1::UintRef<'_>; 2]>::from_der(bits).map_err(|e| Error::parse("RSA public key", e))?;
            Ok(crate::KeyAlgorithm::Rsa {
                bits: u32::try_from(modulus.as_bytes().len() * 8).map_err(|e| Error::parse("RSA public key", e))?,
            })
        }
        oid::EC_PUBLIC_KEY => {
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<::der::asn1::ObjectIdentifier>().ok())
                .ok_or_else(|| Error::parse("EC public key", "no named curve"))?;
            match curve {
                oid::P256 => Ok(crate::KeyAlgorithm::Ec(crate::Curve::P256)),
                oid::P384 => Ok(crate::KeyAlgorithm::Ec(crate::Curve::P384)),
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
