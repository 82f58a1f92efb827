//! TLS pieces the tests share: the crypto provider, root stores, the loopback server config.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::pki;

/// The workspace's rustls crypto provider (the process default when one is installed, else ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    hsm_core::tls::crypto_provider()
}

/// A root store of the certificates in `pem`.
pub fn roots(pem: &str) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in hsm_core::pem::parse_certificates("test roots", pem.as_bytes()).expect("PEM certificates") {
        roots.add(c).expect("a root certificate");
    }
    roots
}

/// A client trusting the certificates in `ca_pem`, presenting no certificate.
pub fn client_config(ca_pem: &str) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the provider supports the default versions")
            .with_root_certificates(roots(ca_pem))
            .with_no_client_auth(),
    )
}

/// The TLS side of the loopback test servers: a fresh self-signed certificate for 127.0.0.1 and
/// localhost, no client authentication; and the certificate's PEM for the clients under test to trust.
pub fn loopback_server_config() -> (Arc<ServerConfig>, String) {
    let id = pki::self_signed_server(&["127.0.0.1", "localhost"]);
    (server_config(&id), id.cert_pem())
}

/// A server config presenting `id`, no client authentication.
pub fn server_config(id: &pki::Identity) -> Arc<ServerConfig> {
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the provider supports the default versions")
            .with_no_client_auth()
            .with_single_cert(id.chain.clone(), id.key.clone_key())
            .expect("the server certificate and key match"),
    )
}
