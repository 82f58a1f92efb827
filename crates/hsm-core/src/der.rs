//! The DER structures the backends write and read around their keys, in one place: the
//! SubjectPublicKeyInfo of an EC point or an RSA modulus and exponent, ECDSA signatures from the
//! raw `r || s` that devices return, named-curve parameters (`CKA_EC_PARAMS`), PKCS#1 DigestInfo
//! prefixes, and the public key bits of a SubjectPublicKeyInfo, on RustCrypto's `der` (the one DER
//! stack of the C library, see [`crate::x509`]).

use ::der::asn1::{Any, BitString, UintRef};
use ::der::{Decode as _, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

use crate::{Curve, Error, Result};

/// DER of the named-curve OID of P-256 (`CKA_EC_PARAMS`, the SPKI algorithm parameters).
pub(crate) const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the named-curve OID of P-384.
pub(crate) const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// PKCS#1 v1.5 DigestInfo prefixes (RFC 8017 section 9.2, note 1): the DER of a DigestInfo up to
/// the digest itself.
pub const SHA256_DIGEST_INFO: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
];
/// See [`SHA256_DIGEST_INFO`].
pub const SHA384_DIGEST_INFO: &[u8] = &[
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30,
];
/// See [`SHA256_DIGEST_INFO`].
pub const SHA512_DIGEST_INFO: &[u8] = &[
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40,
];

/// The named-curve parameters of `curve`.
pub fn curve_params(curve: Curve) -> &'static [u8] {
    match curve {
        Curve::P256 => P256_PARAMS,
        Curve::P384 => P384_PARAMS,
    }
}

/// The curve of named-curve parameters (`what` names where they were read, in errors).
pub fn curve_from_params(what: &str, params: &[u8]) -> Result<Curve> {
    match params {
        P256_PARAMS => Ok(Curve::P256),
        P384_PARAMS => Ok(Curve::P384),
        _ => Err(Error::parse(
            what,
            "the key is not on a supported named curve (P-256, P-384)",
        )),
    }
}

/// Field size of `curve` in bytes (the length of `r`, `s` and of each point coordinate).
pub fn curve_len(curve: Curve) -> usize {
    match curve {
        Curve::P256 => 32,
        Curve::P384 => 48,
    }
}

/// An unsigned big-endian number (leading zeros allowed) as a DER INTEGER (the tests' view of `uint`).
#[cfg(test)]
fn unsigned_integer(v: &[u8]) -> Vec<u8> {
    encode(uint(v))
}

/// An unsigned big-endian number as der's INTEGER (leading zeros dropped, one added when the
/// high bit is set; no bytes at all is zero), `None` past der's length limit (256 MB).
fn uint(v: &[u8]) -> Option<UintRef<'_>> {
    UintRef::new(if v.is_empty() { &[0] } else { v }).ok()
}

/// The DER of a value built here from checked parts: its encoding fails only for a length past
/// der's limit (256 MB), which no key, signature or certificate part reaches; empty then.
fn encode(v: Option<impl Encode>) -> Vec<u8> {
    v.and_then(|v| v.to_der().ok()).unwrap_or_default()
}

/// An ECDSA signature as DER `Ecdsa-Sig-Value` from its `r` and `s` (unsigned big-endian).
pub fn ecdsa_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    encode(uint(r).zip(uint(s)).map(|(r, s)| [r, s]))
}

/// Raw `r || s` (what PKCS#11's CKM_ECDSA and most devices return) as a DER `Ecdsa-Sig-Value`;
/// `what` names the source in errors.
pub fn ecdsa_raw_to_der(what: &str, curve: Curve, raw: &[u8]) -> Result<Vec<u8>> {
    let n = curve_len(curve);
    if raw.len() != 2 * n {
        return Err(Error::parse(
            what,
            format!("{} bytes, expected {} for {curve:?}", raw.len(), 2 * n),
        ));
    }
    Ok(ecdsa_signature(&raw[..n], &raw[n..]))
}

