//! `hsmctl provision` and friends against the local DPS emulator over real HTTPS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Ca, HUB, SCOPE, ca};
use dps_emulator::{Emulator, Enrollment};

const GROUP_KEY: &str = "9okJC6lKhmgI33KikQOMre4DvF+vacd9NUl2ATGVC44YeJfOCvzyC1C6KzfcqEqVG3BG8p7Vq5TwEGGfadbhiQ==";
const DEVICE_KEY: &str = "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==";

/// Write a device chain (leaf + issuing CA) and key; return the config path.
fn x509_device(dir: &Path, name: &str, ca: &Ca, cn: &str) -> PathBuf {
    let key_id = ca.leaf(cn);
    let (leaf, key) = (key_id.cert_pem(), key_id.key_pair());
    std::fs::write(dir.join(format!("{name}-chain.pem")), format!("{leaf}{}", ca.pem())).unwrap();
    std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!("[x509]\nbackend = \"file\"\ncertificate = \"{name}-chain.pem\"\nprivate_key = \"{name}-key.pem\"\n"),
    )
    .unwrap();
    cfg
}

fn symm_device(dir: &Path, name: &str, body: &str) -> PathBuf {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, format!("[symmetric_key]\nbackend = \"file\"\n{body}\n")).unwrap();
    cfg
}

struct Env {
    dir: tempfile::TempDir,
    emulator: Emulator,
    server_ca: PathBuf,
    root: Ca,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("test group root");
    let emulator = Emulator::start(test_support::emulator::config(vec![
        Enrollment::X509Group {
            name: "x509-group".into(),
            ca: hsm_core::pem::parse_certificates("root", root.pem().as_bytes()).unwrap(),
        },
        Enrollment::SymmetricIndividual {
            registration_id: "device-sym".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        },
        Enrollment::SymmetricGroup {
            name: "symm-group".into(),
            primary_key: GROUP_KEY.into(),
            secondary_key: None,
        },
    ]))
    .unwrap();
    let server_ca = dir.path().join("server-ca.pem");
    std::fs::write(&server_ca, emulator.server_ca_pem()).unwrap();
    Env {
        dir,
        emulator,
        server_ca,
        root,
    }
}

impl Env {
    fn provision(&self, config: &Path, extra: &[&str]) -> Output {
        self.provision_with(Command::new(env!("CARGO_BIN_EXE_hsmctl")), config, extra)
    }

    fn provision_with(&self, mut command: Command, config: &Path, extra: &[&str]) -> Output {
        command
            .args(["provision", "--id-scope", SCOPE, "--global-endpoint"])
            .arg(self.emulator.global_endpoint())
            .arg("--trusted-ca")
            .arg(&self.server_ca)
            .arg("--config")
            .arg(config)
            .args(extra)
            .output()
            .unwrap()
    }
}

impl Env {
    /// `hsmctl provision --transport mqtt` against the emulator's MQTT listener.
    fn provision_mqtt(&self, config: &Path, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hsmctl"))
            .args([
                "provision",
                "--transport",
                "mqtt",
                "--id-scope",
                SCOPE,
                "--global-endpoint",
            ])
            .arg(self.emulator.mqtt_endpoint())
            .arg("--trusted-ca")
            .arg(&self.server_ca)
            .arg("--config")
            .arg(config)
            .args(extra)
            .output()
            .unwrap()
    }
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("401"), "no 401 in: {stderr}");
    assert!(stderr.contains(&needle.to_lowercase()), "no {needle:?} in: {stderr}");
}

#[test]
fn x509_group_enrollment_is_assigned() {
    let e = env();
    let cfg = x509_device(e.dir.path(), "dev", &e.root, "device-x509");
    let out = ok(&e.provision(&cfg, &[]));
    assert!(out.contains("registration id: device-x509"), "{out}");
    assert!(out.contains(&format!("assigned hub: {HUB}")), "{out}");
    assert!(out.contains("device id: device-x509"), "{out}");
}

#[test]
fn x509_untrusted_chain_is_refused() {
    let e = env();
    let rogue = ca("rogue root");
    let cfg = x509_device(e.dir.path(), "rogue", &rogue, "device-rogue");
    refused(&e.provision(&cfg, &[]), "verify");
}

#[test]
fn x509_cn_mismatch_is_refused() {
    let e = env();
    let cfg = x509_device(e.dir.path(), "dev", &e.root, "device-x509");
    refused(
        &e.provision(&cfg, &["--registration-id", "someone-else"]),
        "does not match",
    );
}

#[test]
fn x509_over_mqtt_is_assigned() {
    let e = env();
    let cfg = x509_device(e.dir.path(), "dev", &e.root, "device-x509-mqtt");
    let out = ok(&e.provision_mqtt(&cfg, &[]));
    assert!(out.contains("registration id: device-x509-mqtt"), "{out}");
    assert!(out.contains(&format!("assigned hub: {HUB}")), "{out}");
    assert!(out.contains("device id: device-x509-mqtt"), "{out}");
}

