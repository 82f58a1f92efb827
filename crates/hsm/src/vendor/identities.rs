//! The identities of a vendor table: x509, symmetric key and TPM, each over a
//! [`RawVendorIdentity`].

use std::sync::Arc;

use hsm_core::config::Section;
use hsm_core::{Result, SasSigner, SigningKey, SymmetricIdentity, TpmIdentity, X509Identity};
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use super::key::{VendorKey, certificate_chain, mismatch};
use super::table::{BytesField, RawVendorIdentity, Source, key_token, open_raw, open_section, source_of};

// ---- identities ----

/// An x509 identity of a vendor backend.
pub struct VendorX509 {
    raw: Arc<dyn RawVendorIdentity>,
    key: Arc<VendorKey>,
    token: String,
}

impl VendorX509 {
    /// Open from a `backend = "vendor"` section.
    pub fn from_section(section: &Section) -> Result<Self> {
        let (source, identity) = source_of(section)?;
        let raw = open_section(section)?;
        Self::from_raw(raw, key_token(&source, &identity)?)
    }

    /// Open `identity` from `source`.
    pub fn open(source: &Source, identity: &str) -> Result<Self> {
        Self::from_raw(open_raw(source, identity)?, key_token(source, identity)?)
    }

    /// The identity of an opened `raw`, whose key `token` names.
    pub fn from_raw(raw: Arc<dyn RawVendorIdentity>, token: String) -> Result<Self> {
        let key = Arc::new(VendorKey::new(raw.clone())?);
        Ok(VendorX509 { raw, key, token })
    }
}

impl X509Identity for VendorX509 {
    fn certificate_chain(&self) -> Result<Vec<CertificateDer<'static>>> {
        certificate_chain(self.raw.as_ref())
    }

    fn common_name(&self) -> Result<String> {
        self.raw.text(BytesField::CommonName)
    }

    fn signing_key(&self) -> Result<Arc<dyn SigningKey>> {
        Ok(self.key.clone())
    }

    fn key_reference(&self) -> Result<Zeroizing<String>> {
        Ok(Zeroizing::new(self.token.clone()))
    }
}

/// A symmetric-key identity of a vendor backend.
pub(crate) struct VendorSymmetric {
    raw: Arc<dyn RawVendorIdentity>,
}

impl VendorSymmetric {
    pub(crate) fn from_section(section: &Section) -> Result<Self> {
        let raw = open_section(section)?;
        if !raw.capabilities().symmetric {
            return Err(section.error(
                "backend",
                format!(
                    "vendor backend \"{}\" has no symmetric-key operations (get_registration_id and hmac_sha256 are NULL)",
                    raw.backend()
                ),
            ));
        }
        Ok(VendorSymmetric { raw })
    }
}

impl SymmetricIdentity for VendorSymmetric {
    fn registration_id(&self) -> Result<String> {
        self.raw.text(BytesField::RegistrationId)
    }

    fn symmetric_key(&self) -> Result<Zeroizing<Vec<u8>>> {
        let key = Zeroizing::new(self.raw.bytes(BytesField::SymmetricKey)?);
        if key.is_empty() {
            return Err(mismatch(self.raw.backend(), "get_symmetric_key returned an empty key"));
        }
        Ok(key)
    }

    fn hmac_sha256(&self, data: &[u8]) -> Result<[u8; 32]> {
        self.raw.hmac_sha256(data)
    }
}

/// A TPM-shaped identity of a vendor backend.
pub(crate) struct VendorTpm {
    raw: Arc<dyn RawVendorIdentity>,
}

impl VendorTpm {
    pub(crate) fn from_section(section: &Section) -> Result<Self> {
        let raw = open_section(section)?;
        if !raw.capabilities().tpm {
            return Err(section.error(
                "backend",
                format!(
                    "vendor backend \"{}\" has no TPM operations (get_endorsement_key... are NULL)",
                    raw.backend()
                ),
            ));
        }
        Ok(VendorTpm { raw })
    }

    fn tpm2b(&self, field: BytesField) -> Result<Vec<u8>> {
        let b = self.raw.bytes(field)?;
        let declared = b.get(..2).map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])));
        if declared != Some(b.len().saturating_sub(2)) || b.len() <= 2 {
            return Err(mismatch(
                self.raw.backend(),
                &format!(
                    "{} did not return a TPM2B (2-byte big-endian size, then that many bytes)",
                    field.name()
                ),
            ));
        }
        Ok(b)
    }
}

impl SasSigner for VendorTpm {
    fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.raw.sign_with_identity(data)
    }
}

impl TpmIdentity for VendorTpm {
    fn endorsement_key(&self) -> Result<Vec<u8>> {
        self.tpm2b(BytesField::EndorsementKey)
    }

    fn storage_root_key(&self) -> Result<Vec<u8>> {
        self.tpm2b(BytesField::StorageRootKey)
    }

    fn activate_identity_key(&self, blob: &[u8]) -> Result<()> {
        self.raw.activate(blob)
    }
}
