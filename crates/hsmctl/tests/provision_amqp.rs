//! `hsmctl provision --transport amqp|amqp-ws` against the emulator's AMQP listener and its HTTPS port
//! (issue 23): x509 assigned over both, a symmetric key assigned, a wrong key refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{HUB, SCOPE, ca};
use dps_emulator::{Emulator, Enrollment};

const DEVICE_KEY: &str = "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==";

fn provision(emulator: &Emulator, dir: &Path, config: &Path) -> Output {
    provision_over(emulator, dir, config, "amqp")
}

/// `amqp` on the AMQP port, `amqp-ws` on the HTTPS port.
fn provision_over(emulator: &Emulator, dir: &Path, config: &Path, transport: &str) -> Output {
    let server_ca = dir.join("server-ca.pem");
    std::fs::write(&server_ca, emulator.server_ca_pem()).unwrap();
    let endpoint = match transport {
        "amqp" => emulator.amqp_endpoint(),
        _ => emulator.global_endpoint(),
    };
    Command::new(env!("CARGO_BIN_EXE_hsmctl"))
        .args([
            "provision",
            "--transport",
            transport,
            "--id-scope",
            SCOPE,
            "--global-endpoint",
        ])
        .arg(endpoint)
        .arg("--trusted-ca")
        .arg(&server_ca)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn x509_and_symmetric_key_over_amqp() {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("amqp group root");
    let emulator = Emulator::start(test_support::emulator::config(vec![
        Enrollment::X509Group {
            name: "x509-group".into(),
            ca: vec![root.der()],
        },
        Enrollment::SymmetricIndividual {
            registration_id: "device-sym".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        },
    ]))
    .unwrap();

    let leaf = root.leaf("device-x509-amqp");
    std::fs::write(
        dir.path().join("chain.pem"),
        format!("{}{}", leaf.cert_pem(), root.pem()),
    )
    .unwrap();
    std::fs::write(dir.path().join("key.pem"), leaf.key_pem()).unwrap();
    let x509 = dir.path().join("x509.toml");
    std::fs::write(
        &x509,
        "[x509]\nbackend = \"file\"\ncertificate = \"chain.pem\"\nprivate_key = \"key.pem\"\n",
    )
    .unwrap();
    for transport in ["amqp", "amqp-ws"] {
        let out = provision_over(&emulator, dir.path(), &x509, transport);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{transport}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("registration id: device-x509-amqp"), "{stdout}");
        assert!(stdout.contains(&format!("assigned hub: {HUB}")), "{stdout}");
    }

    let symm = |name: &str, key: &str| {
        let cfg = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"device-sym\"\nsymmetric_key = \"{key}\"\n"
            ),
        )
        .unwrap();
        cfg
    };
    let out = provision(&emulator, dir.path(), &symm("good", DEVICE_KEY));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("registration id: device-sym"), "{stdout}");

    let out = provision(&emulator, dir.path(), &symm("bad", "d3Jvbmcta2V5LWZvci10aGUtZGV2aWNl"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("AMQP") && stderr.contains("refused the SASL authentication (outcome auth"),
        "{stderr}"
    );
}
