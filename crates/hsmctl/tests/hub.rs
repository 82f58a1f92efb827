//! `hsmctl hub send` against the emulator's IoT Hub: a provisioned symmetric-key device sends two messages
//! over MQTT and one over MQTT over WebSockets (the hub keeps them); a key DPS did not register is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{HUB, SCOPE};
use dps_emulator::{Emulator, Enrollment};

const DEVICE_KEY: &str = "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==";
const OTHER_KEY: &str = "b3RoZXIta2V5LW5vdC1yZWdpc3RlcmVkLWF0LWRwcw==";

fn hsmctl(args: &[&str], config: &Path, server_ca: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hsmctl"))
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--trusted-ca")
        .arg(server_ca)
        .output()
        .unwrap()
}

fn config(dir: &Path, name: &str, key: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("[symmetric_key]\nbackend = \"file\"\nregistration_id = \"hub-device\"\nsymmetric_key = \"{key}\"\n"),
    )
    .unwrap();
    path
}

#[test]
fn hub_send_delivers_telemetry_and_a_wrong_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(test_support::emulator::config(vec![Enrollment::SymmetricIndividual {
        registration_id: "hub-device".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]))
    .unwrap();
    let server_ca = dir.path().join("server-ca.pem");
    std::fs::write(&server_ca, emu.server_ca_pem()).unwrap();
    let device = config(dir.path(), "device.toml", DEVICE_KEY);
    let endpoint = emu.global_endpoint();
    let provisioned = hsmctl(
        &["provision", "--id-scope", SCOPE, "--global-endpoint", &endpoint],
        &device,
        &server_ca,
    );
    assert!(provisioned.status.success(), "{provisioned:?}");

    let mqtt = emu.mqtt_endpoint();
    let send = |config: &Path, transport: &str, endpoint: &str, messages: &[&str]| {
        let mut args = vec!["hub", "send", "--hub", HUB, "--device-id", "hub-device"];
        args.extend(["--transport", transport, "--endpoint", endpoint]);
        for m in messages {
            args.extend(["--message", m]);
        }
        hsmctl(&args, config, &server_ca)
    };
    let out = send(&device, "mqtt", &mqtt, &["first", "second"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            format!("connected to {HUB} as hub-device over mqtt").as_str(),
            "sent: first (acknowledged)",
            "sent: second (acknowledged)",
        ]
    );
    let out = send(&device, "mqtt-ws", &endpoint, &["third"]);
    assert!(out.status.success(), "{out:?}");
    let bodies: Vec<_> = emu
        .hub_messages(Some("hub-device"))
        .into_iter()
        .map(|m| String::from_utf8(m.body).unwrap())
        .collect();
    assert_eq!(bodies, ["first", "second", "third"]);

    let imposter = config(dir.path(), "imposter.toml", OTHER_KEY);
    let out = send(&imposter, "mqtt", &mqtt, &["nope"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("refused"), "{stderr}");
    assert_eq!(emu.hub_messages(Some("hub-device")).len(), 3);
}
