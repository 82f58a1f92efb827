//! The vendor table as seen from Rust (the C side is in `hsm-abi`): its fields, key
//! descriptions and the [`RawVendorIdentity`] trait, the installed loader, the `[...]` section
//! keys of a vendor backend and its alias-key tokens.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hsm_core::config::Section;
use hsm_core::{Error, Result};

// ---- the C side, as seen from here ----

/// The byte-producing fields of the vendor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BytesField {
    /// `get_certificate_chain`: PEM, leaf first.
    CertificateChain,
    /// `get_common_name`: the leaf's CN (UTF-8).
    CommonName,
    /// `get_public_key`: the key's SubjectPublicKeyInfo (DER).
    PublicKey,
    /// `get_endorsement_key`: the TPM endorsement key's public part.
    EndorsementKey,
    /// `get_storage_root_key`: the TPM storage root key's public part.
    StorageRootKey,
    /// `get_registration_id`: the symmetric key identity's registration id (UTF-8).
    RegistrationId,
    /// `get_symmetric_key`: the raw symmetric key (only tables that allow exporting it).
    SymmetricKey,
}

impl BytesField {
    /// Every field.
    pub const ALL: [BytesField; 7] = [
        BytesField::CertificateChain,
        BytesField::CommonName,
        BytesField::PublicKey,
        BytesField::EndorsementKey,
        BytesField::StorageRootKey,
        BytesField::RegistrationId,
        BytesField::SymmetricKey,
    ];

    /// The field's name in the C table.
    pub fn name(self) -> &'static str {
        match self {
            BytesField::CertificateChain => "get_certificate_chain",
            BytesField::CommonName => "get_common_name",
            BytesField::PublicKey => "get_public_key",
            BytesField::EndorsementKey => "get_endorsement_key",
            BytesField::StorageRootKey => "get_storage_root_key",
            BytesField::RegistrationId => "get_registration_id",
            BytesField::SymmetricKey => "get_symmetric_key",
        }
    }
}

/// Which optional parts a table implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `get_public_key` is set.
    pub public_key: bool,
    /// `error_string` is set (the vendor's codes explained in errors).
    pub error_string: bool,
    /// `get_endorsement_key` is set: the table does TPM attestation.
    pub tpm: bool,
    /// `hmac_sha256` is set: the table signs SAS tokens.
    pub symmetric: bool,
    /// `get_symmetric_key` is set: the raw key can be read.
    pub symmetric_key_export: bool,
}

/// A key description as the vendor gave it (`HSM_ABI_KEY_INFO`), not yet validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// EC or RSA (`HSM_ABI_KEY_INFO.algorithm`).
    pub family: KeyFamily,
    /// `HSM_ABI_KEY_INFO.algorithm` as the vendor gave it (named in errors).
    pub algorithm: u32,
    /// 256 or 384 for EC; the modulus size in bits for RSA.
    pub curve_or_bits: u32,
    /// TLS SignatureScheme code points, as many as the vendor said (`scheme_count`, unchecked).
    pub schemes: Vec<u32>,
    /// The largest signature the key makes, in bytes (the buffer given to `sign`).
    pub max_signature_len: u32,
}

/// `HSM_ABI_KEY_INFO.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// An EC key.
    Ec,
    /// An RSA key.
    Rsa,
    /// A code this library does not know.
    Other(u32),
}

/// Most schemes a key description may list (`HSM_ABI_MAX_SCHEMES`).
pub(crate) const MAX_SCHEMES: usize = 8;

/// An identity opened in a vendor table by the C layer (`hsm-abi`), whose every call is made
/// through checked buffers. This module adds the checks that need no C: key descriptions,
/// certificates, signatures verified independently.
pub trait RawVendorIdentity: Send + Sync {
    /// The table's name (for errors).
    fn backend(&self) -> &str;
    /// Which optional parts the table implements.
    fn capabilities(&self) -> Capabilities;
    /// Whether a bytes field is set in the table.
    fn has(&self, field: BytesField) -> bool;
    /// The key description (errors: the vendor's code).
    fn key_info(&self) -> Result<KeyInfo>;
    /// A bytes field's content.
    fn bytes(&self, field: BytesField) -> Result<Vec<u8>>;
    /// A UTF-8 text field.
    fn text(&self, field: BytesField) -> Result<String>;
    /// A signature of at most `max_signature_len` bytes, not yet verified.
    fn sign_raw(&self, scheme: u32, msg: &[u8], max_signature_len: usize) -> Result<Vec<u8>>;
    /// TPM attestation: import the identity key DPS sent (the activation blob).
    fn activate(&self, blob: &[u8]) -> Result<()>;
    /// TPM attestation: HMAC-SHA256 of `data` with the activated identity key (a SAS signature).
    fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>>;
    /// Symmetric key: HMAC-SHA256 of `data` with the table's key.
    fn hmac_sha256(&self, data: &[u8]) -> Result<[u8; 32]>;
}

/// Opens identities in vendor tables: the C layer (`hsm-abi`) installs its loader with
/// [`install_loader`] (`hsm_abi::vendor::install()`; every C entry point does it).
pub trait VendorLoader: Send + Sync {
    /// Open `identity` (the section's `identity` key) in the table `source` names.
    fn open(&self, source: &Source, identity: &str) -> Result<Arc<dyn RawVendorIdentity>>;
}

static LOADER: OnceLock<&'static dyn VendorLoader> = OnceLock::new();

/// Install the loader of vendor tables (the first one installed stays).
pub fn install_loader(loader: &'static dyn VendorLoader) {
    let _ = LOADER.set(loader);
}

/// Open `identity` in the table of `source` through the installed loader.
pub(crate) fn open_raw(source: &Source, identity: &str) -> Result<Arc<dyn RawVendorIdentity>> {
    let loader = LOADER.get().ok_or_else(|| {
        Error::unsupported(
            "this program",
            "vendor backends: their C tables are loaded by the C layer; link hsm-abi and call \
             hsm_abi::vendor::install() first",
        )
    })?;
    loader.open(source, identity)
}

/// Where a vendor table comes from (the source of a `vendor:` token).
pub use hsm_core::token::{VendorSource as Source, VendorToken};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    library: Option<PathBuf>,
    registered: Option<String>,
    #[serde(default)]
    identity: String,
}

pub(super) fn source_of(section: &Section) -> Result<(Source, String)> {
    let p: Params = section.parse()?;
    let source = match (p.library, p.registered) {
        (Some(lib), None) => Source::Library(section.path(&lib)),
        (None, Some(name)) => Source::Registered(name),
        (Some(_), Some(_)) => {
            return Err(section.error("library", "give either `library` or `registered`, not both"));
        }
        (None, None) => {
            return Err(section.error(
                "library",
                "missing: give `library = \"path/to/libvendor.so\"` or `registered = \"name\"`",
            ));
        }
    };
    Ok((source, p.identity))
}

/// Open the identity of a `backend = "vendor"` section, with errors naming the section.
pub(super) fn open_section(section: &Section) -> Result<Arc<dyn RawVendorIdentity>> {
    let (source, identity) = source_of(section)?;
    open_raw(&source, &identity).map_err(|e| match e {
        Error::Config {
            source_name,
            key,
            message,
        } => section.error("library", format!("{source_name}: {key}: {message}")),
        other => other,
    })
}

// ---- alias-key tokens ----

/// The alias-key token naming the key of `identity` in `source` (`hsm_core::token` encodes it).
pub fn key_token(source: &Source, identity: &str) -> Result<String> {
    VendorToken {
        source: source.clone(),
        identity: identity.to_string(),
    }
    .encode()
}
