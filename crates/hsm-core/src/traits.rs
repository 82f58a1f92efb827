use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use crate::{KeyAlgorithm, Result, SignatureScheme};

/// Resolves an alias-key token (or an inline PEM private key) to its signer. One function does
/// this for every backend: `hsm::open_signer` (the registry); a crate below the registry that
/// opens keys by token (an issued-identity store) is handed it.
pub type OpenSigner = fn(&str) -> Result<Arc<dyn SigningKey>>;

/// A private key held by a backend. It signs; it never hands out its private part.
pub trait SigningKey: Send + Sync + std::fmt::Debug {
    /// Algorithm and size of the key.
    fn algorithm(&self) -> KeyAlgorithm;

    /// The DER `SubjectPublicKeyInfo` of the key.
    fn public_key_spki(&self) -> Result<Vec<u8>>;

    /// Schemes this key can sign with, most preferred first. By default every scheme of its
    /// algorithm; a device that lacks a mechanism reports less.
    fn schemes(&self) -> Vec<SignatureScheme> {
        self.algorithm().schemes().to_vec()
    }

    /// Sign `message` (not a digest) with `scheme`. ECDSA signatures are DER.
    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>>;
}

/// An X.509 identity: what the SDK's x509 and riot interfaces need.
pub trait X509Identity: Send + Sync {
    /// Certificate chain, leaf first.
    fn certificate_chain(&self) -> Result<Vec<CertificateDer<'static>>>;

    /// The registration id: the common name of the leaf certificate.
    fn common_name(&self) -> Result<String> {
        let chain = self.certificate_chain()?;
        let leaf = chain
            .first()
            .ok_or_else(|| crate::Error::parse("certificate chain", "the chain is empty"))?;
        crate::pem::common_name(leaf)
    }

    /// The key of the leaf certificate.
    fn signing_key(&self) -> Result<Arc<dyn SigningKey>>;

    /// The string the SDK's `get_key` hands to its TLS layer: an alias-key token
    /// ([`crate::token::KeyToken`]) or, for the development file backend, the PEM key.
    fn key_reference(&self) -> Result<Zeroizing<String>>;
}

/// A symmetric-key identity (the SDK's key interface).
pub trait SymmetricIdentity: Send + Sync {
    /// The registration id.
    fn registration_id(&self) -> Result<String>;

    /// The symmetric key itself, for callers that sign in software (the SDK's
    /// `get_symm_key`). Backends whose key never leaves the device return
    /// [`crate::Error::Unsupported`].
    fn symmetric_key(&self) -> Result<Zeroizing<Vec<u8>>>;

    /// HMAC-SHA256 of `data` with the key.
    fn hmac_sha256(&self, data: &[u8]) -> Result<[u8; 32]>;
}

/// Signs SAS tokens with a key that stays on the device: what IoT Hub authentication through the
/// SDK's TPM-shaped interface needs (`sign_with_identity`). A TPM's activated identity key
/// offers it, and so does a PKCS#11 HMAC secret, which has no EK, SRK or activation.
pub trait SasSigner: Send + Sync {
    /// HMAC-SHA256 of `data` with the identity key.
    fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>>;
}

/// TPM attestation (the SDK's "sastoken" attestation with DPS): the endorsement and storage
/// root keys, and importing the identity key the service sent, which then signs SAS tokens
/// ([`SasSigner`]). Calls take `&self`: an implementation serializes device access inside.
pub trait TpmIdentity: SasSigner {
    /// Marshalled `TPM2B_PUBLIC` of the endorsement key (with its 2-byte size).
    fn endorsement_key(&self) -> Result<Vec<u8>>;
    /// Marshalled `TPM2B_PUBLIC` of the storage root key.
    fn storage_root_key(&self) -> Result<Vec<u8>>;
    /// Import the identity key the service sent (the DPS activation blob).
    fn activate_identity_key(&self, blob: &[u8]) -> Result<()>;
}
