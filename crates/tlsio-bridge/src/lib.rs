//! The rustls side of the TLS bridge: a client identity whose every signature is made by an
//! hsm-core backend, so the private key never enters this process's memory.
//!
//! - [`HsmSigningKey`] adapts any [`hsm_core::SigningKey`] to [`rustls::sign::SigningKey`];
//! - [`client_config`] builds a [`rustls::ClientConfig`] from an [`X509Identity`] and trust
//!   anchors, with the crypto provider of [`provider`] (the application's, else *ring*);
//! - [`io`] is the C SDK's non-blocking TLS IO on rustls (the C side lives in `hsm-abi`).
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(missing_docs)]

pub mod io;

use std::sync::Arc;

use hsm_core::{Error, KeyAlgorithm, Result, SignatureScheme, X509Identity};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

/// The crypto provider every configuration of this crate uses: [`hsm_core::tls::crypto_provider`]
/// (the application's process-level provider when it installed one, otherwise *ring*).
pub fn provider() -> Arc<CryptoProvider> {
    hsm_core::tls::crypto_provider()
}

/// A backend key seen through rustls.
#[derive(Debug, Clone)]
pub struct HsmSigningKey {
    key: Arc<dyn hsm_core::SigningKey>,
    schemes: Vec<SignatureScheme>,
}

impl HsmSigningKey {
    /// The rustls view of `key`, offering the signature schemes the key supports.
    pub fn new(key: Arc<dyn hsm_core::SigningKey>) -> Self {
        let schemes = key.schemes();
        HsmSigningKey { key, schemes }
    }
}

impl rustls::sign::SigningKey for HsmSigningKey {
    fn choose_scheme(&self, offered: &[rustls::SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        let scheme = self
            .schemes
            .iter()
            .copied()
            .find(|s| offered.contains(&s.to_rustls()))?;
        Some(Box::new(HsmSigner {
            key: self.key.clone(),
            scheme,
        }))
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        match self.key.algorithm() {
            KeyAlgorithm::Ec(_) => rustls::SignatureAlgorithm::ECDSA,
            KeyAlgorithm::Rsa { .. } => rustls::SignatureAlgorithm::RSA,
            _ => rustls::SignatureAlgorithm::Unknown(0),
        }
    }

    fn public_key(&self) -> Option<rustls_pki_types::SubjectPublicKeyInfoDer<'_>> {
        self.key.public_key_spki().ok().map(Into::into)
    }
}

/// One signing operation with a chosen scheme.
#[derive(Debug)]
struct HsmSigner {
    key: Arc<dyn hsm_core::SigningKey>,
    scheme: SignatureScheme,
}

impl rustls::sign::Signer for HsmSigner {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rustls::Error> {
        self.key.sign(self.scheme, message).map_err(|e| {
            tracing::warn!(scheme = %self.scheme, error = %e, "TLS signature through the backend failed");
            rustls::Error::General(format!("signing with the HSM key failed: {e}"))
        })
    }

    fn scheme(&self) -> rustls::SignatureScheme {
        self.scheme.to_rustls()
    }
}

/// Always presents the same certificate chain and backend key.
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(&self, _hints: &[&[u8]], sigschemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let usable = self.0.key.choose_scheme(sigschemes).is_some();
        if !usable {
            tracing::warn!(?sigschemes, "the server accepts no signature scheme our key can make");
        }
        usable.then(|| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A certificate chain plus a backend key, ready for rustls.
pub fn certified_key(identity: &dyn X509Identity) -> Result<Arc<CertifiedKey>> {
    certified_key_from_parts(identity.certificate_chain()?, identity.signing_key()?)
}

/// A certificate chain (leaf first) plus the backend key of its leaf, ready for rustls.
pub fn certified_key_from_parts(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: Arc<dyn hsm_core::SigningKey>,
) -> Result<Arc<CertifiedKey>> {
    if chain.is_empty() {
        return Err(Error::parse("x509 identity", "the certificate chain is empty"));
    }
    let leaf_spki = hsm_core::pem::public_key_spki(&chain[0])?;
    if leaf_spki != key.public_key_spki()? {
        return Err(Error::parse(
            "x509 identity",
            "the signing key does not match the leaf certificate",
        ));
    }
    Ok(Arc::new(CertifiedKey::new(chain, Arc::new(HsmSigningKey::new(key)))))
}

/// Trust anchors from PEM text.
pub fn roots_from_pem(what: &str, pem: &[u8]) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in hsm_core::pem::parse_certificates(what, pem)? {
        roots
            .add(cert)
            .map_err(|e| Error::parse(what, format!("not usable as a trust anchor: {e}")))?;
    }
    Ok(roots)
}

/// Which TLS versions to allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.2 and 1.3.
    #[default]
    Both,
    /// TLS 1.2 only.
    Tls12Only,
    /// TLS 1.3 only.
    Tls13Only,
}

/// A client configuration: server verified against `roots`, client authenticated by
/// `identity` (when given) with every signature made by its backend.
pub fn client_config(
    roots: rustls::RootCertStore,
    identity: Option<&dyn X509Identity>,
    versions: TlsVersions,
) -> Result<rustls::ClientConfig> {
    let key = identity.map(certified_key).transpose()?;
    client_config_with_key(roots, key, versions)
}

/// Like [`client_config`], with the client's certificate and key already paired.
pub fn client_config_with_key(
    roots: rustls::RootCertStore,
    key: Option<Arc<CertifiedKey>>,
    versions: TlsVersions,
) -> Result<rustls::ClientConfig> {
    let v: &[&rustls::SupportedProtocolVersion] = match versions {
        TlsVersions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersions::Tls12Only => &[&rustls::version::TLS12],
        TlsVersions::Tls13Only => &[&rustls::version::TLS13],
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(v)
        .map_err(|e| Error::Internal(format!("rustls rejected the protocol versions: {e}")))?
        .with_root_certificates(roots);
    Ok(match key {
        Some(key) => builder.with_client_cert_resolver(Arc::new(FixedClientCert(key))),
        None => builder.with_no_client_auth(),
    })
}
