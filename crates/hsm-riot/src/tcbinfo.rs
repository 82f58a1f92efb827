//! The TCG `DiceTcbInfo` certificate extension (OID 2.23.133.5.4.1, TCG DICE Attestation
//! Architecture), DER-encoded with yasna.
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

use hsm_core::{Error, Result};
use yasna::Tag;
use yasna::models::ObjectIdentifier;

/// OID of the DiceTcbInfo extension: 2.23.133.5.4.1.
pub const TCB_INFO_OID: &[u64] = &[2, 23, 133, 5, 4, 1];
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
    pub(crate) fn to_der(&self) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                let strings = [(0, &self.vendor), (1, &self.model), (2, &self.version)];
                for (tag, value) in strings {
                    if let Some(v) = value {
                        w.next()
                            .write_tagged_implicit(Tag::context(tag), |w| w.write_utf8_string(v));
                    }
                }
                let ints = [(3, self.svn), (4, self.layer), (5, self.index)];
                for (tag, value) in ints {
                    if let Some(v) = value {
                        w.next().write_tagged_implicit(Tag::context(tag), |w| w.write_u64(v));
                    }
                }
                if !self.fwids.is_empty() {
                    w.next().write_tagged_implicit(Tag::context(6), |w| {
                        w.write_sequence_of(|w| {
                            for f in &self.fwids {
                                w.next().write_sequence(|w| {
                                    w.next().write_oid(&ObjectIdentifier::from_slice(&f.hash_alg));
                                    w.next().write_bytes(&f.digest);
                                });
                            }
                        })
                    });
                }
            })
        })
    }

    /// Parse a DER DiceTcbInfo.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        yasna::parse_der(der, |r| {
            r.read_sequence(|r| {
                let mut s = |tag: u64| -> yasna::ASN1Result<Option<String>> {
                    r.read_optional(|r| r.read_tagged_implicit(Tag::context(tag), |r| r.read_utf8string()))
                };
                let vendor = s(0)?;
                let model = s(1)?;
                let version = s(2)?;
                let mut int = |tag: u64| -> yasna::ASN1Result<Option<u64>> {
                    r.read_optional(|r| r.read_tagged_implicit(Tag::context(tag), |r| r.read_u64()))
                };
                let svn = int(3)?;
                let layer = int(4)?;
                let index = int(5)?;
                let fwids = r
                    .read_optional(|r| {
                        r.read_tagged_implicit(Tag::context(6), |r| {
                            r.collect_sequence_of(|r| {
                                r.read_sequence(|r| {
                                    let hash_alg = r.next().read_oid()?.components().clone();
                                    let digest = r.next().read_bytes()?;
                                    Ok(FwidEntry { hash_alg, digest })
                                })
                            })
                        })
                    })?
                    .unwrap_or_default();
                // flags, vendorInfo, type and later extensions: present or not, skipped.
                while r.read_optional(|r| r.read_der())?.is_some() {}
                Ok(TcbInfo {
                    vendor,
                    model,
                    version,
                    svn,
                    layer,
                    index,
                    fwids,
                })
            })
        })
        .map_err(|e| Error::parse("DiceTcbInfo extension", format!("invalid DER: {e}")))
    }

    /// The DiceTcbInfo extension of a DER certificate, parsed; `Ok(None)` when it has none.
    pub fn from_certificate(cert_der: &[u8]) -> Result<Option<Self>> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| Error::parse("certificate", e))?;
        let oid = x509_parser::oid_registry::Oid::from(TCB_INFO_OID)
            .map_err(|e| Error::Internal(format!("TcbInfo OID does not encode: {e:?}")))?;
        match cert.get_extension_unique(&oid) {
            Ok(Some(ext)) => Self::from_der(ext.value).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(Error::parse("certificate", format!("DiceTcbInfo extension: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let info = TcbInfo::for_alias_layer(&[0xab; 32]);
        let der = info.to_der();
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
        assert_eq!(info.to_der(), expected);
    }

    #[test]
    fn skips_unknown_trailing_fields_and_rejects_garbage() {
        let mut der = TcbInfo::for_alias_layer(&[1; 32]).to_der();
        // Append vendorInfo [8] (primitive, 2 bytes) and fix the outer length (short form).
        der.extend_from_slice(&[0x88, 0x02, 0xaa, 0xbb]);
        der[1] += 4;
        let parsed = TcbInfo::from_der(&der).unwrap();
        assert_eq!(parsed.sha256_fwid(), Some(&[1; 32][..]));
        let e = TcbInfo::from_der(&[0x30, 0x03, 0x84]).unwrap_err().to_string();
        assert!(e.contains("DiceTcbInfo"), "{e}");
    }
}
