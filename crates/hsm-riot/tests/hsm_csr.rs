//! Leaves for keys generated inside an HSM: a SoftHSM2 token makes a P-256 key and a CSR
//! (hsm-pkcs11), the PKI tool issues its certificate under a group CA next to generated
//! leaves, and the PKCS#11 identity provisions against the DPS emulator with it.
//! Needs the `softhsm2` package (a missing module is a failure, not a skip).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use dps_emulator::{Emulator, Enrollment};
use hsm_core::config::Config;
use hsm_core::{Curve, KeyAlgorithm, X509Identity};
use hsm_riot::pki::{PkiOptions, generate};
use test_support::emulator::SCOPE;
use test_support::softhsm::LABEL;

#[test]
fn csr_from_a_softhsm_key_gets_a_certificate_that_provisions() {
    let token = test_support::softhsm::fixture();
    let hsm = &token.hsm;
    let uri = |rest: &str| token.uri(rest);
    let key_uri = hsm_pkcs11::tools::generate_key_pair(&uri("object=hsm-leaf"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let csr_pem = hsm_pkcs11::tools::make_csr(&key_uri.to_token_string(), "hsm-leaf-1").unwrap();
    let csr = hsm.path().join("hsm-leaf.csr");
    std::fs::write(&csr, csr_pem).unwrap();

    let out_dir = hsm.path().join("pki");
    let out = generate(&PkiOptions {
        device_ids: PkiOptions::numbered_ids("soft-", 2),
        csr_files: vec![csr],
        ..common::pki_options(&out_dir, "HSM Group Root", Some("HSM Group Intermediate"))
    })
    .unwrap();
    assert_eq!(out.leaves.len(), 3);
    let hsm_leaf = out.leaves.iter().find(|l| l.from_csr.is_some()).unwrap();
    assert_eq!(hsm_leaf.registration_id, "hsm-leaf-1");

    let cfg = Config::from_toml(
        &format!(
            "[x509]\nbackend = \"pkcs11\"\nkey = \"pkcs11:token={LABEL};object=hsm-leaf\"\npin_file = \"{}\"\ncertificate_file = \"{}\"\n",
            token.pin_file.display(),
            hsm_leaf.chain.display()
        ),
        "hsm.toml",
        hsm.path(),
    )
    .unwrap();
    let identity = hsm_pkcs11::Pkcs11X509::from_section(cfg.section("x509").unwrap()).unwrap();
    assert_eq!(identity.common_name().unwrap(), "hsm-leaf-1");

    let root = hsm_core::pem::parse_certificates("root", &std::fs::read(out.root.unwrap()).unwrap()).unwrap();
    let emu = Emulator::start(test_support::emulator::config(vec![Enrollment::X509Group {
        name: "hsm-group".into(),
        ca: root,
    }]))
    .unwrap();
    let roots = tlsio_bridge::roots_from_pem("emulator", emu.server_ca_pem().as_bytes()).unwrap();
    let config = tlsio_bridge::client_config(roots, Some(&identity), tlsio_bridge::TlsVersions::Both).unwrap();
    let agent = ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .timeout(Duration::from_secs(20))
        .build();
    let url = format!(
        "https://{}/{SCOPE}/registrations/hsm-leaf-1/register?api-version=2021-06-01",
        emu.global_endpoint()
    );
    let resp = agent
        .put(&url)
        .send_json(serde_json::json!({ "registrationId": "hsm-leaf-1" }))
        .unwrap();
    assert_eq!(resp.status(), 202);
}
