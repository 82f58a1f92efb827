//! The facade from configuration text to identities and a rustls client configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

fn device(dir: &Path, cn: &str) -> rcgen::KeyPair {
    let id = test_support::pki::self_signed(cn, test_support::pki::KeyType::P256);
    std::fs::write(dir.join("cert.pem"), id.cert_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), id.key_pem()).unwrap();
    id.into_key_pair()
}

const CONFIG: &str = concat!(
    "[x509]\nbackend = \"file\"\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\n",
    "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"device-0001\"\n",
    "symmetric_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n",
);

#[test]
fn open_toml_opens_every_section_present() {
    let dir = tempfile::tempdir().unwrap();
    device(dir.path(), "facade-device");
    let ids = hsm::open_toml(CONFIG, "device.toml", dir.path()).unwrap();
    assert_eq!(ids.x509.as_ref().unwrap().common_name().unwrap(), "facade-device");
    assert_eq!(
        ids.symmetric_key.as_ref().unwrap().registration_id().unwrap(),
        "device-0001"
    );
    assert!(ids.tpm.is_none());

    std::fs::write(dir.path().join("device.toml"), CONFIG).unwrap();
    let ids = hsm::open_file(dir.path().join("device.toml")).unwrap();
    assert!(ids.x509.is_some() && ids.symmetric_key.is_some());

    // A broken section fails the whole call, naming the file it could not read.
    let broken = CONFIG.replace("key.pem", "missing.pem");
    let e = hsm::open_toml(&broken, "device.toml", dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.pem"), "{e}");
}

#[cfg(feature = "rustls")]
#[test]
fn a_configuration_gives_a_rustls_client_identity() {
    let dir = tempfile::tempdir().unwrap();
    let key = device(dir.path(), "tls-device");
    let config = hsm::Config::from_toml(CONFIG, "device.toml", dir.path()).unwrap();
    let certified = hsm::tls::certified_key(&config).unwrap();
    assert_eq!(certified.cert.len(), 1);
    // The key rustls signs with is the backend's: it signs verifiably for the certificate's key.
    let signer = certified
        .key
        .choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256])
        .unwrap();
    let sig = signer.sign(b"hello").unwrap();
    let public = rcgen::PublicKeyData::der_bytes(&key).to_vec();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, public)
        .verify(b"hello", &sig)
        .unwrap();
    let pem = std::fs::read(dir.path().join("cert.pem")).unwrap();
    let roots = hsm::tls::roots_from_pem("root", &pem).unwrap();
    let client = hsm::tls::client_config(&config, roots).unwrap();
    assert!(client.client_auth_cert_resolver.has_certs());

    // A key that is not the certificate's is refused.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(dir.path().join("key.pem"), other.serialize_pem()).unwrap();
    let e = hsm::tls::client_config(&config, rustls::RootCertStore::empty())
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not match"), "{e}");
}

/// One call from a file to the shared handle a provisioning client takes (`Arc`), no conversion.
#[test]
fn the_file_openers_give_shared_identities_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    device(dir.path(), "shared-device");
    let path = dir.path().join("device.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let x509: std::sync::Arc<dyn hsm::X509Identity> = hsm::open_x509_file(&path).unwrap();
    let again = std::sync::Arc::clone(&x509);
    assert_eq!(again.common_name().unwrap(), "shared-device");
    let symmetric: std::sync::Arc<dyn hsm::SymmetricIdentity> = hsm::open_symmetric_file(&path).unwrap();
    assert_eq!(symmetric.registration_id().unwrap(), "device-0001");
    let ids = hsm::open_file(&path).unwrap();
    let _: Option<std::sync::Arc<dyn hsm::X509Identity>> = ids.x509;
    // No [tpm] section: the error names it.
    let e = hsm::open_tpm_file(&path).err().unwrap().to_string();
    assert!(e.contains("tpm"), "{e}");
}
