//! `hsmctl enrollment ...` against a local HTTPS service that misbehaves or is newer than us: a
//! redirected delete fails (it used to print success and exit 0); `--api-version` is sent, and the
//! fields a newer version adds are printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::OWNER_KEY;
use test_support::https_server::{Server, answer};

/// `hsmctl ARGS --trusted-ca CA` against `server` (its CA written into `dir`), with the owner's
/// connection string in the environment.
fn hsmctl_against(server: &Server, dir: &Path, args: &[&str]) -> Output {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let cs = format!(
        "HostName={};SharedAccessKeyName=owner;SharedAccessKey={OWNER_KEY}",
        server.endpoint
    );
    Command::new(env!("CARGO_BIN_EXE_hsmctl"))
        .args(args)
        .arg("--trusted-ca")
        .arg(&ca)
        .env("DPS_SERVICE_CONNECTION_STRING", &cs)
        .output()
        .unwrap()
}

#[test]
fn a_redirected_delete_fails() {
    for status in [301, 302, 307] {
        let server = Server::start(move |_, _| answer(status, &[("Location", "https://127.0.0.1:1/elsewhere")], ""));
        let dir = tempfile::tempdir().unwrap();
        for args in [
            &["enrollment", "delete", "dev-1"][..],
            &["enrollment", "delete", "fleet", "--group"][..],
            &["enrollment", "registrations", "delete", "dev-1"][..],
        ] {
            let out = hsmctl_against(&server, dir.path(), args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{args:?} after a {status}: exit 0; stderr: {stderr}"
            );
            assert!(stderr.contains(&format!("answered {status} (a redirect")), "{stderr}");
        }
        assert_eq!(server.requests().len(), 3, "no redirect followed");
    }
}

#[test]
fn the_api_version_is_sent_and_newer_fields_are_shown() {
    let server = Server::start(|_, _| {
        answer(
            200,
            &[],
            r#"{"registrationId":"dev-1","attestation":{"type":"symmetricKey"},"credentialPolicyName":"issuance","futureField":{"kept":true}}"#,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let run = |version: &str| {
        hsmctl_against(
            &server,
            dir.path(),
            &["enrollment", "get", "dev-1", "--api-version", version],
        )
    };
    let out = run("2026-04-01");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("credentialPolicyName") && stdout.contains("futureField"),
        "{stdout}"
    );
    assert_eq!(server.requests()[0].query(), "api-version=2026-04-01");
    let out = run("latest");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
    assert_eq!(
        server.requests().len(),
        1,
        "a bad version is refused before any request"
    );
}
