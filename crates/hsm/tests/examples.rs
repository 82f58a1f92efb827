//! The example `sign` as a user runs it: a P-256 key made on a SoftHSM2 token, its certificate, a
//! configuration file naming both; the example binary (built by `cargo test`, which builds every
//! example) opens the identity from the file in one call and signs on the token; the signature
//! verifies with the certificate's public key.
#![cfg(feature = "pkcs11")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use hsm::{Curve, KeyAlgorithm};

fn example(name: &str) -> PathBuf {
    test_support::examples::binary(env!("CARGO_MANIFEST_DIR"), "hsm", name)
}

#[test]
fn the_sign_example_signs_on_softhsm_from_a_configuration_file() {
    let token = test_support::softhsm::fixture();
    let hsm = &token.hsm;
    let uri = token.uri("object=device-key");
    let key = hsm_pkcs11::tools::generate_key_pair(&uri, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let signer = hsm::open_signer(&key.to_token_string()).unwrap();
    let spki = signer.public_key_spki().unwrap();
    let ca = test_support::pki::Ca::root("examples root");
    let public = hsm_core::csr::SubjectKey::of(signer.as_ref()).unwrap();
    let leaf = ca.certify(test_support::pki::params("example-device"), &public);
    let dir = hsm.path();
    std::fs::write(dir.join("device.pem"), hsm_core::pem::certificates_to_pem(&[leaf])).unwrap();
    std::fs::write(
        dir.join("device.toml"),
        format!(
            "[x509]\nbackend = \"pkcs11\"\ncertificate_file = \"device.pem\"\nkey = \"{}\"\n",
            key.to_token_string()
        ),
    )
    .unwrap();

    let out = Command::new(example("sign"))
        .arg(dir.join("device.toml"))
        .arg("a message from the factory")
        .env("SOFTHSM2_CONF", hsm.conf())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("registration id: example-device"), "{stdout}");
    let hex = stdout
        .lines()
        .find_map(|l| l.strip_prefix("signature: "))
        .expect("a signature line");
    let signature: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let public =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &spki[spki.len() - 65..]);
    public.verify(b"a message from the factory", &signature).unwrap();
    assert!(public.verify(b"another message", &signature).is_err());

    // A file without an [x509] section: the example fails, naming what is missing.
    std::fs::write(dir.join("empty.toml"), "").unwrap();
    let out = Command::new(example("sign"))
        .arg(dir.join("empty.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("x509"), "{out:?}");
}
