//! The activation blob DPS sends as `authenticationKey` (base64-decoded).
//!
//! Big-endian, each part a TPM2B (u16 size + bytes): TPM2B_ID_OBJECT (credential blob) |
//! TPM2B_ENCRYPTED_SECRET (to the EK) | TPM2B_PRIVATE (the duplicated HMAC key) |
//! TPM2B_ENCRYPTED_SECRET (seed, to the SRK) | TPM2B_PUBLIC (the HMAC key) | u16 size + data.
//! Every size is checked against what follows and against the TPM structure's capacity;
//! truncated, oversized and trailing input are errors.

use hsm_core::{Error, Result};
#[cfg(feature = "device")]
use tss_esapi::structures::{EncryptedSecret, IdObject, Private, Public};

/// A parsed activation blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationBlob {
    /// TPM2B_ID_OBJECT contents: the credential blob (integrity HMAC + encrypted credential).
    pub credential_blob: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET contents: the credential seed, encrypted to the EK.
    pub credential_secret: Vec<u8>,
    /// TPM2B_PRIVATE contents: the duplicated identity key.
    pub duplicate: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET contents: the duplication seed, encrypted to the SRK.
    pub import_secret: Vec<u8>,
    /// TPMT_PUBLIC of the identity key (the TPM2B's contents).
    pub public: Vec<u8>,
    /// Trailing encrypted data (DPS sends none; it is not used).
    pub encrypted_data: Vec<u8>,
}

// Capacities of the TPM2B structures in tpm2-tss 3.2 (TPM2B_ID_OBJECT = sizeof(TPMS_ID_OBJECT),
// TPM2B_ENCRYPTED_SECRET = sizeof(TPMU_ENCRYPTED_SECRET), TPM2B_PRIVATE = sizeof(_PRIVATE),
// TPM2B_PUBLIC = sizeof(TPMT_PUBLIC), TPM2B_MAX_BUFFER = 1024).
const MAX_ID_OBJECT: usize = 2 + 64 + 2 + 64;
const MAX_ENCRYPTED_SECRET: usize = 512;
const MAX_PRIVATE: usize = 2 + 64 + 2 + 64 + 2 + 1024;
const MAX_PUBLIC: usize = 612;
const MAX_DATA: usize = 1024;

struct Reader<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn tpm2b(&mut self, what: &str, max: usize) -> Result<&'a [u8]> {
        let what_ = format!("activation blob: {what} at offset {}", self.offset);
        let (size, rest) = self
            .rest
            .split_first_chunk::<2>()
            .ok_or_else(|| Error::parse(&what_, "truncated: the 2-byte size is missing"))?;
        let size = usize::from(u16::from_be_bytes(*size));
        if size > max {
            return Err(Error::parse(&what_, format!("size {size} exceeds the maximum {max}")));
        }
        if rest.len() < size {
            return Err(Error::parse(
                &what_,
                format!("truncated: size {size} but only {} bytes left", rest.len()),
            ));
        }
        let (value, rest) = rest.split_at(size);
        self.rest = rest;
        self.offset += 2 + size;
        Ok(value)
    }
}