/// MQTT over WebSockets: on the emulator's HTTPS port, path `/$iothub/websocket`.
#[test]
fn x509_over_mqtt_ws_is_assigned() {
    let e = env();
    let cfg = x509_device(e.dir.path(), "dev", &e.root, "device-x509-ws");
    let out = ok(&e.provision(&cfg, &["--transport", "mqtt-ws"]));
    assert!(out.contains("registration id: device-x509-ws"), "{out}");
    assert!(out.contains(&format!("assigned hub: {HUB}")), "{out}");
}

/// A proxy on plain MQTT is refused before connecting (as in the C SDK: HTTPS and MQTT over
/// WebSockets only); a proxy URL that does not parse is a usage error.
#[test]
fn proxy_on_plain_mqtt_and_a_bad_proxy_url_are_refused() {
    let e = env();
    let cfg = x509_device(e.dir.path(), "dev", &e.root, "device-x509-proxy");
    let out = e.provision_mqtt(&cfg, &["--proxy", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("proxy"), "{err}");
    let out = e.provision(&cfg, &["--proxy", "not a url"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--proxy"), "{err}");
}

#[test]
fn symmetric_group_over_mqtt_is_assigned_with_payload() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "grp",
        &format!("registration_id = \"device-0002\"\ngroup_key = \"{GROUP_KEY}\""),
    );
    let out = ok(&e.provision_mqtt(&cfg, &["--json", "--payload", r#"{"modelId":"dtmi:test;1"}"#]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deviceId"], "device-0002");
    assert_eq!(v["assignedHub"], HUB);
}

#[test]
fn symmetric_wrong_key_over_mqtt_is_refused_at_connect() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "bad",
        "registration_id = \"device-sym\"\nsymmetric_key = \"d3Jvbmcta2V5LXdyb25nLWtleQ==\"",
    );
    let out = e.provision_mqtt(&cfg, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("MQTT") && stderr.contains("CONNACK"), "{stderr}");
}

#[test]
fn symmetric_individual_is_assigned() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "sym",
        &format!("registration_id = \"device-sym\"\nsymmetric_key = \"{DEVICE_KEY}\""),
    );
    let out = ok(&e.provision(&cfg, &[]));
    assert!(out.contains("device id: device-sym"), "{out}");
    assert!(out.contains(&format!("assigned hub: {HUB}")), "{out}");
}

#[test]
fn symmetric_group_is_assigned_with_derived_key() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "grp",
        &format!("registration_id = \"device-0001\"\ngroup_key = \"{GROUP_KEY}\""),
    );
    let out = ok(&e.provision(&cfg, &["--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deviceId"], "device-0001");
    assert_eq!(v["assignedHub"], HUB);
}

#[test]
fn symmetric_wrong_key_is_refused() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "bad",
        "registration_id = \"device-sym\"\nsymmetric_key = \"d3Jvbmcta2V5LXdyb25nLWtleQ==\"",
    );
    refused(&e.provision(&cfg, &[]), "signature");
}

#[test]
fn symmetric_expired_token_is_refused() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "sym",
        &format!("registration_id = \"device-sym\"\nsymmetric_key = \"{DEVICE_KEY}\""),
    );
    refused(&e.provision(&cfg, &["--sas-expiry", "1000"]), "expired");
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "broken",
        "registration_id = \"x\"\nsymmetric_key = \"not base64!\"",
    );
    let out = e.provision(&cfg, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("broken.toml") && stderr.contains("symmetric_key"),
        "{stderr}"
    );
}

/// A reader that went away (`hsmctl ... | head -1`) ends hsmctl quietly, never with a panic;
/// other write errors are reported.
#[test]
fn closed_or_failing_stdout_is_no_panic() {
    let args = [
        "derive-key",
        "--group-key",
        GROUP_KEY,
        "--registration-id",
        "device-0001",
    ];
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_hsmctl"))
        .args(args)
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "closed pipe: {:?} {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A full device: an error naming standard output, exit status 1.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hsmctl"))
        .args(args)
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("writing to standard output") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

fn hsmctl(args: &[&str]) -> String {
    ok(&Command::new(env!("CARGO_BIN_EXE_hsmctl")).args(args).output().unwrap())
}

#[test]
fn derive_key_and_sas_match_the_test_vectors() {
    let derived = hsmctl(&[
        "derive-key",
        "--group-key",
        GROUP_KEY,
        "--registration-id",
        "device-0001",
    ]);
    assert_eq!(derived.trim(), "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ=");
    let token = hsmctl(&[
        "sas",
        "dps",
        "--id-scope",
        SCOPE,
        "--registration-id",
        "device-0001",
        "--key",
        derived.trim(),
        "--expiry",
        "1767225600",
    ]);
    assert_eq!(
        token.trim(),
        "SharedAccessSignature sr=0ne00000A0A%2fregistrations%2fdevice-0001&sig=sWSjFs4E5KYQNTTlI1ZWkgs5AaRrTQvh2QKwI5650IA%3d&se=1767225600&skn=registration"
    );
}

