#![warn(missing_docs)]
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

mod registry;
#[cfg(feature = "rustls")]
pub mod tls;
#[cfg(feature = "vendor")]
pub mod vendor;

pub use hsm_core::config::{Config, Section};
pub use hsm_core::{
    Curve, Error, KeyAlgorithm, Origin, Result, SasSigner, SignatureScheme, SigningKey, SymmetricIdentity, TpmIdentity,
    X509Identity, config, file, fs, pem, sas, token,
};
pub use registry::{TpmBackend, open_signer, open_tpm, open_tpm_attestation};

use std::path::Path;
use std::sync::{Arc, Mutex};

/// A TPM attestation identity shared between threads (the provisioning client takes this).
pub type SharedTpm = Arc<Mutex<Box<dyn TpmIdentity>>>;

/// The identity of the `[x509]` section, shared.
pub fn open_x509(config: &Config) -> Result<Arc<dyn X509Identity>> {
    registry::open_x509(config).map(Arc::from)
}

/// The identity of the `[symmetric_key]` section, shared.
pub fn open_symmetric(config: &Config) -> Result<Arc<dyn SymmetricIdentity>> {
    registry::open_symmetric(config).map(Arc::from)
}

/// The TPM attestation identity of the `[tpm]` section, shared (a backend that only signs SAS
/// tokens is refused, naming `op`: what needed the TPM).
pub fn open_tpm_shared(config: &Config, op: &str) -> Result<SharedTpm> {
    Ok(Arc::new(Mutex::new(open_tpm_attestation(config, op)?)))
}

/// Read a configuration file (relative paths in it: to its directory) and open its `[x509]`
/// identity: one call from the file to what a TLS client or a provisioning client takes.
pub fn open_x509_file(path: impl AsRef<Path>) -> Result<Arc<dyn X509Identity>> {
    open_x509(&Config::from_file(path.as_ref())?)
}

/// Read a configuration file and open its `[symmetric_key]` identity.
pub fn open_symmetric_file(path: impl AsRef<Path>) -> Result<Arc<dyn SymmetricIdentity>> {
    open_symmetric(&Config::from_file(path.as_ref())?)
}

/// Read a configuration file and open its `[tpm]` attestation identity, shared (a backend that
/// only signs SAS tokens is refused).
pub fn open_tpm_file(path: impl AsRef<Path>) -> Result<SharedTpm> {
    open_tpm_shared(&Config::from_file(path.as_ref())?, "TPM attestation")
}

/// The identities of one configuration: each section present, opened.
pub struct Identities {
    /// The `[x509]` identity.
    pub x509: Option<Arc<dyn X509Identity>>,
    /// The `[symmetric_key]` identity.
    pub symmetric_key: Option<Arc<dyn SymmetricIdentity>>,
    /// What the `[tpm]` section opens.
    pub tpm: Option<TpmBackend>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("x509", &self.x509.is_some())
            .field("symmetric_key", &self.symmetric_key.is_some())
            .field("tpm", &self.tpm.is_some())
            .finish()
    }
}

/// Open every section of `config` (`[x509]`, `[symmetric_key]`, `[tpm]`) that is present.
pub fn open(config: &Config) -> Result<Identities> {
    Ok(Identities {
        x509: config.x509.as_ref().map(|_| open_x509(config)).transpose()?,
        symmetric_key: config
            .symmetric_key
            .as_ref()
            .map(|_| open_symmetric(config))
            .transpose()?,
        tpm: config.tpm.as_ref().map(|_| open_tpm(config)).transpose()?,
    })
}

/// Read a configuration file (relative paths in it: to its directory) and open its identities.
pub fn open_file(path: impl AsRef<Path>) -> Result<Identities> {
    open(&Config::from_file(path.as_ref())?)
}

/// Parse configuration text (`source` names it in errors, relative paths are relative to
/// `base_dir`) and open its identities.
pub fn open_toml(text: &str, source: &str, base_dir: &Path) -> Result<Identities> {
    open(&Config::from_toml(text, source, base_dir)?)
}
