//! From a configuration to a rustls client identity (feature `rustls`, over `tlsio-bridge`):
//! the certificate chain of the `[x509]` section and its backend key, whose every signature is
//! made by the backend, so the private key never leaves the hardware.

use std::sync::Arc;

use rustls::sign::CertifiedKey;
pub use tlsio_bridge::{TlsVersions, roots_from_pem};

use crate::{Config, Result};

/// The `[x509]` identity of `config`, paired with its key for rustls (the key must match the
/// leaf certificate).
pub fn certified_key(config: &Config) -> Result<Arc<CertifiedKey>> {
    tlsio_bridge::certified_key(crate::open_x509(config)?.as_ref())
}

/// A rustls client configuration: the server verified against `roots`, the client
/// authenticated by the `[x509]` identity of `config`.
pub fn client_config(config: &Config, roots: rustls::RootCertStore) -> Result<rustls::ClientConfig> {
    tlsio_bridge::client_config_with_key(roots, Some(certified_key(config)?), TlsVersions::Both)
}
