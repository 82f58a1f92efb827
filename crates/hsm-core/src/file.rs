//! The development backend: identities from plain files.
//!
//! - x509: a PEM certificate chain (leaf first) and a PEM private key (ECDSA P-256, P-384,
//!   RSA 2048-4096; PKCS#8, SEC1 or PKCS#1). The key is checked against the leaf.
//! - symmetric key: a registration id and either an individual key or a group key from
//!   which the device key is derived (HMAC-SHA256 of the registration id).
//!
//! Keys on disk are not hardware-backed: use this backend for development only.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::Section;
use crate::{Error, KeyAlgorithm, Result, SignatureScheme, SigningKey, SymmetricIdentity, X509Identity, pem};

/// What the x509 `get_key` call returns for a file identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyReference {
    /// The PEM key itself, what the SDK's stock OpenSSL tlsio expects (default).
    #[default]
    Pem,
    /// A `file:PATH` token, for the rustls tlsio bridge.
    Token,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct X509Params {
    certificate: PathBuf,
    private_key: PathBuf,
    #[serde(default)]
    key_reference: KeyReference,
}

/// A software key loaded from PEM.
pub struct FileKey {
    key: Arc<dyn rustls::sign::SigningKey>,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl FileKey {
    /// Parse a PEM private key; `what` names it in errors.
    pub fn from_pem(what: &str, pem_text: &[u8]) -> Result<Self> {
        let der = pem::parse_private_key(what, pem_text)?;
        let key = rustls::crypto::ring::sign::any_supported_type(&der)
            .map_err(|e| Error::parse(what, format!("unsupported private key: {e}")))?;
        let spki = key
            .public_key()
            .ok_or_else(|| Error::parse(what, "cannot derive the public key"))?
            .as_ref()
            .to_vec();
        let algorithm = pem::key_algorithm_from_spki(&spki)?;
        if let KeyAlgorithm::Rsa { bits } = algorithm {
            if !(2048..=4096).contains(&bits) {
                return Err(Error::parse(
                    what,
                    format!("RSA key of {bits} bits; 2048 to 4096 are supported"),
                ));
            }
        }
        Ok(FileKey { key, algorithm, spki })
    }

    /// The PEM private key of the file `path` (read within the size limit, then [`FileKey::from_pem`]).
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = pem::read_file("read private key", path)?;
        Self::from_pem(&format!("private key {}", path.display()), &text)
    }
}

impl SigningKey for FileKey {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key_spki(&self) -> Result<Vec<u8>> {
        Ok(self.spki.clone())
    }

    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        let signer = self.key.choose_scheme(&[scheme.to_rustls()]).ok_or_else(|| {
            Error::unsupported(
                format!("a {:?} file key", self.algorithm),
                format!("signature scheme {scheme}"),
            )
        })?;
        signer.sign(message).map_err(|e| Error::Crypto {
            op: "sign",
            reason: e.to_string(),
        })
    }
}

/// An x509 identity from a certificate chain file and a key file.
pub struct FileX509 {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<FileKey>,
    key_path: PathBuf,
    key_reference: KeyReference,
}

impl FileX509 {
    /// The `[x509]` section with `backend = "file"` (`certificate`, `private_key`,
    /// `key_reference`).
    pub fn from_section(section: &Section) -> Result<Self> {
        let p: X509Params = section.parse()?;
        Self::open(
            &section.path(&p.certificate),
            &section.path(&p.private_key),
            p.key_reference,
        )
    }

    /// The certificate chain PEM (leaf first) and its private key PEM; fails when they do not
    /// match.
    pub fn open(cert_path: &std::path::Path, key_path: &std::path::Path, key_reference: KeyReference) -> Result<Self> {
        let chain = pem::parse_certificates(
            &format!("certificate chain {}", cert_path.display()),
            &pem::read_file("read certificate chain", cert_path)?,
        )?;
        let key = FileKey::from_file(key_path)?;
        let leaf = pem::public_key_spki(&chain[0])?;
        if leaf != key.spki {
            return Err(Error::parse(
                format!("private key {}", key_path.display()),
                format!("it does not match the first certificate of {}", cert_path.display()),
            ));
        }
        pem::common_name(&chain[0])?;
        Ok(FileX509 {
            chain,
            key: Arc::new(key),
            key_path: key_path.to_path_buf(),
            key_reference,
        })
    }
}