impl ActivationBlob {
    /// Parse the decoded blob strictly.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { rest: bytes, offset: 0 };
        let credential_blob = r.tpm2b("TPM2B_ID_OBJECT", MAX_ID_OBJECT)?.to_vec();
        let credential_secret = r
            .tpm2b("TPM2B_ENCRYPTED_SECRET (credential)", MAX_ENCRYPTED_SECRET)?
            .to_vec();
        let duplicate = r.tpm2b("TPM2B_PRIVATE", MAX_PRIVATE)?.to_vec();
        let import_secret = r
            .tpm2b("TPM2B_ENCRYPTED_SECRET (import seed)", MAX_ENCRYPTED_SECRET)?
            .to_vec();
        let public = r.tpm2b("TPM2B_PUBLIC", MAX_PUBLIC)?.to_vec();
        let encrypted_data = r.tpm2b("encrypted data", MAX_DATA)?.to_vec();
        if !r.rest.is_empty() {
            return Err(Error::parse(
                "activation blob",
                format!("{} trailing bytes after offset {}", r.rest.len(), r.offset),
            ));
        }
        for (what, v) in [
            ("TPM2B_ID_OBJECT", &credential_blob),
            ("TPM2B_ENCRYPTED_SECRET (credential)", &credential_secret),
            ("TPM2B_PRIVATE", &duplicate),
            ("TPM2B_ENCRYPTED_SECRET (import seed)", &import_secret),
            ("TPM2B_PUBLIC", &public),
        ] {
            if v.is_empty() {
                return Err(Error::parse(format!("activation blob: {what}"), "empty"));
            }
        }
        Ok(ActivationBlob {
            credential_blob,
            credential_secret,
            duplicate,
            import_secret,
            public,
            encrypted_data,
        })
    }

    /// Serialize (the service side, and tests).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [
            &self.credential_blob,
            &self.credential_secret,
            &self.duplicate,
            &self.import_secret,
            &self.public,
            &self.encrypted_data,
        ] {
            out.extend_from_slice(&(part.len() as u16).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    #[cfg(feature = "device")]
    /// The identity key's public area, checked to be an HMAC-SHA256 signing key.
    pub(crate) fn identity_public(&self) -> Result<Public> {
        use tss_esapi::traits::UnMarshall;
        let what = "activation blob: TPM2B_PUBLIC";
        let public =
            Public::unmarshall(&self.public).map_err(|e| Error::parse(what, format!("not a TPMT_PUBLIC: {e}")))?;
        let marshalled = tss_esapi::traits::Marshall::marshall(&public)
            .map_err(|e| Error::parse(what, format!("cannot re-marshal: {e}")))?;
        if marshalled != self.public {
            return Err(Error::parse(what, "trailing bytes inside the TPMT_PUBLIC"));
        }
        match &public {
            Public::KeyedHash {
                object_attributes,
                parameters,
                ..
            } => {
                if !object_attributes.sign_encrypt() || object_attributes.decrypt() {
                    return Err(Error::parse(what, "the identity key is not an HMAC signing key"));
                }
                let expected = tss_esapi::structures::PublicKeyedHashParameters::new(
                    tss_esapi::structures::KeyedHashScheme::HMAC_SHA_256,
                );
                if *parameters != expected {
                    return Err(Error::parse(what, "the identity key's scheme is not HMAC-SHA256"));
                }
            }
            _ => return Err(Error::parse(what, "the identity key is not a keyed-hash (HMAC) key")),
        }
        Ok(public)
    }

    #[cfg(feature = "device")]
    pub(crate) fn tpm_parts(&self) -> Result<(IdObject, EncryptedSecret, Private, EncryptedSecret)> {
        let e = |what: &'static str| move |err: tss_esapi::Error| Error::parse(format!("activation blob: {what}"), err);
        Ok((
            IdObject::try_from(self.credential_blob.clone()).map_err(e("TPM2B_ID_OBJECT"))?,
            EncryptedSecret::try_from(self.credential_secret.clone()).map_err(e("TPM2B_ENCRYPTED_SECRET"))?,
            Private::try_from(self.duplicate.clone()).map_err(e("TPM2B_PRIVATE"))?,
            EncryptedSecret::try_from(self.import_secret.clone()).map_err(e("TPM2B_ENCRYPTED_SECRET"))?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ActivationBlob {
        ActivationBlob {
            credential_blob: vec![1; 66],
            credential_secret: vec![2; 256],
            duplicate: vec![3; 100],
            import_secret: vec![4; 256],
            public: vec![5; 50],
            encrypted_data: vec![],
        }
    }

    #[test]
    fn round_trip_and_strictness() {
        let b = sample();
        let bytes = b.to_bytes();
        assert_eq!(ActivationBlob::parse(&bytes).unwrap(), b);
        for cut in 0..bytes.len() {
            assert!(
                ActivationBlob::parse(&bytes[..cut]).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        let e = ActivationBlob::parse(&long).unwrap_err().to_string();
        assert!(e.contains("trailing"), "{e}");
        let mut big = bytes.clone();
        big[0] = 0xff;
        let e = ActivationBlob::parse(&big).unwrap_err().to_string();
        assert!(e.contains("exceeds"), "{e}");
        let mut empty = sample();
        empty.duplicate.clear();
        assert!(ActivationBlob::parse(&empty.to_bytes()).is_err());
    }
}
