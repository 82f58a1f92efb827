//! X.509 certificates and PKCS#10 requests on RustCrypto's `der` and `x509-cert`, the one DER
//! stack of the C library: reading what the backends, the DICE engine and the issued store need
//! of a certificate (names, public key, basic constraints, extensions, validity), and the pieces
//! every certificate and request this project writes is made of (UTF8String names, UTCTime or
//! GeneralizedTime, extensions, SHA-256 key identifiers, a TBS signed by any [`SigningKey`](crate::SigningKey)).

use ::der::asn1::{Any, BitString, GeneralizedTime, ObjectIdentifier, OctetString, UtcTime};
use ::der::{Decode as _, Encode, Reader as _, SliceReader, Tag, Tagged as _};
use sha2::{Digest as _, Sha256};
use spki::AlgorithmIdentifierOwned;
pub use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::Extension;
pub use x509_cert::name::Name;
use x509_cert::name::RelativeDistinguishedName;
use x509_cert::time::Time;

use crate::{Curve, Error, KeyAlgorithm, Result, SignatureScheme};

/// Object identifiers this project reads and writes.
pub mod oid {
    use ::der::asn1::ObjectIdentifier as Oid;

    /// commonName (2.5.4.3).
    pub const COMMON_NAME: Oid = Oid::new_unwrap("2.5.4.3");
    /// organizationName (2.5.4.10).
    pub const ORGANIZATION: Oid = Oid::new_unwrap("2.5.4.10");
    /// organizationalUnitName (2.5.4.11).
    pub const ORGANIZATIONAL_UNIT: Oid = Oid::new_unwrap("2.5.4.11");
    /// id-ecPublicKey (RFC 5480).
    pub(crate) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    /// rsaEncryption (RFC 8017).
    pub(crate) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    /// secp256r1.
    pub const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    /// secp384r1.
    pub const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
    /// ecdsa-with-SHA256 (RFC 5758).
    pub const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    /// ecdsa-with-SHA384.
    pub const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    /// sha256WithRSAEncryption (RFC 4055).
    pub const RSA_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    /// sha384WithRSAEncryption.
    pub const RSA_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
    /// sha512WithRSAEncryption.
    pub const RSA_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
    /// subjectKeyIdentifier.
    pub const SUBJECT_KEY_IDENTIFIER: Oid = Oid::new_unwrap("2.5.29.14");
    /// keyUsage.
    pub const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
    /// basicConstraints.
    pub const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
    /// authorityKeyIdentifier.
    pub const AUTHORITY_KEY_IDENTIFIER: Oid = Oid::new_unwrap("2.5.29.35");
    /// extKeyUsage.
    pub const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
    /// id-kp-clientAuth.
    pub const CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
}

/// Short names of the attributes [`name_to_string`] prints (others print as a dotted OID).
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.5", "serialNumber"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "Email"),
];

/// A DER certificate, parsed (nothing may follow it); `what` names it in errors.
pub fn parse(what: &str, der: &[u8]) -> Result<Certificate> {
    Certificate::from_der(der).map_err(|e| Error::parse(what, format!("not a valid X.509 certificate: {e}")))
}

/// The text of a directory string (UTF8String, PrintableString, IA5String); `None` for the
/// string types nobody issues today (BMPString, TeletexString, UniversalString).
fn attribute_text(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            std::str::from_utf8(value.value()).ok().map(str::to_string)
        }
        _ => None,
    }
}

/// The first common name of `name`; an error when there is none or it is not a string.
pub fn common_name(name: &Name) -> Result<String> {
    let value = name
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|a| a.oid == oid::COMMON_NAME)
        .ok_or_else(|| {
            Error::parse(
                "certificate",
                format!("subject `{}` has no common name", name_to_string(name)),
            )
        })?;
    attribute_text(&value.value).ok_or_else(|| {
        Error::parse(
            "certificate common name",
            "not a UTF8String, PrintableString or IA5String",
        )
    })
}

