//! `[x509] backend = "issued"` through the C ABI and the rustls tlsio: the SDK's
//! `get_cert`/`get_key` serve the current generation of the store (keys on SoftHSM2), a TLS
//! server requiring client certificates accepts it, and after a renewal the next connection
//! presents the new pair, on the same handle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Setting the environment and calling `extern "C"` functions is unsafe by nature.
#![allow(unsafe_code)]

mod common;

use std::sync::Arc;

use common::{configure, last_error, take_some};
use hsm_abi::ffi::ext::*;
use hsm_abi::ffi::sdk::*;
use hsm_issued::testing::Ca;
use hsm_issued::{KeySource, Store};
use rustls::server::WebPkiClientVerifier;

/// One mTLS connection with what get_cert/get_key return (the tlsio resolves the key token
/// through the registry); returns the leaf the server saw.
fn connect(cert_pem: &str, key_token: &str, ca: &Ca) -> Vec<u8> {
    let chain = hsm_core::pem::parse_certificates("get_cert", cert_pem.as_bytes()).unwrap();
    let key = hsm::open_signer(key_token).unwrap();
    let certified = tlsio_bridge::certified_key_from_parts(chain, key).unwrap();
    let server = test_support::pki::self_signed_server(&["localhost"]);
    let server_roots = test_support::tls::roots(&server.cert_pem());
    let ccfg = tlsio_bridge::client_config_with_key(server_roots, Some(certified), Default::default()).unwrap();
    // The server requires a client certificate from the CA that issued the identity.
    let client_roots = tlsio_bridge::roots_from_pem("CA", ca.root_pem().as_bytes()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), tlsio_bridge::provider())
        .build()
        .unwrap();
    let scfg = rustls::ServerConfig::builder_with_provider(tlsio_bridge::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.chain.clone(), server.key.clone_key())
        .unwrap();
    let mut c = rustls::ClientConnection::new(Arc::new(ccfg), "localhost".try_into().unwrap()).unwrap();
    let mut s = rustls::ServerConnection::new(Arc::new(scfg)).unwrap();
    test_support::tls::handshake(&mut c, &mut s).unwrap();
    s.peer_certificates().unwrap()[0].as_ref().to_vec()
}

// The only test of this binary: it owns the process environment and the library's configuration.
#[test]
fn issued_identity_through_the_c_abi_and_tls_follows_renewal() {
    let keys = test_support::softhsm::fixture().uri("");
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("issued");
    let store = Store::open(
        &store_dir,
        "abi-device",
        KeySource::parse(&keys).unwrap(),
        hsm::open_signer,
    )
    .unwrap();
    let ca = Ca::new("abi").unwrap();
    let first = store.install(&ca.issue(&store.begin().unwrap()).unwrap()).unwrap();

    let toml = format!(
        "[x509]\nbackend = \"issued\"\nstore = \"{}\"\nregistration_id = \"abi-device\"\nkeys = \"{keys}\"\n",
        store_dir.display()
    );
    configure(&toml);
    let x = unsafe { &*hsm_client_x509_interface() };
    let h = unsafe { x.hsm_client_x509_create.unwrap()() };
    assert!(!h.is_null(), "{}", last_error());
    let get = |h| unsafe {
        (
            take_some(x.hsm_client_get_cert.unwrap()(h)),
            take_some(x.hsm_client_get_key.unwrap()(h)),
        )
    };
    assert_eq!(
        take_some(unsafe { x.hsm_client_get_common_name.unwrap()(h) }),
        "abi-device"
    );
    let (cert1, key1) = get(h);
    assert_eq!(key1, first.key, "get_key hands out the token URI of the current key");
    assert!(!key1.contains("pin-value") && !key1.contains("user-pin-1234"));
    let seen1 = connect(&cert1, &key1, &ca);
    assert_eq!(seen1, store.current().unwrap().1[0].as_ref());

    // Renewal while the handle is open: the next get_cert/get_key and connection use the new pair.
    let second = store.install(&ca.issue(&store.begin().unwrap()).unwrap()).unwrap();
    let (cert2, key2) = get(h);
    assert_ne!(cert2, cert1);
    assert_eq!(key2, second.key);
    let seen2 = connect(&cert2, &key2, &ca);
    assert_ne!(seen2, seen1);
    assert_eq!(seen2, store.current().unwrap().1[0].as_ref());
    // Used once: the old key goes; the identity keeps working.
    store.confirm().unwrap();
    assert!(hsm::open_signer(&key1).is_err(), "the retired key is deleted");
    let (cert3, key3) = get(h);
    assert_eq!((cert3.as_str(), key3.as_str()), (cert2.as_str(), key2.as_str()));
    connect(&cert3, &key3, &ca);

    unsafe { x.hsm_client_x509_destroy.unwrap()(h) };
    hsm_abi_configure_clear();
}