#[test]
fn sas_from_configuration_signs_through_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = symm_device(
        dir.path(),
        "grp",
        &format!("registration_id = \"device-0001\"\ngroup_key = \"{GROUP_KEY}\""),
    );
    let token = hsmctl(&[
        "sas",
        "dps",
        "--id-scope",
        SCOPE,
        "--config",
        cfg.to_str().unwrap(),
        "--expiry",
        "1767225600",
    ]);
    assert!(
        token.contains("sig=sWSjFs4E5KYQNTTlI1ZWkgs5AaRrTQvh2QKwI5650IA%3d"),
        "{token}"
    );
    let hub = hsmctl(&[
        "sas",
        "hub",
        "--host",
        "h.example",
        "--device-id",
        "d1",
        "--key",
        "a2V5",
        "--expiry",
        "10",
    ]);
    assert!(
        hub.starts_with("SharedAccessSignature sr=h.example/devices/d1&sig="),
        "{hub}"
    );
    assert!(!hub.contains("skn="));
}

/// Issue a leaf for a CSR with the test root, through `hsmctl certs --csr`.
fn certify_csr(e: &Env, csr: &Path) -> PathBuf {
    let root_pem = e.dir.path().join("root.pem");
    let root_key = e.dir.path().join("root.key.pem");
    std::fs::write(&root_pem, e.root.pem()).unwrap();
    std::fs::write(&root_key, e.root.key_pem()).unwrap();
    let out = e.dir.path().join("issued");
    let o = out.to_str().unwrap();
    hsmctl(&[
        "certs",
        "--out-dir",
        o,
        "--ca-cert",
        root_pem.to_str().unwrap(),
        "--ca-key",
        root_key.to_str().unwrap(),
        "--csr",
        csr.to_str().unwrap(),
    ]);
    out
}

#[test]
fn x509_key_generated_in_softhsm_is_assigned() {
    let e = env();
    let token = test_support::softhsm::for_children("provision");
    let (hsm, pin) = (&token.hsm, &token.pin_file);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hsmctl"))
            .env("SOFTHSM2_CONF", hsm.conf())
            .args(args)
            .output()
            .unwrap();
        ok(&out)
    };
    let base = format!(
        "pkcs11:token=provision;object=dev-key?pin-source=file:{}",
        pin.display()
    );
    let key_uri = run(&["pkcs11", "keygen", "--uri", &base, "--key-type", "p256"])
        .trim()
        .to_string();
    assert!(!key_uri.contains("pin-value"), "{key_uri}");
    let csr = e.dir.path().join("dev.csr");
    run(&[
        "pkcs11",
        "csr",
        "--uri",
        &key_uri,
        "--common-name",
        "device-hsm",
        "--out",
        csr.to_str().unwrap(),
    ]);
    let issued = certify_csr(&e, &csr);
    run(&[
        "pkcs11",
        "import-cert",
        "--uri",
        &base,
        "--file",
        issued.join("device-hsm.cert.pem").to_str().unwrap(),
    ]);

    // No certificate in the configuration: the certificate object on the token with the key's id.
    let cfg = e.dir.path().join("pkcs11.toml");
    let provision = |uri: &str| {
        std::fs::write(&cfg, format!("[x509]\nbackend = \"pkcs11\"\nkey = \"{uri}\"\n")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_hsmctl"));
        command.env("SOFTHSM2_CONF", hsm.conf());
        e.provision_with(command, &cfg, &[])
    };
    let stdout = ok(&provision(&key_uri));
    assert!(stdout.contains("device id: device-hsm"), "{stdout}");

    // A wrong PIN is one clear error, not a registration.
    let bad_pin = hsm.pin_file("bad.pin", "9999").unwrap();
    let out = provision(&key_uri.replace(&pin.display().to_string(), &bad_pin.display().to_string()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.to_lowercase().contains("pin"), "{stderr}");
}

/// TPM attestation on a fresh swtpm: enrollment record from `hsmctl enrollment`, then
/// `hsmctl provision` (activation challenge, SAS signed in the TPM, hub key at assignment) over HTTPS
/// (the challenge a 401), AMQP and AMQP-WS (the SASL TPM mechanism); a second run reuses the persisted
/// keys; a TPM with another EK is refused.
#[cfg(feature = "tpm")]
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
    let provision_over = |cfg: &Path, transport: &str| {
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
            .arg(cfg)
            .output()
            .unwrap()
    };
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
#[cfg(feature = "tpm")]
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
