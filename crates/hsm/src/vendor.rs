//! Vendor backends as ordinary backends: a vendor table (a shared object configured by path, or
//! a table registered from C with `hsm_abi_vendor_register`) seen through the hsm-core traits.
//!
//! ```toml
//! [x509]
//! backend = "vendor"
//! library = "libvendor.so"      # or: registered = "name"
//! identity = "slot-0"           # passed to the vendor's open; no secrets here
//! ```
//!
//! The same keys work in `[symmetric_key]` and `[tpm]` when the table has those groups.
//! Everything a vendor can get wrong is contained: NULL fields are "unsupported" errors, lengths
//! and writes are checked against the buffers given, text must be UTF-8, key descriptions must
//! match the certificate, and every signature is verified against the public key before it is
//! used, so a vendor returning garbage gives an error naming the vendor and the field.
//!
//! `get_key` of a vendor x509 identity is an alias-key token `vendor:library=PATH;identity=ID`
//! (or `vendor:registered=NAME;identity=ID`), percent-encoded, resolved by
//! [`crate::registry::open_signer`].
//!
//! The tables themselves (C structs, `dlopen`, guarded calls) are in `hsm-abi`, the only crate
//! with `unsafe`: it implements [`RawVendorIdentity`] and installs a [`VendorLoader`]. This
//! module is what needs no C: sections, key tokens, key and signature checks, the identities.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hsm_core::config::Section;
use hsm_core::{
    Curve, Error, KeyAlgorithm, Origin, Result, SasSigner, SignatureScheme, SigningKey, SymmetricIdentity, TpmIdentity,
    X509Identity,
};
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

// ---- the C side, as seen from here ----

/// The byte-producing fields of the vendor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BytesField {
    CertificateChain,
    CommonName,
    PublicKey,
    EndorsementKey,
    StorageRootKey,
    RegistrationId,
    SymmetricKey,
}

impl BytesField {
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
    pub public_key: bool,
    pub error_string: bool,
    pub tpm: bool,
    pub symmetric: bool,
    pub symmetric_key_export: bool,
}

/// A key description as the vendor gave it (`HSM_ABI_KEY_INFO`), not yet validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub family: KeyFamily,
    /// `HSM_ABI_KEY_INFO.algorithm` as the vendor gave it (named in errors).
    pub algorithm: u32,
    /// 256 or 384 for EC; the modulus size in bits for RSA.
    pub curve_or_bits: u32,
    /// TLS SignatureScheme code points, as many as the vendor said (`scheme_count`, unchecked).
    pub schemes: Vec<u32>,
    pub max_signature_len: u32,
}

/// `HSM_ABI_KEY_INFO.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    Ec,
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
    fn capabilities(&self) -> Capabilities;
    /// Whether a bytes field is set in the table.
    fn has(&self, field: BytesField) -> bool;
    /// The key description (errors: the vendor's code).
    fn key_info(&self) -> Result<KeyInfo>;
    fn bytes(&self, field: BytesField) -> Result<Vec<u8>>;
    /// A UTF-8 text field.
    fn text(&self, field: BytesField) -> Result<String>;
    /// A signature of at most `max_signature_len` bytes, not yet verified.
    fn sign_raw(&self, scheme: u32, msg: &[u8], max_signature_len: usize) -> Result<Vec<u8>>;
    fn activate(&self, blob: &[u8]) -> Result<()>;
    fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>>;
    fn hmac_sha256(&self, data: &[u8]) -> Result<[u8; 32]>;
}

