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

/// An in-memory handshake: passes the bytes each side writes to the other until both are idle; the
/// first error either side meets (the test fails when 20 rounds do not finish it).
pub fn handshake(
    client: &mut rustls::ClientConnection,
    server: &mut rustls::ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..20 {
        let mut to_server = Vec::new();
        client.write_tls(&mut to_server).expect("writing to memory");
        if !to_server.is_empty() {
            server.read_tls(&mut &to_server[..]).expect("reading from memory");
            server.process_new_packets()?;
        }
        let mut to_client = Vec::new();
        server.write_tls(&mut to_client).expect("writing to memory");
        if !to_client.is_empty() {
            client.read_tls(&mut &to_client[..]).expect("reading from memory");
            client.process_new_packets()?;
        }
        if to_server.is_empty() && to_client.is_empty() && !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
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