impl X509Identity for FileX509 {
    fn certificate_chain(&self) -> Result<Vec<CertificateDer<'static>>> {
        Ok(self.chain.clone())
    }

    fn signing_key(&self) -> Result<Arc<dyn SigningKey>> {
        Ok(self.key.clone())
    }

    fn key_reference(&self) -> Result<Zeroizing<String>> {
        match self.key_reference {
            KeyReference::Token => Ok(Zeroizing::new(
                crate::token::KeyToken::File(self.key_path.clone()).encode()?,
            )),
            KeyReference::Pem => {
                let text = pem::read_file("read private key", &self.key_path)?;
                String::from_utf8(text.to_vec())
                    .map(Zeroizing::new)
                    .map_err(|_| Error::parse(format!("private key {}", self.key_path.display()), "not UTF-8 PEM"))
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SymmetricParams {
    registration_id: String,
    symmetric_key: Option<Zeroizing<String>>,
    symmetric_key_file: Option<PathBuf>,
    group_key: Option<Zeroizing<String>>,
    group_key_file: Option<PathBuf>,
}

/// A symmetric-key identity: individual key, or derived from a group key.
pub struct FileSymmetric {
    registration_id: String,
    key: Zeroizing<Vec<u8>>,
}

impl FileSymmetric {
    /// The `[symmetric_key]` section with `backend = "file"`: the registration id and the key, or
    /// the group key it is derived from.
    pub fn from_section(section: &Section) -> Result<Self> {
        let p: SymmetricParams = section.parse()?;
        if p.registration_id.is_empty() {
            return Err(section.error("registration_id", "must not be empty"));
        }
        let read = |key: &str, path: &PathBuf| -> Result<Zeroizing<String>> {
            let path = section.path(path);
            let text = crate::fs::read_bounded_string("read symmetric key file", &path, crate::fs::SECRET_MAX)
                .map_err(|e| section.error(key, e.to_string()))?;
            Ok(Zeroizing::new(text.trim().to_string()))
        };
        let given = [
            p.symmetric_key.is_some(),
            p.symmetric_key_file.is_some(),
            p.group_key.is_some(),
            p.group_key_file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(section.error(
                "symmetric_key",
                "give exactly one of symmetric_key, symmetric_key_file, group_key, group_key_file",
            ));
        }
        let key = if let Some(k) = p.symmetric_key {
            crate::sas::decode_key("symmetric_key", &k).map_err(|e| section.error("symmetric_key", e.to_string()))?
        } else if let Some(path) = &p.symmetric_key_file {
            let k = read("symmetric_key_file", path)?;
            crate::sas::decode_key("symmetric_key_file", &k)
                .map_err(|e| section.error("symmetric_key_file", e.to_string()))?
        } else {
            let group = match (&p.group_key, &p.group_key_file) {
                (Some(g), _) => g.clone(),
                (_, Some(path)) => read("group_key_file", path)?,
                _ => return Err(Error::Internal("symmetric key source vanished".into())),
            };
            crate::sas::derive_device_key(&group, &p.registration_id)
                .map_err(|e| section.error("group_key", e.to_string()))?
        };
        Ok(FileSymmetric {
            registration_id: p.registration_id,
            key,
        })
    }

    /// An identity from the raw (decoded) key.
    pub fn new(registration_id: String, key: Zeroizing<Vec<u8>>) -> Self {
        FileSymmetric { registration_id, key }
    }
}

impl SymmetricIdentity for FileSymmetric {
    fn registration_id(&self) -> Result<String> {
        Ok(self.registration_id.clone())
    }

    fn symmetric_key(&self) -> Result<Zeroizing<Vec<u8>>> {
        Ok(self.key.clone())
    }

    fn hmac_sha256(&self, data: &[u8]) -> Result<[u8; 32]> {
        Ok(crate::sas::hmac_sha256(&self.key, data))
    }
}
