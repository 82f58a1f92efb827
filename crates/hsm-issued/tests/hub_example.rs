//! `examples/hub_telemetry.rs` run against the emulator with a key on a SoftHSM2 token: it provisions with
//! a CSR, sends telemetry with the issued certificate, renews it over the same hub connection, reconnects
//! with the new one and sends again; the hub kept both messages and the store ends on generation 2 with
//! the first certificate gone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(all(feature = "dps", feature = "pkcs11"))]

use std::process::Command;
use std::time::Duration;

use dps_emulator::{Emulator, Enrollment, IssuanceOptions, ServerOptions};
use hsm_issued::{KeySource, Store};
use test_support::emulator::{DEVICE_KEY, HUB, SCOPE};
use test_support::softhsm::TestModule as _;

#[test]
fn hub_telemetry_provisions_sends_renews_over_the_connection_and_sends_again() {
    let dir = tempfile::tempdir().unwrap();
    let token = test_support::softhsm::for_children("hub-example");
    let emu = Emulator::start_with(
        test_support::emulator::config(vec![Enrollment::SymmetricIndividual {
            registration_id: "hub-example-device".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        }]),
        0,
        ServerOptions {
            issuance: IssuanceOptions {
                credentials_delay: Duration::from_millis(300),
                ..IssuanceOptions::default()
            },
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let ca = dir.path().join("server-ca.pem");
    std::fs::write(&ca, emu.server_ca_pem()).unwrap();
    let store_dir = dir.path().join("issued");

    let example = test_support::examples::binary(env!("CARGO_MANIFEST_DIR"), "hsm-issued", "hub_telemetry");
    let output = Command::new(example)
        .envs(token.hsm.environment())
        .args(["--dps", &emu.global_endpoint(), "--id-scope", SCOPE])
        .args(["--hub-endpoint", &emu.mqtt_endpoint()])
        .arg("--trusted-ca")
        .arg(&ca)
        .args(["--registration-id", "hub-example-device", "--symmetric-key", DEVICE_KEY])
        .args(["--keys", &token.uri_on("hub-example", "")])
        .arg("--store")
        .arg(&store_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}\n{stdout}\n{stderr}", output.status);
    let expected = [
        format!("provisioned: device hub-example-device on {HUB}, certificate generation 1"),
        format!("connected to {HUB} as hub-example-device"),
        "sent: telemetry with the first certificate".into(),
        "renewal accepted by the hub (202)".into(),
        "renewed over the hub connection: certificate generation 2".into(),
        format!("connected to {HUB} as hub-example-device"),
        "sent: telemetry with the renewed certificate".into(),
        "the renewed certificate is confirmed; the first one is deleted".into(),
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stderr}");

    let bodies: Vec<_> = emu
        .hub_messages(Some("hub-example-device"))
        .into_iter()
        .map(|m| String::from_utf8(m.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "telemetry with the first certificate",
            "telemetry with the renewed certificate"
        ]
    );
    // The state file alone (files key source: nothing of the token is opened here).
    let state = Store::open(&store_dir, "hub-example-device", KeySource::File, hsm::open_signer)
        .unwrap()
        .state()
        .unwrap();
    assert_eq!(state.current.as_ref().map(|g| g.generation), Some(2), "{state:?}");
    assert!(state.retired.is_none() && state.pending.is_none(), "{state:?}");
}
