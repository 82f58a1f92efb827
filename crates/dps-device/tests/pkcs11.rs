//! Keys that never leave a SoftHSM2 token, over HTTPS, MQTT and AMQP: an x509 identity whose TLS signatures are made on the token, and
//! a symmetric key whose SAS is an HMAC computed on the token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use common::*;
use dps_device::Attestation;
use dps_emulator::Enrollment;
use hsm_core::config::Config;
use hsm_core::{Curve, KeyAlgorithm};
use hsm_pkcs11::testing::SoftHsm;
use hsm_pkcs11::{Pkcs11Secret, Pkcs11Symmetric, Pkcs11Uri, Pkcs11X509, tools};

const LABEL: &str = "dps-device";
const PIN: &str = "user-pin-1234";

struct Fixture {
    hsm: SoftHsm,
    pin_file: PathBuf,
}

/// One SoftHSM2 per test process (the module reads SOFTHSM2_CONF once), with one token.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let hsm = SoftHsm::create().expect("SoftHSM2 must be installed (apt-get install softhsm2)");
        // SAFETY: runs once, inside OnceLock initialization, before any PKCS#11 module is loaded; no other
        // code of this test binary touches the environment.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("SOFTHSM2_CONF", hsm.conf());
        }
        hsm.init_token(LABEL, "so-pin-0000", PIN).unwrap();
        let pin_file = hsm.pin_file("user.pin", PIN).unwrap();
        Fixture { hsm, pin_file }
    })
}

fn uri(object: &str) -> String {
    let f = fixture();
    format!(
        "pkcs11:token={LABEL};object={object}?module-path={}&pin-source=file:{}",
        f.hsm.module().display(),
        f.pin_file.display()
    )
}

/// The public half of a P-256 key on the token, for rcgen to certify.
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

#[tokio::test]
async fn x509_key_on_softhsm_is_assigned() {
    let f = fixture();
    let key_uri = tools::generate_key_pair(&uri("device-hsm"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let spki = hsm_pkcs11::open_signer(&key_uri.to_token_string())
        .unwrap()
        .public_key_spki()
        .unwrap();
    let ca = Ca::root("hsm root");
    let public = TokenPublicKey(spki);
    assert_eq!(rcgen::PublicKeyData::subject_public_key_info(&public), public.0);
    let leaf = Ca::leaf_params("device-hsm").signed_by(&public, &ca.issuer).unwrap();
    let cert = f.hsm.path().join("device-hsm.pem");
    std::fs::write(&cert, leaf.pem()).unwrap();
    let cfg = Config::from_toml(
        &format!(
            "[x509]\nbackend = \"pkcs11\"\nkey = \"{}\"\ncertificate_file = \"{}\"\n",
            key_uri.to_token_string(),
            cert.display()
        ),
        "test.toml",
        f.hsm.path(),
    )
    .unwrap();
    let identity = Arc::new(Pkcs11X509::from_section(cfg.section("x509").unwrap()).unwrap());

    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![ca.der()],
    }]);
    let attestation = Attestation::X509(identity);
    // issue 23: and over AMQP (the TLS signature made on the token under fe2o3-amqp's connection).
    for client in [
        https_client(&emu, options()),
        mqtt_client(&emu, options()),
        amqp_client(&emu, options()),
    ] {
        assert_assigned(&client.register(&attestation, None).await.unwrap(), "device-hsm");
    }
}

#[tokio::test]
async fn symmetric_key_on_softhsm_signs_the_sas() {
    let key = hsm_core::sas::derive_device_key(GROUP_KEY, "hsm-symm").unwrap();
    let secret_uri = tools::import_secret(&uri("hsm-symm-key"), &key).unwrap();
    let secret = Pkcs11Secret::open(&Pkcs11Uri::parse(&secret_uri.to_token_string()).unwrap()).unwrap();
    let identity = Arc::new(Pkcs11Symmetric::new("hsm-symm".into(), secret));
    assert!(
        hsm_core::SymmetricIdentity::symmetric_key(identity.as_ref()).is_err(),
        "the key stays on the token"
    );
    let emu = emulator(vec![Enrollment::SymmetricGroup {
        name: "fleet".into(),
        primary_key: GROUP_KEY.into(),
        secondary_key: None,
    }]);
    let attestation = Attestation::SymmetricKey(identity);
    // issue 23: and over AMQP (the TLS signature made on the token under fe2o3-amqp's connection).
    for client in [
        https_client(&emu, options()),
        mqtt_client(&emu, options()),
        amqp_client(&emu, options()),
    ] {
        assert_assigned(&client.register(&attestation, None).await.unwrap(), "hsm-symm");
    }
}