/// `CN=device, O=maker`: the attributes in their order, `+` between those of one RDN; an
/// attribute without a short name prints as its dotted OID, a value that is not a string as
/// `#` and its DER in hex.
pub fn name_to_string(name: &Name) -> String {
    let attribute = |a: &AttributeTypeAndValue| {
        let id = a.oid.to_string();
        let key = SHORT_NAMES
            .iter()
            .find(|(o, _)| *o == id)
            .map_or(id.clone(), |(_, s)| (*s).to_string());
        let value = attribute_text(&a.value).unwrap_or_else(|| {
            let der = a.value.to_der().unwrap_or_default();
            format!("#{}", crate::hex::encode(&der))
        });
        format!("{key}={value}")
    };
    name.0
        .iter()
        .map(|rdn| rdn.0.iter().map(attribute).collect::<Vec<_>>().join(" + "))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn spki_der(cert: &Certificate) -> Result<Vec<u8>> {
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| Error::Internal(format!("a parsed SubjectPublicKeyInfo does not encode: {e}")))
}

/// The value (`extnValue` contents) of the one extension `id` of a certificate; `Ok(None)` when
/// it has none, an error when it has it twice.
pub fn extension<'a>(what: &str, cert: &'a Certificate, id: &ObjectIdentifier) -> Result<Option<&'a [u8]>> {
    let mut found = cert
        .tbs_certificate
        .extensions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|e| e.extn_id == *id);
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some(e), None) => Ok(Some(e.extn_value.as_bytes())),
        (Some(_), Some(_)) => Err(Error::parse(what, format!("extension {id} appears twice"))),
    }
}

/// basicConstraints of a certificate: `None` without the extension, else whether it is a CA and
/// its path length constraint.
pub fn basic_constraints(what: &str, cert: &Certificate) -> Result<Option<(bool, Option<u8>)>> {
    use x509_cert::ext::pkix::BasicConstraints;
    extension(what, cert, &oid::BASIC_CONSTRAINTS)?
        .map(|v| {
            BasicConstraints::from_der(v)
                .map(|b| (b.ca, b.path_len_constraint))
                .map_err(|e| Error::parse(what, format!("basicConstraints: {e}")))
        })
        .transpose()
}

/// Seconds since the epoch of a certificate time.
pub fn unix_time(t: &Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// The DER of a certificate's TBSCertificate as it is in the certificate (what its signature
/// covers, whatever a re-encoding would give), its signature algorithm and signature bits.
pub fn signed_parts<'a>(what: &str, der: &'a [u8]) -> Result<(&'a [u8], AlgorithmIdentifierOwned, Vec<u8>)> {
    let bad = |e: ::der::Error| Error::parse(what, format!("not a valid X.509 certificate: {e}"));
    let mut r = SliceReader::new(der).map_err(bad)?;
    let parts = r
        .sequence(|r| {
            let tbs = r.tlv_bytes()?;
            let alg = AlgorithmIdentifierOwned::decode(r)?;
            let sig = BitString::decode(r)?;
            Ok((tbs, alg, sig))
        })
        .map_err(bad)?;
    r.finish(()).map_err(bad)?;
    let (tbs, alg, sig) = parts;
    let bits = sig
        .as_bytes()
        .ok_or_else(|| Error::parse(what, "the signature is not a whole number of bytes"))?;
    Ok((tbs, alg, bits.to_vec()))
}

/// A name of UTF8String attributes, one per RDN, in this order.
pub fn utf8_name(attributes: &[(ObjectIdentifier, &str)]) -> Result<Name> {
    let rdns = attributes
        .iter()
        .map(|(id, value)| {
            let value =
                Any::new(Tag::Utf8String, value.as_bytes()).map_err(|e| Error::invalid("name", e.to_string()))?;
            let set = ::der::asn1::SetOfVec::try_from(vec![AttributeTypeAndValue { oid: *id, value }])
                .map_err(|e| Error::invalid("name", e.to_string()))?;
            Ok(RelativeDistinguishedName(set))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(x509_cert::name::RdnSequence(rdns))
}

/// A certificate time (seconds since the epoch): UTCTime from 1950 to 2049, GeneralizedTime
/// otherwise (RFC 5280 4.1.2.5).
pub fn time(unix_seconds: i64) -> Result<Time> {
    let bad = |e: ::der::Error| Error::invalid("certificate validity", e.to_string());
    let secs = u64::try_from(unix_seconds).map_err(|_| Error::invalid("certificate validity", "before 1970"))?;
    let dt = ::der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs)).map_err(bad)?;
    Ok(if dt.year() < 2050 {
        Time::UtcTime(UtcTime::from_date_time(dt).map_err(bad)?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_date_time(dt))
    })
}

