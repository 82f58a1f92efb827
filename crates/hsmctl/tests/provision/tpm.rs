//! TPM attestation on swtpm over HTTPS, AMQP and AMQP-WS, and TPM over MQTT refused before connecting (built
//! with the `tpm` feature).

use std::path::Path;
use std::process::Command;

use dps_emulator::{Emulator, Enrollment};

use crate::common::{HUB, SCOPE, provision};
use crate::setup::*;

/// TPM attestation on a fresh swtpm: enrollment record from `hsmctl enrollment`, then
/// `hsmctl provision` (activation challenge, SAS signed in the TPM, hub key at assignment) over HTTPS
/// (the challenge a 401), AMQP and AMQP-WS (the SASL TPM mechanism); a second run reuses the persisted
/// keys; a TPM with another EK is refused.
#[test]
fn tpm_attestation_is_assigned() {
    use hsm_tpm::testing::Swtpm;
    let dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start().unwrap();
    let cfg = dir.path().join("tpm.toml");
    std::fs::write(&cfg, format!("[tpm]\nbackend = \"tpm\"\ntcti = \"{}\"\n", tpm.tcti())).unwrap();
    let record: serde_json::Value =
        serde_json::from_str(&hsmctl(&["enrollment", "record", "--config", cfg.to_str().unwrap()])).unwrap();
    let registration_id = record["registrationId"].as_str().unwrap().to_string();
    let ek = record["attestation"]["tpm"]["endorsementKey"]
        .as_str()
        .unwrap()
        .to_string();

    let emulator = Emulator::start(test_support::emulator::config(vec![Enrollment::TpmIndividual {
        registration_id: registration_id.clone(),
        endorsement_key: ek,
    }]))
    .unwrap();
    let server_ca = dir.path().join("server-ca.pem");
    std::fs::write(&server_ca, emulator.server_ca_pem()).unwrap();
    let provision_over = |cfg: &Path, transport: &str| provision(&emulator, &server_ca, Some(transport), cfg, &[]);
    let provision = |cfg: &Path| provision_over(cfg, "https");
    for transport in ["https", "https", "amqp", "amqp-ws"] {
        let out = ok(&provision_over(&cfg, transport));
        assert!(
            out.contains(&format!("device id: {registration_id}")),
            "{transport}: {out}"
        );
        assert!(out.contains(&format!("assigned hub: {HUB}")), "{transport}: {out}");
    }

    let other = Swtpm::start().unwrap();
    let other_cfg = dir.path().join("other.toml");
    std::fs::write(
        &other_cfg,
        format!("[tpm]\nbackend = \"tpm\"\ntcti = \"{}\"\n", other.tcti()),
    )
    .unwrap();
    let out = provision(&other_cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("401"), "{stderr}");
    let out = provision_over(&other_cfg, "amqp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("refused the TPM attestation"), "{stderr}");
}

/// DPS takes TPM attestation over HTTPS and AMQP only: `--transport mqtt` with a TPM identity is refused, naming the
/// transport, before any connection to the service (a listener counts the attempts).
#[test]
fn tpm_over_mqtt_is_refused_before_connecting() {
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let tpm = hsm_tpm::testing::Swtpm::start().unwrap();
    let cfg = dir.path().join("tpm.toml");
    std::fs::write(&cfg, format!("[tpm]\nbackend = \"tpm\"\ntcti = \"{}\"\n", tpm.tcti())).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for _ in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let out = Command::new(env!("CARGO_BIN_EXE_hsmctl"))
        .args([
            "provision",
            "--transport",
            "mqtt",
            "--id-scope",
            SCOPE,
            "--global-endpoint",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        stderr.contains("TPM") && stderr.contains("MQTT") && stderr.contains("HTTPS, AMQP, AMQP over WebSockets only"),
        "{stderr}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "connected to the service");
}
