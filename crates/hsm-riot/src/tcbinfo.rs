//! The TCG `DiceTcbInfo` certificate extension (OID 2.23.133.5.4.1, TCG DICE Attestation
//! Architecture), DER-encoded with RustCrypto's `der`.
//!
//! ```text
//! DiceTcbInfo ::= SEQUENCE {
//!     vendor     [0] IMPLICIT UTF8String OPTIONAL,
//!     model      [1] IMPLICIT UTF8String OPTIONAL,
//!     version    [2] IMPLICIT UTF8String OPTIONAL,
//!     svn        [3] IMPLICIT INTEGER OPTIONAL,
//!     layer      [4] IMPLICIT INTEGER OPTIONAL,
//!     index      [5] IMPLICIT INTEGER OPTIONAL,
//!     fwids      [6] IMPLICIT FWIDLIST OPTIONAL,
//!     flags      [7] IMPLICIT OperationalFlags OPTIONAL,
//!     vendorInfo [8] IMPLICIT OCTET STRING OPTIONAL,
//!     type       [9] IMPLICIT OCTET STRING OPTIONAL,
//!     ... }
//! FWIDLIST ::= SEQUENCE SIZE (1..MAX) OF FWID
//! FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }
//! ```
//!
//! The Alias certificate carries `vendor`, `model`, `layer` (1) and one FWID: SHA-256
//! (2.16.840.1.101.3.4.2.1) of the firmware image.

use der::asn1::{Any, ContextSpecific, ContextSpecificRef, ObjectIdentifier, OctetString, Utf8StringRef};
use der::{Decode as _, Encode as _, Reader as _, SliceReader, TagMode, TagNumber};
use hsm_core::{Error, Result};

/// OID of the DiceTcbInfo extension: 2.23.133.5.4.1.
pub const TCB_INFO_OID: &[u64] = &[2, 23, 133, 5, 4, 1];
/// [`TCB_INFO_OID`] as der's OID.
pub(crate) const TCB_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.4.1");

/// `FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }`.
#[derive(der::Sequence)]
struct Fwid {
    hash_alg: ObjectIdentifier,
    digest: OctetString,
}

fn oid_of(arcs: &[u64]) -> Result<ObjectIdentifier> {
    let arcs = arcs
        .iter()
        .map(|a| u32::try_from(*a))
        .collect::<std::result::Result<Vec<u32>, _>>()
        .map_err(|_| Error::invalid("FWID hash algorithm", "an OID arc over 2^32"))?;
    ObjectIdentifier::from_arcs(arcs).map_err(|e| Error::invalid("FWID hash algorithm", e.to_string()))
}
/// OID of SHA-256: 2.16.840.1.101.3.4.2.1.
pub const SHA256_OID: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];

/// One firmware id: a hash algorithm and a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwidEntry {
    /// OID arcs of the hash algorithm.
    pub hash_alg: Vec<u64>,
    /// The digest.
    pub digest: Vec<u8>,
}

/// The fields of a DiceTcbInfo this crate writes and reads (unknown trailing fields are
/// skipped when reading).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcbInfo {
    /// `vendor` \[0\]: who made the layer's firmware.
    pub vendor: Option<String>,
    /// `model` \[1\]: the product.
    pub model: Option<String>,
    /// `version` \[2\]: the firmware version.
    pub version: Option<String>,
    /// `svn` \[3\]: the security version number.
    pub svn: Option<u64>,
    /// `layer` \[4\]: the DICE layer this describes.
    pub layer: Option<u64>,
    /// `index` \[5\]: which component of that layer.
    pub index: Option<u64>,
    /// `fwids` \[6\]: the firmware measurements.
    pub fwids: Vec<FwidEntry>,
}

impl TcbInfo {
    /// The TcbInfo of this engine's Alias layer for a SHA-256 firmware measurement.
    pub(crate) fn for_alias_layer(fwid: &[u8; 32]) -> Self {
        TcbInfo {
            vendor: Some("hsm-riot".into()),
            model: Some("software DICE engine".into()),
            version: None,
            svn: None,
            layer: Some(1),
            index: None,
            fwids: vec![FwidEntry {
                hash_alg: SHA256_OID.to_vec(),
                digest: fwid.to_vec(),
            }],
        }
    }

    /// The SHA-256 firmware id, if there is one.
    pub fn sha256_fwid(&self) -> Option<&[u8]> {
        self.fwids
            .iter()
            .find(|f| f.hash_alg == SHA256_OID)
            .map(|f| f.digest.as_slice())
    }

