//! Full mTLS handshakes, in memory, between a client identity from the file backend (every
//! signature through `hsm_core::SigningKey`) and a rustls server that requires and verifies
//! client certificates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use hsm_core::file::{FileX509, KeyReference};
use rcgen::KeyPair;
use rustls::server::WebPkiClientVerifier;
use test_support::pki::{Ca, named_params};
use tlsio_bridge::{TlsVersions, client_config, roots_from_pem};

fn ca() -> Ca {
    Ca::root("test root")
}

fn leaf(ca: &Ca, key: &KeyPair, cn: &str, sans: &[&str]) -> String {
    hsm_core::pem::certificates_to_pem(&[ca.certify(named_params(cn, sans), key)])
}

fn rsa_key_pem(dir: &Path) -> String {
    let path = dir.join("rsa.pem");
    let st = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&path)
        .status()
        .expect("openssl must be installed");
    assert!(st.success());
    std::fs::read_to_string(path).unwrap()
}

fn run(alg: Option<&'static rcgen::SignatureAlgorithm>, versions: TlsVersions) -> String {
    let dir = tempfile::tempdir().unwrap();
    let pki = ca();
    let key = match alg {
        Some(a) => KeyPair::generate_for(a).unwrap(),
        None => KeyPair::from_pem(&rsa_key_pem(dir.path())).unwrap(),
    };
    std::fs::write(dir.path().join("dev.pem"), leaf(&pki, &key, "device-1", &[])).unwrap();
    std::fs::write(dir.path().join("dev.key"), key.serialize_pem()).unwrap();
    let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let server_cert = leaf(&pki, &server_key, "server", &["localhost"]);

    let id = FileX509::open(
        &dir.path().join("dev.pem"),
        &dir.path().join("dev.key"),
        KeyReference::Token,
    )
    .unwrap();
    let roots = roots_from_pem("test root", pki.pem().as_bytes()).unwrap();
    let ccfg = client_config(roots.clone(), Some(&id), versions).unwrap();

    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tlsio_bridge::provider())
        .build()
        .unwrap();
    let scfg = rustls::ServerConfig::builder_with_provider(tlsio_bridge::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            hsm_core::pem::parse_certificates("server", server_cert.as_bytes()).unwrap(),
            hsm_core::pem::parse_private_key("server key", server_key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let mut c = rustls::ClientConnection::new(Arc::new(ccfg), "localhost".try_into().unwrap()).unwrap();
    let mut s = rustls::ServerConnection::new(Arc::new(scfg)).unwrap();
    test_support::tls::handshake(&mut c, &mut s).unwrap();

    // Application data flows both ways and the server saw our certificate.
    c.writer().write_all(b"ping").unwrap();
    test_support::tls::handshake(&mut c, &mut s).unwrap();
    let mut got = [0u8; 4];
    s.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    let peer = s.peer_certificates().unwrap();
    assert_eq!(hsm_core::pem::common_name(&peer[0]).unwrap(), "device-1");
    format!("{:?}", c.protocol_version().unwrap())
}

#[test]
fn p256_tls13_and_tls12() {
    assert_eq!(
        run(Some(&rcgen::PKCS_ECDSA_P256_SHA256), TlsVersions::Tls13Only),
        "TLSv1_3"
    );
    assert_eq!(
        run(Some(&rcgen::PKCS_ECDSA_P256_SHA256), TlsVersions::Tls12Only),
        "TLSv1_2"
    );
}

#[test]
fn p384() {
    assert_eq!(run(Some(&rcgen::PKCS_ECDSA_P384_SHA384), TlsVersions::Both), "TLSv1_3");
}

#[test]
fn rsa_pss_tls13_and_tls12() {
    assert_eq!(run(None, TlsVersions::Tls13Only), "TLSv1_3");
    assert_eq!(run(None, TlsVersions::Tls12Only), "TLSv1_2");
}

#[test]
fn mismatched_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ca();
    let k1 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let k2 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(dir.path().join("dev.pem"), leaf(&pki, &k1, "d", &[])).unwrap();
    std::fs::write(dir.path().join("dev.key"), k2.serialize_pem()).unwrap();
    let err = FileX509::open(
        &dir.path().join("dev.pem"),
        &dir.path().join("dev.key"),
        KeyReference::Pem,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("does not match"), "{err}");
}