/// Opens identities in vendor tables: the C layer (`hsm-abi`) installs its loader with
/// [`install_loader`] (`hsm_abi::vendor::install()`; every C entry point does it).
pub trait VendorLoader: Send + Sync {
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

fn source_of(section: &Section) -> Result<(Source, String)> {
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
fn open_section(section: &Section) -> Result<Arc<dyn RawVendorIdentity>> {
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

/// Resolve a decoded `vendor:` token to a signer.
pub fn open_signer(token: &VendorToken) -> Result<Arc<dyn SigningKey>> {
    Ok(Arc::new(VendorKey::new(open_raw(&token.source, &token.identity)?)?))
}

// ---- key checks ----

/// Check a key description from a vendor: known algorithm and size, 1..=8 known schemes that
/// belong to the algorithm, a plausible maximum signature size.
pub fn validate_key_info(backend: &str, info: &KeyInfo) -> Result<KeyAlgorithm> {
    let bad = |why: String| Error::Device {
        origin: Origin::Vendor,
        op: format!("{backend}: key_info"),
        rv: 0,
        message: why,
    };
    let algorithm = match (info.family, info.curve_or_bits) {
        (KeyFamily::Ec, 256) => KeyAlgorithm::Ec(Curve::P256),
        (KeyFamily::Ec, 384) => KeyAlgorithm::Ec(Curve::P384),
        (KeyFamily::Rsa, bits @ 2048..=8192) if bits % 8 == 0 => KeyAlgorithm::Rsa { bits },
        (_, n) => {
            return Err(bad(format!(
                "unsupported key: algorithm {}, curve_or_bits {n} (expected EC 256/384 or RSA 2048..8192)",
                info.algorithm
            )));
        }
    };
    let count = info.schemes.len();
    if count == 0 || count > MAX_SCHEMES {
        return Err(bad(format!("scheme_count {count} is not within 1..={MAX_SCHEMES}")));
    }
    for code in &info.schemes {
        let s = SignatureScheme::try_from(*code).map_err(|_| bad(format!("unknown scheme 0x{code:04x}")))?;
        if !algorithm.schemes().contains(&s) {
            return Err(bad(format!("scheme {s} does not fit a {algorithm:?} key")));
        }
    }
    let max = info.max_signature_len as usize;
    let (lo, hi) = match algorithm {
        KeyAlgorithm::Ec(Curve::P256) => (64, 256),
        KeyAlgorithm::Ec(Curve::P384) => (96, 256),
        KeyAlgorithm::Rsa { bits } => ((bits / 8) as usize, (bits / 8) as usize + 64),
        _ => (1, 1 << 12),
    };
    if !(lo..=hi).contains(&max) {
        return Err(bad(format!(
            "max_signature_len {max} is implausible for a {algorithm:?} key (expected {lo}..={hi})"
        )));
    }
    Ok(algorithm)
}

/// Verify `sig` over `msg` with the public key `spki` for `scheme` (ring, independent of the
/// vendor).
pub fn verify_signature(spki: &[u8], scheme: SignatureScheme, msg: &[u8], sig: &[u8]) -> Result<()> {
    use ring::signature as rs;
    let alg: &dyn rs::VerificationAlgorithm = match scheme {
        SignatureScheme::EcdsaP256Sha256 => &rs::ECDSA_P256_SHA256_ASN1,
        SignatureScheme::EcdsaP384Sha384 => &rs::ECDSA_P384_SHA384_ASN1,
        SignatureScheme::RsaPkcs1Sha256 => &rs::RSA_PKCS1_2048_8192_SHA256,
        SignatureScheme::RsaPkcs1Sha384 => &rs::RSA_PKCS1_2048_8192_SHA384,
        SignatureScheme::RsaPkcs1Sha512 => &rs::RSA_PKCS1_2048_8192_SHA512,
        SignatureScheme::RsaPssSha256 => &rs::RSA_PSS_2048_8192_SHA256,
        SignatureScheme::RsaPssSha384 => &rs::RSA_PSS_2048_8192_SHA384,
        SignatureScheme::RsaPssSha512 => &rs::RSA_PSS_2048_8192_SHA512,
        other => return Err(Error::unsupported("signature verification", format!("scheme {other}"))),
    };
    let key = hsm_core::der::spki_public_key_bits(spki)?;
    rs::UnparsedPublicKey::new(alg, key)
        .verify(msg, sig)
        .map_err(|_| Error::Crypto {
            op: "signature verification",
            reason: format!("the {scheme} signature does not verify with the public key"),
        })
}

// ---- the key ----

/// The key of a vendor identity. Every signature is verified before it is returned.
pub struct VendorKey {
    raw: Arc<dyn RawVendorIdentity>,
    algorithm: KeyAlgorithm,
    schemes: Vec<SignatureScheme>,
    max_signature_len: usize,
    spki: Vec<u8>,
}

impl std::fmt::Debug for VendorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorKey")
            .field("backend", &self.raw.backend())
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl VendorKey {
    /// Describe the key of `raw` and check it against its certificate (and `get_public_key`).
    pub fn new(raw: Arc<dyn RawVendorIdentity>) -> Result<Self> {
        let name = raw.backend().to_string();
        let info = raw.key_info()?;
        let algorithm = validate_key_info(&name, &info)?;
        let chain = certificate_chain(raw.as_ref())?;
        let leaf = chain
            .first()
            .ok_or_else(|| Error::Internal("a checked chain is empty".into()))?;
        let cert_spki = hsm_core::pem::public_key_spki(leaf)?;
        let spki = if raw.has(BytesField::PublicKey) {
            let spki = raw.bytes(BytesField::PublicKey)?;
            if spki != cert_spki {
                return Err(mismatch(
                    &name,
                    "get_public_key differs from the leaf certificate's public key",
                ));
            }
            spki
        } else {
            cert_spki
        };
        let from_spki = hsm_core::pem::key_algorithm_from_spki(&spki)?;
        if from_spki != algorithm {
            return Err(mismatch(
                &name,
                &format!("key_info says {algorithm:?} but the certificate's key is {from_spki:?}"),
            ));
        }
        let schemes = info
            .schemes
            .iter()
            .filter_map(|c| SignatureScheme::try_from(*c).ok())
            .collect();
        Ok(VendorKey {
            raw,
            algorithm,
            schemes,
            max_signature_len: info.max_signature_len as usize,
            spki,
        })
    }
}

fn mismatch(backend: &str, why: &str) -> Error {
    Error::Device {
        origin: Origin::Vendor,
        op: format!("{backend}: key"),
        rv: 0,
        message: why.to_string(),
    }
}

impl SigningKey for VendorKey {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key_spki(&self) -> Result<Vec<u8>> {
        Ok(self.spki.clone())
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }

    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        if !self.schemes.contains(&scheme) {
            return Err(Error::unsupported(
                format!("vendor backend \"{}\"", self.raw.backend()),
                format!("signature scheme {scheme} (not listed by key_info)"),
            ));
        }
        let sig = self.raw.sign_raw(scheme.code(), message, self.max_signature_len)?;
        verify_signature(&self.spki, scheme, message, &sig).map_err(|e| Error::Device {
            origin: Origin::Vendor,
            op: format!("{}: sign", self.raw.backend()),
            rv: 0,
            message: format!("returned a bad signature: {e}"),
        })?;
        Ok(sig)
    }
}

pub fn certificate_chain(raw: &dyn RawVendorIdentity) -> Result<Vec<CertificateDer<'static>>> {
    let pem = raw.text(BytesField::CertificateChain)?;
    let what = format!("certificate chain of vendor backend \"{}\"", raw.backend());
    let chain = hsm_core::pem::parse_certificates(&what, pem.as_bytes())?;
    if chain.is_empty() {
        return Err(Error::parse(what, "no certificate"));
    }
    Ok(chain)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_info_is_checked() {
        let mut info = KeyInfo {
            family: KeyFamily::Ec,
            algorithm: 1,
            curve_or_bits: 256,
            schemes: vec![0x0403],
            max_signature_len: 72,
        };
        assert_eq!(validate_key_info("t", &info).unwrap(), KeyAlgorithm::Ec(Curve::P256));
        info.schemes[0] = 0x0804;
        assert!(
            validate_key_info("t", &info)
                .unwrap_err()
                .to_string()
                .contains("does not fit")
        );
        info.schemes[0] = 0x0403;
        info.schemes = vec![0x0403; 9];
        assert!(
            validate_key_info("t", &info)
                .unwrap_err()
                .to_string()
                .contains("scheme_count")
        );
        info.schemes = vec![0x0403];
        info.max_signature_len = 1 << 30;
        assert!(
            validate_key_info("t", &info)
                .unwrap_err()
                .to_string()
                .contains("max_signature_len")
        );
        info.max_signature_len = 72;
        info.curve_or_bits = 521;
        assert!(validate_key_info("t", &info).is_err());
    }

    #[test]
    fn verification() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let file = hsm_core::file::FileKey::from_pem("k", key.serialize_pem().as_bytes()).unwrap();
        let sig = file.sign(SignatureScheme::EcdsaP256Sha256, b"msg").unwrap();
        verify_signature(&spki, SignatureScheme::EcdsaP256Sha256, b"msg", &sig).unwrap();
        let e = verify_signature(&spki, SignatureScheme::EcdsaP256Sha256, b"other", &sig).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        let e = verify_signature(&spki[..spki.len() - 1], SignatureScheme::EcdsaP256Sha256, b"msg", &sig).unwrap_err();
        assert!(e.to_string().contains("SubjectPublicKeyInfo"), "{e}");
    }
}
