//! The `dps-emulator` binary: prints its line, serves, and exits 0 on SIGTERM and SIGINT.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::json;
use test_support::emulator::{Process, toml_config};

const KEY: &str = "cHJpbWFyeS1rZXktZm9yLXRlc3RzLTAxMjM0NTY3ODk=";

fn start(dir: &std::path::Path) -> Process {
    start_with(dir, &[])
}

fn start_with(dir: &std::path::Path, extra: &[&std::ffi::OsStr]) -> Process {
    let toml = format!(
        "{}[[enrollment]]\ntype = \"symmetric-individual\"\nregistration_id = \"sym-device\"\nprimary_key = \"{KEY}\"\n",
        toml_config()
    );
    Process::start(env!("CARGO_BIN_EXE_dps-emulator"), dir, &toml, extra)
}

fn register(endpoint: &str, ca: &str) -> serde_json::Value {
    let agent = ureq::AgentBuilder::new()
        .tls_config(test_support::tls::client_config(ca))
        .build();
    let token = sas("sym-device", KEY, now() + 600);
    let url = format!("https://{endpoint}/{SCOPE}/registrations/sym-device/register?api-version=2021-06-01");
    let r = agent
        .put(&url)
        .set("Authorization", &token)
        .send_json(json!({"registrationId": "sym-device"}))
        .unwrap();
    assert_eq!(r.status(), 202);
    r.into_json().unwrap()
}

fn stop_with(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut emu = start(dir.path());
    assert_eq!(register(&emu.endpoint, &emu.server_ca_pem)["status"], "assigning");
    let (exit, rest, stderr) = emu.stop(signal);
    assert!(exit.success(), "exit {exit:?} after SIG{signal}; stderr: {stderr}");
    assert_eq!(rest, "", "only one line on stdout");
    assert!(std::net::TcpStream::connect(&emu.endpoint).is_err(), "port still open");
}

#[test]
fn mqtt_listens_on_the_port_asked_and_writes_its_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = dir.path().join("mqtt-endpoint");
    let _emu = start_with(
        dir.path(),
        &[
            "--mqtt-port".as_ref(),
            port.to_string().as_ref(),
            "--mqtt-port-out".as_ref(),
            out.as_os_str(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("127.0.0.1:{port}\n"));
    std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A port already taken is a clear start-up error.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = dir.path().join("dps.toml");
    let failed = Command::new(env!("CARGO_BIN_EXE_dps-emulator"))
        .arg("--config")
        .arg(&config)
        .arg("--mqtt-port")
        .arg(taken.local_addr().unwrap().port().to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(failed.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("MQTT"), "{stderr}");
}

#[test]
fn sigterm_stops_it_cleanly() {
    stop_with("TERM");
}

#[test]
fn sigint_stops_it_cleanly() {
    stop_with("INT");
}

#[test]
fn bad_configuration_exits_1_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broken.toml");
    std::fs::write(&config, "id_scope = \"s\"\nport = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dps-emulator"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.toml: port: unknown key"), "{stderr}");
}

/// Issue 21, item 6: a TOML syntax error names the line and the key, never the value (an
/// enrollment's or a service policy's key), in the emulator's output; the same through the
/// library for both of its parsers.
#[test]
fn a_syntax_error_does_not_print_the_key() {
    let secret = "c2VjcmV0LXBvbGljeS1rZXktZm9yLXRlc3Rz";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broken.toml");
    let text = format!(
        "id_scope = \"s\"\n[[service_policy]]\nname = \"p\"\nrights = [\"service\"]\nprimary_key = \"{secret}\n"
    );
    std::fs::write(&config, &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dps-emulator"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(secret), "{stderr}");
    assert!(
        stderr.contains("broken.toml") && stderr.contains("line 5") && stderr.contains("primary_key = <hidden>"),
        "{stderr}"
    );
    let e = dps_emulator::EmulatorConfig::from_toml(&text, dir.path())
        .unwrap_err()
        .to_string();
    assert!(!e.contains(secret) && e.contains("primary_key = <hidden>"), "{e}");
    let e = dps_emulator::ServiceSettings::from_toml(&text, dir.path(), "s.toml")
        .err()
        .unwrap()
        .to_string();
    assert!(!e.contains(secret) && e.contains("primary_key = <hidden>"), "{e}");
}

#[test]
fn help_documents_the_stop_signals() {
    let out = Command::new(env!("CARGO_BIN_EXE_dps-emulator"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--config",
        "--port",
        "--server-ca-out",
        "SIGTERM or SIGINT",
        "listening on 127.0.0.1:PORT",
    ] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
}
