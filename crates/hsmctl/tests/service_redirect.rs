//! `hsmctl enrollment delete` and `registrations delete` against a service that answers with a
//! redirect: nothing was deleted, so the command fails (it used to print success and exit 0).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The hostile-service fixture of dps-service's tests (one fixture for both crates).
#[path = "../../dps-service/tests/common/server.rs"]
mod server;

use std::process::Command;

use server::{Server, answer};

const KEY: &str = "b3duZXIta2V5LWZvci10aGUtaHNtY3RsLXRlc3RzLTAwMA==";

#[test]
fn a_redirected_delete_fails() {
    for status in [301, 302, 307] {
        let server = Server::start(move |_, _| answer(status, &[("Location", "https://127.0.0.1:1/elsewhere")], ""));
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &server.ca_pem).unwrap();
        let cs = format!(
            "HostName={};SharedAccessKeyName=owner;SharedAccessKey={KEY}",
            server.endpoint
        );
        for args in [
            &["enrollment", "delete", "dev-1"][..],
            &["enrollment", "delete", "fleet", "--group"][..],
            &["enrollment", "registrations", "delete", "dev-1"][..],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_hsmctl"))
                .args(args)
                .arg("--trusted-ca")
                .arg(&ca)
                .env("DPS_SERVICE_CONNECTION_STRING", &cs)
                .output()
                .unwrap();
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