    /// DER encoding (the extension's `extnValue` contents).
    pub(crate) fn to_der(&self) -> Result<Vec<u8>> {
        let bad = |e: der::Error| Error::Internal(format!("the DiceTcbInfo does not encode: {e}"));
        fn implicit<T: der::EncodeValue + der::Tagged>(n: u8, value: &T) -> der::Result<Vec<u8>> {
            ContextSpecificRef {
                tag_number: TagNumber::new(n),
                tag_mode: TagMode::Implicit,
                value,
            }
            .to_der()
        }
        let mut fields = Vec::new();
        for (n, value) in [(0, &self.vendor), (1, &self.model), (2, &self.version)] {
            if let Some(v) = value {
                fields.extend(implicit(n, &Utf8StringRef::new(v).map_err(bad)?).map_err(bad)?);
            }
        }
        for (n, value) in [(3, self.svn), (4, self.layer), (5, self.index)] {
            if let Some(v) = value {
                fields.extend(implicit(n, &v).map_err(bad)?);
            }
        }
        if !self.fwids.is_empty() {
            let fwids = self
                .fwids
                .iter()
                .map(|f| {
                    Ok(Fwid {
                        hash_alg: oid_of(&f.hash_alg)?,
                        digest: OctetString::new(f.digest.clone()).map_err(bad)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            fields.extend(implicit(6, &fwids).map_err(bad)?);
        }
        let mut out = der::Header::new(der::Tag::Sequence, der::Length::try_from(fields.len()).map_err(bad)?)
            .and_then(|h| h.to_der())
            .map_err(bad)?;
        out.extend(fields);
        Ok(out)
    }

    /// Parse a DER DiceTcbInfo.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        fn implicit<'a, T: der::DecodeValue<'a> + der::Tagged>(
            r: &mut impl der::Reader<'a>,
            n: u8,
        ) -> der::Result<Option<T>> {
            Ok(ContextSpecific::<T>::decode_implicit(r, TagNumber::new(n))?.map(|c| c.value))
        }
        let parse = || -> der::Result<Self> {
            let mut r = SliceReader::new(der)?;
            let info = r.sequence(|r| {
                let mut text = |n| -> der::Result<Option<String>> {
                    Ok(implicit::<Utf8StringRef<'_>>(r, n)?.map(|s| s.as_str().to_string()))
                };
                let vendor = text(0)?;
                let model = text(1)?;
                let version = text(2)?;
                let svn = implicit::<u64>(r, 3)?;
                let layer = implicit::<u64>(r, 4)?;
                let index = implicit::<u64>(r, 5)?;
                let fwids = implicit::<Vec<Fwid>>(r, 6)?
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| FwidEntry {
                        hash_alg: f.hash_alg.arcs().map(u64::from).collect(),
                        digest: f.digest.into_bytes(),
                    })
                    .collect();
                // flags, vendorInfo, type and later extensions: present or not, skipped.
                while !r.is_finished() {
                    Any::decode(r)?;
                }
                Ok(TcbInfo {
                    vendor,
                    model,
                    version,
                    svn,
                    layer,
                    index,
                    fwids,
                })
            })?;
            r.finish(info)
        };
        parse().map_err(|e| Error::parse("DiceTcbInfo extension", format!("invalid DER: {e}")))
    }

    /// The DiceTcbInfo extension of a DER certificate, parsed; `Ok(None)` when it has none.
    pub fn from_certificate(cert_der: &[u8]) -> Result<Option<Self>> {
        let cert = hsm_core::x509::parse("certificate", cert_der)?;
        hsm_core::x509::extension("certificate", &cert, &TCB_INFO)?
            .map(Self::from_der)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let info = TcbInfo::for_alias_layer(&[0xab; 32]);
        let der = info.to_der().unwrap();
        assert_eq!(TcbInfo::from_der(&der).unwrap(), info);
        assert_eq!(TcbInfo::from_der(&der).unwrap().sha256_fwid(), Some(&[0xab; 32][..]));
    }

    #[test]
    fn known_encoding() {
        let info = TcbInfo {
            layer: Some(1),
            fwids: vec![FwidEntry {
                hash_alg: SHA256_OID.to_vec(),
                digest: vec![0x11; 32],
            }],
            ..TcbInfo::default()
        };
        let mut expected = vec![
            0x30, 0x34, // SEQUENCE
            0x84, 0x01, 0x01, // [4] layer 1
            0xa6, 0x2f, // [6] constructed: FWIDLIST
            0x30, 0x2d, // FWID
            0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, // sha256
            0x04, 0x20, // OCTET STRING (32)
        ];
        expected.extend_from_slice(&[0x11; 32]);
        assert_eq!(info.to_der().unwrap(), expected);
    }

    #[test]
    fn skips_unknown_trailing_fields_and_rejects_garbage() {
        let mut der = TcbInfo::for_alias_layer(&[1; 32]).to_der().unwrap();
        // Append vendorInfo [8] (primitive, 2 bytes) and fix the outer length (short form).
        der.extend_from_slice(&[0x88, 0x02, 0xaa, 0xbb]);
        der[1] += 4;
        let parsed = TcbInfo::from_der(&der).unwrap();
        assert_eq!(parsed.sha256_fwid(), Some(&[1; 32][..]));
        let e = TcbInfo::from_der(&[0x30, 0x03, 0x84]).unwrap_err().to_string();
        assert!(e.contains("DiceTcbInfo"), "{e}");
    }
}
