//! Issue 21, item 10: the errors a new user runs into first name the likely cause, checked
//! against the real peers: the emulator's HTTPS port without its CA trusted, MQTT pointed at
//! the HTTPS port, and SoftHSM2 without SOFTHSM2_CONF.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output};

use common::SCOPE;
use dps_emulator::{Emulator, Enrollment};

const DEVICE_KEY: &str = "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==";

fn stderr(out: &Output) -> String {
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn emulator_and_device() -> (Emulator, tempfile::TempDir) {
    let emulator = Emulator::start(test_support::emulator::config(vec![Enrollment::SymmetricIndividual {
        registration_id: "device-sym".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("device.toml"),
        format!(
            "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"device-sym\"\nsymmetric_key = \"{DEVICE_KEY}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("server-ca.pem"), emulator.server_ca_pem()).unwrap();
    (emulator, dir)
}

fn provision(dir: &std::path::Path, endpoint: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hsmctl"))
        .args([
            "provision",
            "--id-scope",
            SCOPE,
            "--global-endpoint",
            endpoint,
            "--config",
        ])
        .arg(dir.join("device.toml"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn an_untrusted_server_ca_says_to_pass_trusted_ca() {
    let (emulator, dir) = emulator_and_device();
    let e = stderr(&provision(dir.path(), &emulator.global_endpoint(), &[]));
    assert!(e.contains("UnknownIssuer"), "{e}");
    assert!(
        e.contains("a CA this client does not trust") && e.contains("--trusted-ca"),
        "{e}"
    );
}

#[test]
fn mqtt_pointed_at_the_https_port_says_the_port_does_not_speak_mqtt() {
    let (emulator, dir) = emulator_and_device();
    let ca = dir.path().join("server-ca.pem");
    let out = provision(
        dir.path(),
        &emulator.global_endpoint(),
        &["--transport", "mqtt", "--trusted-ca", ca.to_str().unwrap()],
    );
    let e = stderr(&out);
    assert!(e.contains("Expected ConnAck packet"), "{e}");
    assert!(e.contains("this port does not speak MQTT"), "{e}");
    // The hint is for this case only: the right port registers.
    let out = provision(
        dir.path(),
        &emulator.mqtt_endpoint(),
        &["--transport", "mqtt", "--trusted-ca", ca.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn no_softhsm_token_without_softhsm2_conf_names_the_variable() {
    let uri = format!(
        "pkcs11:token=no-such-token-21?module-path={}",
        hsm_pkcs11::DEFAULT_MODULE
    );
    let list = |conf: Option<&std::path::Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hsmctl"));
        c.args(["pkcs11", "list", "--uri", &uri]).env_remove("SOFTHSM2_CONF");
        if let Some(conf) = conf {
            c.env("SOFTHSM2_CONF", conf);
        }
        stderr(&c.output().unwrap())
    };
    let e = list(None);
    assert!(
        e.contains("no token matches") && e.contains("SOFTHSM2_CONF is not set"),
        "{e}"
    );
    // With SOFTHSM2_CONF set (a configuration of its own, with no such token) there is no such hint.
    let hsm = test_support::softhsm::create();
    let e = list(Some(hsm.conf()));
    assert!(e.contains("no token matches") && !e.contains("SOFTHSM2_CONF"), "{e}");
}