/// An extension whose value is the DER of `value`; non-critical ones leave `critical` out.
pub fn make_extension(id: ObjectIdentifier, critical: bool, value: &impl Encode) -> Result<Extension> {
    let der = value
        .to_der()
        .map_err(|e| Error::Internal(format!("extension {id} does not encode: {e}")))?;
    Ok(Extension {
        extn_id: id,
        critical,
        extn_value: OctetString::new(der).map_err(|e| Error::Internal(format!("extension {id}: {e}")))?,
    })
}

/// The key identifier of a SubjectPublicKeyInfo: the first 20 bytes of its SHA-256 (RFC 7093,
/// section 2, method 1 applied to the whole SPKI).
pub fn key_identifier(spki: &[u8]) -> Vec<u8> {
    Sha256::digest(spki)[..20].to_vec()
}

/// The signature scheme and AlgorithmIdentifier this project signs certificates and requests
/// with for a key: ECDSA with SHA-256 or SHA-384 for P-256 or P-384, RSA PKCS#1 v1.5 with SHA-256.
pub fn signature_algorithm(key: KeyAlgorithm) -> (SignatureScheme, AlgorithmIdentifierOwned) {
    let (scheme, oid, parameters) = match key {
        KeyAlgorithm::Ec(Curve::P256) => (SignatureScheme::EcdsaP256Sha256, oid::ECDSA_SHA256, None),
        KeyAlgorithm::Ec(Curve::P384) => (SignatureScheme::EcdsaP384Sha384, oid::ECDSA_SHA384, None),
        KeyAlgorithm::Rsa { .. } => (SignatureScheme::RsaPkcs1Sha256, oid::RSA_SHA256, Some(Any::null())),
    };
    (scheme, AlgorithmIdentifierOwned { oid, parameters })
}

/// The SubjectPublicKeyInfo this project writes for a key of `key_algorithm` whose public key the
/// backend encoded as `spki`: the algorithm (with the named curve, or NULL parameters for RSA) and
/// the public key bits, whatever parameters the backend's own encoding had.
pub fn subject_public_key_info(key_algorithm: KeyAlgorithm, spki: &[u8]) -> Result<spki::SubjectPublicKeyInfoOwned> {
    let bits = crate::der::spki_public_key_bits(spki)?;
    let algorithm = match key_algorithm {
        KeyAlgorithm::Ec(curve) => AlgorithmIdentifierOwned {
            oid: oid::EC_PUBLIC_KEY,
            parameters: Some(Any::from(match curve {
                Curve::P256 => oid::P256,
                Curve::P384 => oid::P384,
            })),
        },
        KeyAlgorithm::Rsa { .. } => AlgorithmIdentifierOwned {
            oid: oid::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
    };
    Ok(spki::SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: BitString::from_bytes(&bits).map_err(|e| Error::Internal(e.to_string()))?,
    })
}

/// `SEQUENCE { tbs, algorithm, BIT STRING signature }`: a certificate or a request, with the
/// signature `sign` makes over the DER of `tbs`.
pub fn sign(
    tbs: &impl Encode,
    algorithm: &AlgorithmIdentifierOwned,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let internal = |e: ::der::Error| Error::Internal(format!("a certificate part does not encode: {e}"));
    let tbs = tbs.to_der().map_err(internal)?;
    let signature = BitString::from_bytes(&sign(&tbs)?).map_err(internal)?;
    let alg = algorithm.to_der().map_err(internal)?;
    let sig = signature.to_der().map_err(internal)?;
    let len = ::der::Length::try_from(tbs.len() + alg.len() + sig.len()).map_err(internal)?;
    let mut out = ::der::Header::new(Tag::Sequence, len)
        .and_then(|h| h.to_der())
        .map_err(internal)?;
    out.extend_from_slice(&tbs);
    out.extend_from_slice(&alg);
    out.extend_from_slice(&sig);
    Ok(out)
}
