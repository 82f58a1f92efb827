//! Keys that never leave a SoftHSM2 token, over HTTPS and MQTT: an x509 identity whose TLS signatures are made on the token, and
//! a symmetric key whose SAS is an HMAC computed on the token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use dps_device::Attestation;
use dps_emulator::Enrollment;
use hsm_core::config::Config;
use hsm_core::{Curve, KeyAlgorithm};
use hsm_pkcs11::{Pkcs11Secret, Pkcs11Symmetric, Pkcs11Uri, Pkcs11X509, tools};
use test_support::softhsm;

fn fixture() -> &'static softhsm::Fixture {
    softhsm::fixture()
}

fn uri(object: &str) -> String {
    fixture().uri(&format!("object={object}"))
}

#[tokio::test]
async fn x509_key_on_softhsm_is_assigned() {
    let f = fixture();
    let key_uri = tools::generate_key_pair(&uri("device-hsm"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let signer = hsm_pkcs11::open_signer(&key_uri.to_token_string()).unwrap();
    let ca = Ca::root("hsm root");
    let public = hsm_core::csr::SubjectKey::of(signer.as_ref()).unwrap();
    assert_eq!(
        rcgen::PublicKeyData::subject_public_key_info(&public),
        signer.public_key_spki().unwrap()
    );
    let leaf = ca.certify(test_support::pki::leaf_params("device-hsm"), &public);
    let cert = f.hsm.path().join("device-hsm.pem");
    std::fs::write(&cert, hsm_core::pem::certificates_to_pem(&[leaf])).unwrap();
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
    for client in [https_client(&emu, options()), mqtt_client(&emu, options())] {
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
    for client in [https_client(&emu, options()), mqtt_client(&emu, options())] {
        assert_assigned(&client.register(&attestation, None).await.unwrap(), "hsm-symm");
    }
}
