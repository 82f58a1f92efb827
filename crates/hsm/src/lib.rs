//! One dependency for a Rust program that needs a hardware-backed identity: the backend traits
//! and types of `hsm-core` (re-exported), and the dispatch from a configuration to backend
//! objects, each backend behind a cargo feature (`pkcs11`, `dice`, `vendor` by default, `tpm`;
//! files always).
//!
//! ```no_run
//! # fn main() -> hsm::Result<()> {
//! let config = hsm::Config::from_file(std::path::Path::new("device.toml"))?;
//! let identity = hsm::open_x509(&config)?;
//! let cn = identity.common_name()?;
//! # let _ = cn; Ok(())
//! # }
//! ```
//!
//! With the `rustls` feature, [`tls::client_config`] goes from a configuration to a rustls
//! client configuration whose every signature is made by the backend.
//!
//! No `unsafe` here. Vendor backends are C tables: `hsm-abi` (the C library) loads them and
//! installs its loader with `hsm_abi::vendor::install()`.
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
pub use registry::{TpmBackend, open_signer, open_symmetric, open_tpm, open_tpm_attestation, open_x509};

use std::path::Path;

/// The identities of one configuration: each section present, opened.
pub struct Identities {
    pub x509: Option<Box<dyn X509Identity>>,
    pub symmetric_key: Option<Box<dyn SymmetricIdentity>>,
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
pub fn open_file(path: &Path) -> Result<Identities> {
    open(&Config::from_file(path)?)
}

/// Parse configuration text (`source` names it in errors, relative paths are relative to
/// `base_dir`) and open its identities.
pub fn open_toml(text: &str, source: &str, base_dir: &Path) -> Result<Identities> {
    open(&Config::from_toml(text, source, base_dir)?)
}
