//! The few DER structures this backend writes: SubjectPublicKeyInfo, ECDSA signatures,
//! PKCS#1 DigestInfo prefixes and named-curve parameters.

use hsm_core::{Curve, Error, Result};

/// DER of the named-curve OID of P-256 (`CKA_EC_PARAMS`).
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the named-curve OID of P-384 (`CKA_EC_PARAMS`).
pub const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const RSA_ENCRYPTION_OID: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// PKCS#1 v1.5 DigestInfo prefixes (RFC 8017 section 9.2, note 1).
pub const SHA256_DIGEST_INFO: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
];
pub const SHA384_DIGEST_INFO: &[u8] = &[
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30,
];
pub const SHA512_DIGEST_INFO: &[u8] = &[
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40,
];

pub fn curve_params(curve: Curve) -> Result<&'static [u8]> {
    match curve {
        Curve::P256 => Ok(P256_PARAMS),
        Curve::P384 => Ok(P384_PARAMS),
        other => Err(Error::unsupported("the PKCS#11 backend", format!("curve {other:?}"))),
    }
}

pub fn curve_from_params(params: &[u8]) -> Result<Curve> {
    match params {
        P256_PARAMS => Ok(Curve::P256),
        P384_PARAMS => Ok(Curve::P384),
        _ => Err(Error::parse(
            "CKA_EC_PARAMS",
            "the key is not on a supported named curve (P-256, P-384)",
        )),
    }
}

/// Field size in bytes.
pub fn curve_len(curve: Curve) -> usize {
    match curve {
        Curve::P384 => 48,
        _ => 32,
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// An unsigned big-endian number as a DER INTEGER.
pub fn unsigned_integer(v: &[u8]) -> Vec<u8> {
    let v = &v[v.iter().take_while(|b| **b == 0).count().min(v.len().saturating_sub(1))..];
    if v.is_empty() {
        return vec![0x02, 0x01, 0x00];
    }
    if v[0] & 0x80 != 0 {
        let mut c = Vec::with_capacity(v.len() + 1);
        c.push(0);
        c.extend_from_slice(v);
        tlv(0x02, &c)
    } else {
        tlv(0x02, v)
    }
}

fn bit_string(v: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(v.len() + 1);
    c.push(0);
    c.extend_from_slice(v);
    tlv(0x03, &c)
}

/// Raw `r || s` (what CKM_ECDSA returns) to a DER `Ecdsa-Sig-Value`.
pub fn ecdsa_raw_to_der(curve: Curve, raw: &[u8]) -> Result<Vec<u8>> {
    let n = curve_len(curve);
    if raw.len() != 2 * n {
        return Err(Error::parse(
            "CKM_ECDSA signature",
            format!("{} bytes, expected {} for {curve:?}", raw.len(), 2 * n),
        ));
    }
    Ok(sequence(&[&unsigned_integer(&raw[..n]), &unsigned_integer(&raw[n..])]))
}

/// The uncompressed point from `CKA_EC_POINT`: DER OCTET STRING wrapped (as the standard says
/// and SoftHSM does) or raw (as some tokens do).
pub fn ec_point_from_attribute(curve: Curve, v: &[u8]) -> Result<Vec<u8>> {
    let point_len = 1 + 2 * curve_len(curve);
    if v.len() == point_len && v[0] == 0x04 {
        return Ok(v.to_vec());
    }
    if v.len() == point_len + 2 && v[0] == 0x04 && usize::from(v[1]) == point_len && v[2] == 0x04 {
        return Ok(v[2..].to_vec());
    }
    Err(Error::parse(
        "CKA_EC_POINT",
        format!(
            "{} bytes; expected an uncompressed {curve:?} point ({point_len} bytes), optionally in an OCTET STRING",
            v.len()
        ),
    ))
}

pub fn ec_spki(curve: Curve, point: &[u8]) -> Result<Vec<u8>> {
    let alg = sequence(&[EC_PUBLIC_KEY_OID, curve_params(curve)?]);
    Ok(sequence(&[&alg, &bit_string(point)]))
}

/// The PKCS#1 `RSAPublicKey` (what rcgen calls the key's DER bytes).
pub fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    sequence(&[&unsigned_integer(modulus), &unsigned_integer(exponent)])
}

pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let alg = sequence(&[RSA_ENCRYPTION_OID, &[0x05, 0x00]]);
    sequence(&[&alg, &bit_string(&rsa_public_key(modulus, exponent))])
}

/// The subjectPublicKey bytes (the BIT STRING content) of a SubjectPublicKeyInfo.
pub fn spki_public_key_bytes(spki: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, info) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).map_err(|e| Error::parse("public key", e))?;
    Ok(info.subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_signatures() {
        assert_eq!(unsigned_integer(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(unsigned_integer(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), vec![2, 1, 0]);
        let mut raw = vec![0u8; 64];
        raw[31] = 5;
        raw[32] = 0xff;
        let der = ecdsa_raw_to_der(Curve::P256, &raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 3 + 35, 0x02, 0x01, 0x05]);
        assert_eq!(&der[5..8], &[0x02, 33, 0x00]);
        assert!(ecdsa_raw_to_der(Curve::P384, &raw).is_err());
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn ec_points() {
        let mut p = vec![4u8; 65];
        p[1] = 63;
        assert_eq!(ec_point_from_attribute(Curve::P256, &p).unwrap(), p);
        let wrapped = tlv(0x04, &p);
        assert_eq!(ec_point_from_attribute(Curve::P256, &wrapped).unwrap(), p);
        assert!(ec_point_from_attribute(Curve::P384, &wrapped).is_err());
        let spki = ec_spki(Curve::P256, &p).unwrap();
        assert_eq!(spki_public_key_bytes(&spki).unwrap(), p);
        assert_eq!(curve_from_params(P384_PARAMS).unwrap(), Curve::P384);
    }
}
