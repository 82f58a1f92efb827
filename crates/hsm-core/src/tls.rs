//! The rustls crypto provider of every TLS configuration in the workspace, in one place.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// The crypto provider for rustls configurations.
///
/// As rustls asks of libraries, the process-level provider when the application installed one
/// ([`CryptoProvider::install_default`]): a program that wants the post-quantum key exchange
/// (X25519MLKEM768) installs the aws-lc-rs provider and our configurations use it. Otherwise
/// *ring*, the provider this workspace builds rustls with: small and self-contained, which the C
/// library's size budget needs (aws-lc-rs links aws-lc's own C library of cryptography).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Arc::clone(installed);
    }
    static RING: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(RING.get_or_init(|| Arc::new(ring_provider())))
}

/// rustls 0.23.48 deprecated naming the *ring* provider (it has no post-quantum key exchange);
/// an application that needs one installs it as the process default (see [`crypto_provider`]).
/// This is the one place that names *ring*; `allow`, not `expect`: the lock file may hold a
/// rustls from before the deprecation.
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}
