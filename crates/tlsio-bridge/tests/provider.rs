//! The crypto provider follows rustls's rule for libraries: the application's process-level
//! provider when it installed one. Its own test binary: the default is set once per process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

#[test]
fn the_installed_process_provider_is_used() {
    // Before any install: the crate's own provider, the same one every call.
    assert!(CryptoProvider::get_default().is_none());
    let own = tlsio_bridge::provider();
    assert!(Arc::ptr_eq(&own, &tlsio_bridge::provider()));

    // An application's provider, told apart by its cipher suites (ChaCha20-Poly1305 only).
    let mut theirs = (*own).clone();
    theirs
        .cipher_suites
        .retain(|s| format!("{:?}", s.suite()).contains("CHACHA20_POLY1305"));
    let suites = theirs.cipher_suites.len();
    assert!(suites > 0 && suites < own.cipher_suites.len());
    theirs.install_default().unwrap();

    let used = tlsio_bridge::provider();
    let installed = CryptoProvider::get_default().unwrap();
    assert!(Arc::ptr_eq(&used, installed), "the process default is not the one used");
    assert_eq!(used.cipher_suites.len(), suites);

    // And the client configurations are built on it.
    let config =
        tlsio_bridge::client_config_with_key(rustls::RootCertStore::empty(), None, tlsio_bridge::TlsVersions::Both)
            .unwrap();
    assert!(Arc::ptr_eq(config.crypto_provider(), installed));
}
