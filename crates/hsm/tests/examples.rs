//! The example `sign` as a user runs it: a P-256 key made on a SoftHSM2 token, its certificate, a
//! configuration file naming both; the example binary (built by `cargo test`, which builds every
//! example) opens the identity from the file in one call and signs on the token; the signature
//! verifies with the certificate's public key.
#![cfg(feature = "pkcs11")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hsm::{Curve, KeyAlgorithm};
use hsm_pkcs11::testing::SoftHsm;

/// An example binary of this package: `cargo test` builds the examples into `target/*/examples`
/// before it runs any test.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo test -p hsm` (it builds the examples), not a single --test",
        path.display()
    );
    // `cargo test --test examples` alone does not rebuild the examples: refuse a stale binary.
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.rs"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).unwrap();
    assert!(
        modified(&path) >= modified(&source),
        "{} is older than its source: run `cargo test -p hsm`",
        path.display()
    );
    path
}

/// The public half of the token's key, for rcgen to certify.
struct TokenPublicKey(Vec<u8>);

impl rcgen::PublicKeyData for TokenPublicKey {
    fn der_bytes(&self) -> &[u8] {
        // The uncompressed point ends the SubjectPublicKeyInfo.
        &self.0[self.0.len() - 65..]
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

#[test]
fn the_sign_example_signs_on_softhsm_from_a_configuration_file() {
    let hsm = SoftHsm::create().expect("SoftHSM2 must be installed (apt-get install softhsm2)");
    hsm.init_token("examples", "so-pin-0000", "user-pin-1234").unwrap();
    let pin_file = hsm.pin_file("user.pin", "user-pin-1234").unwrap();
    let uri = format!(
        "pkcs11:token=examples;object=device-key?module-path={}&pin-source=file:{}",
        hsm.module().display(),
        pin_file.display()
    );
    // SAFETY: this test binary has this one test; nothing else reads the environment meanwhile, and
    // no PKCS#11 module is loaded yet.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", hsm.conf());
    }
    let key = hsm_pkcs11::tools::generate_key_pair(&uri, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let spki = hsm::open_signer(&key.to_token_string())
        .unwrap()
        .public_key_spki()
        .unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "example-device");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(
        {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            p
        },
        ca_key,
    )
    .unwrap();
    let leaf = params.signed_by(&TokenPublicKey(spki.clone()), &ca).unwrap();
    let dir = hsm.path();
    std::fs::write(dir.join("device.pem"), leaf.pem()).unwrap();
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