/// The SubjectPublicKeyInfo of an uncompressed EC point (`04 || x || y`) on `curve`.
pub fn ec_spki(curve: Curve, point: &[u8]) -> Result<Vec<u8>> {
    let params = curve_params(curve);
    let expected = 1 + 2 * curve_len(curve);
    if point.len() != expected || point.first() != Some(&0x04) {
        return Err(Error::parse(
            "EC public key",
            format!(
                "{} bytes; expected an uncompressed {curve:?} point ({expected} bytes, 04 first)",
                point.len()
            ),
        ));
    }
    let parameters = Any::from_der(params).map_err(|e| Error::Internal(format!("curve parameters: {e}")))?;
    spki(crate::x509::oid::EC_PUBLIC_KEY, parameters, point)
}

fn spki(oid: ::der::asn1::ObjectIdentifier, parameters: Any, key: &[u8]) -> Result<Vec<u8>> {
    let info = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid,
            parameters: Some(parameters),
        },
        subject_public_key: BitString::from_bytes(key).map_err(|e| Error::Internal(format!("public key: {e}")))?,
    };
    info.to_der()
        .map_err(|e| Error::Internal(format!("a SubjectPublicKeyInfo does not encode: {e}")))
}

/// The PKCS#1 `RSAPublicKey` of a modulus and public exponent (unsigned big-endian).
pub fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    encode(uint(modulus).zip(uint(exponent)).map(|(m, e)| [m, e]))
}

/// The SubjectPublicKeyInfo of an RSA public key.
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let key = rsa_public_key(modulus, exponent);
    spki(crate::x509::oid::RSA_ENCRYPTION, Any::null(), &key).unwrap_or_default()
}

/// The subjectPublicKey bits (the BIT STRING content: an EC point, or a PKCS#1 RSAPublicKey) of a
/// DER SubjectPublicKeyInfo, which must be exactly one (nothing after it).
pub fn spki_public_key_bits(spki: &[u8]) -> Result<Vec<u8>> {
    // from_der refuses anything after the SubjectPublicKeyInfo.
    let info = SubjectPublicKeyInfoRef::from_der(spki)
        .map_err(|e| Error::parse("public key (a DER SubjectPublicKeyInfo)", e))?;
    let bits = info.subject_public_key.as_bytes().ok_or_else(|| {
        Error::parse(
            "public key (a DER SubjectPublicKeyInfo)",
            "the public key is not a whole number of bytes",
        )
    })?;
    Ok(bits.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_signatures() {
        assert_eq!(unsigned_integer(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(unsigned_integer(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), vec![2, 1, 0]);
        assert_eq!(unsigned_integer(&[]), vec![2, 1, 0]);
        assert_eq!(
            ecdsa_signature(&[0, 1], &[0x80]),
            vec![0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80]
        );
        let mut raw = vec![0u8; 64];
        raw[31] = 5;
        raw[32] = 0xff;
        let der = ecdsa_raw_to_der("CKM_ECDSA signature", Curve::P256, &raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 3 + 35, 0x02, 0x01, 0x05]);
        assert_eq!(&der[5..8], &[0x02, 33, 0x00]);
        let e = ecdsa_raw_to_der("CKM_ECDSA signature", Curve::P384, &raw)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CKM_ECDSA signature") && e.contains("expected 96"), "{e}");
        // The longest P-384 signature: both high bits set, each integer padded with a zero.
        let der = ecdsa_signature(&[0xff; 48], &[0xff; 48]);
        assert_eq!(&der[..5], &[0x30, 2 * 51, 0x02, 49, 0x00]);
        // Lengths over 127 bytes take the long form.
        assert_eq!(&unsigned_integer(&[0x7f; 200])[..4], &[0x02, 0x81, 200, 0x7f]);
    }

    #[test]
    fn curve_parameters() {
        assert_eq!(curve_from_params("p", P384_PARAMS).unwrap(), Curve::P384);
        assert_eq!(curve_from_params("p", curve_params(Curve::P256)).unwrap(), Curve::P256);
        let e = curve_from_params("CKA_EC_PARAMS", &[0x06, 0x01, 0x00])
            .unwrap_err()
            .to_string();
        assert!(e.contains("CKA_EC_PARAMS") && e.contains("P-256, P-384"), "{e}");
    }
}
