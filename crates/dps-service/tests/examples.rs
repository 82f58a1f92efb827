//! The examples as a user runs them, against the emulator's service API: the binaries `cargo test`
//! built (it builds every example before running a test), the connection string and the emulator's
//! CA given as the examples document (`DPS_CONNECTION_STRING`, `DPS_ENDPOINT`, `DPS_TRUSTED_CA`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use dps_emulator::Emulator;

fn example(name: &str) -> PathBuf {
    test_support::examples::binary(env!("CARGO_MANIFEST_DIR"), "dps-service", name)
}

fn run(emu: &Emulator, dir: &Path, name: &str, args: &[&str]) -> (Output, String) {
    let ca = dir.join("emulator-ca.pem");
    std::fs::write(&ca, emu.server_ca_pem()).unwrap();
    let mut cmd = Command::new(example(name));
    cmd.args(args)
        .env(
            "DPS_CONNECTION_STRING",
            // The emulator checks the token's resource against its own host name.
            format!(
                "HostName={};SharedAccessKeyName={OWNER};SharedAccessKey={OWNER_KEY}",
                emu.global_endpoint()
            ),
        )
        .env("DPS_ENDPOINT", emu.global_endpoint())
        .env("DPS_TRUSTED_CA", &ca);
    test_support::examples::run(&mut cmd)
}

#[test]
fn the_enrollments_example_creates_disables_finds_and_deletes() {
    let emu = start();
    let dir = tempfile::tempdir().unwrap();
    let (out, text) = run(&emu, dir.path(), "enrollments", &["example-0001"]);
    assert!(out.status.success(), "{text}");
    for line in [
        "created example-0001",
        "disabled example-0001",
        "found example-0001 status Some(Disabled)",
        "deleted example-0001",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }
    assert!(owner(&emu).get_enrollment("example-0001").unwrap_err().is_not_found());

    // A service it cannot trust: the error and its TLS cause, and a failure exit.
    let other = start();
    let (out, text) = {
        let ca = dir.path().join("wrong-ca.pem");
        std::fs::write(&ca, emu.server_ca_pem()).unwrap();
        let out = Command::new(example("enrollments"))
            .env(
                "DPS_CONNECTION_STRING",
                format!("HostName=h.example.test;SharedAccessKeyName={OWNER};SharedAccessKey={OWNER_KEY}"),
            )
            .env("DPS_ENDPOINT", other.global_endpoint())
            .env("DPS_TRUSTED_CA", &ca)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        (out, text)
    };
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("the TLS handshake failed") && text.contains("certificate"),
        "{text}"
    );
}

#[test]
fn the_bulk_csv_example_enrolls_a_file_reports_a_bad_line_and_reruns_safely() {
    let emu = start();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("line-7.csv");
    let key = "ZGV2aWNlLWtleS1mb3ItZHBzLXNlcnZpY2UtdGVzdHMtMQ==";
    std::fs::write(
        &csv,
        format!(
            "registrationId,attestation,primaryKey\nline7-a,symmetricKey,{key}\nline7-b,symmetricKey,not*base64\nline7-c,symmetricKey,{key}\n"
        ),
    )
    .unwrap();
    let file = csv.to_str().unwrap();
    let (out, text) = run(&emu, dir.path(), "bulk_csv", &[file]);
    assert!(!out.status.success(), "a failed record fails the run:\n{text}");
    assert!(text.contains("line 3: line7-b failed"), "{text}");
    assert!(
        text.contains("3 records: 2 created, 0 already there, 1 failed"),
        "{text}"
    );
    let c = owner(&emu);
    c.get_enrollment("line7-a").unwrap();
    c.get_enrollment("line7-c").unwrap();

    // The same file again: nothing new, nothing lost.
    let (_, text) = run(&emu, dir.path(), "bulk_csv", &[file]);
    assert!(
        text.contains("3 records: 0 created, 2 already there, 1 failed"),
        "{text}"
    );
}
