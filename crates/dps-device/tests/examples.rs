//! The examples as a user runs them, against the emulator: the binaries `cargo test` built (it
//! builds every example before running a test), given the id scope, endpoint and trusted CA the way
//! their documentation says (`DPS_ID_SCOPE`, `DPS_ENDPOINT`, `DPS_TRUSTED_CA`) and a configuration
//! file naming the identity: a P-256 key on a real SoftHSM2 token, a group-derived symmetric key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use dps_emulator::{Emulator, Enrollment};
use hsm_core::{Curve, KeyAlgorithm};

fn example(name: &str) -> PathBuf {
    test_support::examples::binary(env!("CARGO_MANIFEST_DIR"), "dps-device", name)
}

/// Run the example `name` with `config`, the emulator's `endpoint` and, when `trusted`, its CA.
fn run(emu: &Emulator, dir: &Path, name: &str, config: &Path, endpoint: &str, trusted: bool) -> (Output, String) {
    let mut cmd = Command::new(example(name));
    cmd.arg(config)
        .env("DPS_ID_SCOPE", SCOPE)
        .env("DPS_ENDPOINT", endpoint)
        .env_remove("DPS_TRUSTED_CA");
    if trusted {
        let ca = dir.join("emulator-ca.pem");
        std::fs::write(&ca, emu.server_ca_pem()).unwrap();
        cmd.env("DPS_TRUSTED_CA", &ca);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn mqtt_pkcs11_x509_provisions_with_a_key_on_softhsm() {
    // The token is made (and SOFTHSM2_CONF set) in this process; the example inherits it.
    let token = test_support::softhsm::fixture();
    let key = hsm_pkcs11::tools::generate_key_pair(&token.uri("object=example-device"), KeyAlgorithm::Ec(Curve::P256))
        .unwrap();
    let signer = hsm_pkcs11::open_signer(&key.to_token_string()).unwrap();
    let ca = Ca::root("examples root");
    let public = hsm_core::csr::SubjectKey::of(signer.as_ref()).unwrap();
    let leaf = ca.certify(test_support::pki::leaf_params("example-device"), &public);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("device.pem"),
        hsm_core::pem::certificates_to_pem(&[leaf]),
    )
    .unwrap();
    let config = dir.path().join("device.toml");
    std::fs::write(
        &config,
        format!(
            "[x509]\nbackend = \"pkcs11\"\nkey = \"{}\"\ncertificate_file = \"device.pem\"\n",
            key.to_token_string()
        ),
    )
    .unwrap();
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![ca.der()],
    }]);

    let (out, text) = run(
        &emu,
        dir.path(),
        "mqtt_pkcs11_x509",
        &config,
        &emu.mqtt_endpoint(),
        true,
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("assigned hub: {HUB}\n")), "{text}");
    assert!(text.contains("device id: example-device\n"), "{text}");
    assert!(text.contains("status: assigned\n"), "{text}");

    // Without DPS_TRUSTED_CA the Mozilla roots are used: the emulator's CA is not one of them.
    let (out, text) = run(
        &emu,
        dir.path(),
        "mqtt_pkcs11_x509",
        &config,
        &emu.mqtt_endpoint(),
        false,
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("error: ") && text.contains("UnknownIssuer"), "{text}");
}

#[test]
fn https_symmetric_blocking_provisions_with_a_group_derived_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("group.key"), GROUP_KEY).unwrap();
    let config = dir.path().join("device.toml");
    std::fs::write(
        &config,
        "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"example-sensor\"\ngroup_key_file = \"group.key\"\n",
    )
    .unwrap();
    let emu = emulator(vec![Enrollment::SymmetricGroup {
        name: "fleet".into(),
        primary_key: GROUP_KEY.into(),
        secondary_key: None,
    }]);

    let (out, text) = run(
        &emu,
        dir.path(),
        "https_symmetric_blocking",
        &config,
        &emu.global_endpoint(),
        true,
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("assigned hub: {HUB}\n")), "{text}");
    assert!(text.contains("device id: example-sensor\n"), "{text}");
    assert!(text.contains("substatus: initialAssignment\n"), "{text}");

    // A key the group did not derive: the service's refusal, not retryable.
    std::fs::write(dir.path().join("group.key"), DEVICE_KEY).unwrap();
    let (out, text) = run(
        &emu,
        dir.path(),
        "https_symmetric_blocking",
        &config,
        &emu.global_endpoint(),
        true,
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the service refused the registration") && text.contains("401"),
        "{text}"
    );
    assert!(!text.contains("(retryable)"), "{text}");
}
