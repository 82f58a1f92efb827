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

/// An example as a user runs it: the binary `name` given `config`, the id scope and the emulator's
/// `endpoint`; the emulator's CA is written beside the configuration, for the runs that trust it.
struct Example {
    binary: PathBuf,
    config: PathBuf,
    endpoint: String,
    ca: PathBuf,
}

impl Example {
    fn new(emu: &Emulator, name: &str, config: &Path, endpoint: String) -> Example {
        let ca = config.with_file_name("emulator-ca.pem");
        std::fs::write(&ca, emu.server_ca_pem()).unwrap();
        Example {
            binary: test_support::examples::binary(env!("CARGO_MANIFEST_DIR"), "dps-device", name),
            config: config.to_path_buf(),
            endpoint,
            ca,
        }
    }

    /// Runs it, given the emulator's CA in `DPS_TRUSTED_CA` when `trusted` (else the example trusts the
    /// Mozilla roots): how it ended and what it printed.
    fn run(&self, trusted: bool) -> (Output, String) {
        let mut cmd = Command::new(&self.binary);
        cmd.arg(&self.config)
            .env("DPS_ID_SCOPE", SCOPE)
            .env("DPS_ENDPOINT", &self.endpoint)
            .env_remove("DPS_TRUSTED_CA");
        if trusted {
            cmd.env("DPS_TRUSTED_CA", &self.ca);
        }
        test_support::examples::run(&mut cmd)
    }
}

/// The example registered `device_id` and printed its assignment to the emulator's hub.
fn assert_assigned(out: &Output, text: &str, device_id: &str) {
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("assigned hub: {HUB}\n")), "{text}");
    assert!(text.contains(&format!("device id: {device_id}\n")), "{text}");
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

    let example = Example::new(&emu, "mqtt_pkcs11_x509", &config, emu.mqtt_endpoint());
    let (out, text) = example.run(true);
    assert_assigned(&out, &text, "example-device");
    assert!(text.contains("status: assigned\n"), "{text}");

    // Without DPS_TRUSTED_CA the Mozilla roots are used: the emulator's CA is not one of them.
    let (out, text) = example.run(false);
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

    let example = Example::new(&emu, "https_symmetric_blocking", &config, emu.global_endpoint());
    let (out, text) = example.run(true);
    assert_assigned(&out, &text, "example-sensor");
    assert!(text.contains("substatus: initialAssignment\n"), "{text}");

    // A key the group did not derive: the service's refusal, not retryable.
    std::fs::write(dir.path().join("group.key"), DEVICE_KEY).unwrap();
    let (out, text) = example.run(true);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the service refused the registration") && text.contains("401"),
        "{text}"
    );
    assert!(!text.contains("(retryable)"), "{text}");
}
