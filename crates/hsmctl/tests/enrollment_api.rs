//! `hsmctl enrollment ...` against the emulator's service API: create from a device configuration, then
//! the device provisions with it; update, list, bulk (partial failure, re-run), registrations, delete.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

const DEVICE_KEY: &str = "ZGV2aWNlLWtleS1mb3ItdGhlLWhzbWN0bC1jbGktdGVzdA==";

fn run(args: &[&str], env_cs: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hsmctl"));
    c.args(args).env_remove("DPS_SERVICE_CONNECTION_STRING");
    if let Some(cs) = env_cs {
        c.env("DPS_SERVICE_CONNECTION_STRING", cs);
    }
    c.output().unwrap()
}

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn enrollments_made_with_hsmctl_provision_devices() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ServiceApi {
        emulator: emu,
        server_ca: ca_file,
        connection_string: cs,
        connection_string_file: cs_file,
    } = service_api(d);
    let svc = ["--connection-string-file", p(&cs_file), "--trusted-ca", p(&ca_file)];

    // The device identities a factory line just made: a symmetric key and an x509 certificate.
    std::fs::write(
        d.join("sym.toml"),
        format!(
            "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"cli-sym\"\nsymmetric_key = \"{DEVICE_KEY}\"\n"
        ),
    )
    .unwrap();
    let root = ca("cli root");
    x509_device(d, "x509", &root, "cli-x509");
    let provision = |config: &str| {
        run(
            &[
                "provision",
                "--config",
                config,
                "--id-scope",
                SCOPE,
                "--global-endpoint",
                &emu.global_endpoint(),
                "--trusted-ca",
                p(&ca_file),
                "--timeout",
                "20",
            ],
            None,
        )
    };

    for (config, id) in [("sym.toml", "cli-sym"), ("x509.toml", "cli-x509")] {
        let config = d.join(config);
        let before = failed(provision(p(&config)));
        assert!(before.contains("401") || before.contains("not"), "{before}");
        let out: Value = serde_json::from_str(&ok(&run(
            &[&["enrollment", "create", "--config", p(&config)][..], &svc[..]].concat(),
            None,
        )))
        .unwrap();
        assert_eq!(out["registrationId"], id, "{out}");
        assert!(out["etag"].is_string(), "{out}");
        let again = failed(run(
            &[&["enrollment", "create", "--config", p(&config)][..], &svc[..]].concat(),
            None,
        ));
        assert!(
            again.contains("exists") && again.contains("enrollment update"),
            "{again}"
        );
        let assigned = ok(&provision(p(&config)));
        assert!(assigned.contains(&format!("registration id: {id}")), "{assigned}");
    }

    // A group from the same identity's chain (its CA): another device of that CA then provisions.
    let out: Value = serde_json::from_str(&ok(&run(
        &[
            &[
                "enrollment",
                "create",
                "--config",
                p(&d.join("x509.toml")),
                "--group",
                "cli-fleet",
            ][..],
            &svc[..],
        ]
        .concat(),
        None,
    )))
    .unwrap();
    assert_eq!(out["enrollmentGroupId"], "cli-fleet", "{out}");
    assert!(
        out["attestation"]["x509"]["signingCertificates"]["primary"]["info"]["subjectName"]
            .as_str()
            .unwrap()
            .contains("cli root"),
        "{out}"
    );
    let fleet = x509_device(d, "fleet", &root, "fleet-dev");
    let assigned = ok(&provision(p(&fleet)));
    assert!(assigned.contains("registration id: fleet-dev"), "{assigned}");

    // The connection string from the environment; disabling refuses the next registration.
    let out = ok(&run(
        &[
            "enrollment",
            "update",
            "cli-sym",
            "--status",
            "disabled",
            "--trusted-ca",
            p(&ca_file),
        ],
        Some(&cs),
    ));
    assert!(out.contains("\"provisioningStatus\": \"disabled\""), "{out}");
    failed(provision(p(&d.join("sym.toml"))));

    let state: Value = serde_json::from_str(&ok(&run(
        &[&["enrollment", "registrations", "get", "cli-x509"][..], &svc[..]].concat(),
        None,
    )))
    .unwrap();
    assert_eq!(state["status"], "assigned", "{state}");

    // Bulk from CSV: one bad row named by its id and line; a re-run reports the rest as existing.
    let mut csv = String::from("registrationId,attestation,primaryKey\n");
    for i in 0..12 {
        csv.push_str(&format!("bulk-{i},symmetricKey,{DEVICE_KEY}\n"));
    }
    csv.push_str("bad id!,symmetricKey,\n");
    let csv_file = d.join("devices.csv");
    std::fs::write(&csv_file, csv).unwrap();
    let bulk = [&["enrollment", "bulk", p(&csv_file), "--in-flight", "2"][..], &svc[..]].concat();
    let first = failed(run(&bulk, None));
    assert!(first.contains("bad id! (line 14): failed:"), "{first}");
    assert!(
        first.contains("13 records: 12 done, 0 already existed, 1 failed"),
        "{first}"
    );
    let second = failed(run(&bulk, None));
    assert!(second.contains("bulk-3 (line 5): already exists"), "{second}");
    assert!(
        second.contains("13 records: 0 done, 12 already existed, 1 failed"),
        "{second}"
    );

    let list = ok(&run(
        &[&["enrollment", "list", "--page-size", "5"][..], &svc[..]].concat(),
        None,
    ));
    assert_eq!(list.lines().count(), 14, "{list}");
    for line in list.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }

    ok(&run(
        &[&["enrollment", "delete", "bulk-0"][..], &svc[..]].concat(),
        None,
    ));
    let gone = failed(run(&[&["enrollment", "get", "bulk-0"][..], &svc[..]].concat(), None));
    assert!(gone.contains("not found"), "{gone}");

    // A connection string on the command line works, with a warning that never shows the key.
    let out = run(
        &[
            "enrollment",
            "get",
            "bulk-1",
            "--connection-string",
            &cs,
            "--trusted-ca",
            p(&ca_file),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("warning: --connection-string"), "{stderr}");
    assert!(!stderr.contains(OWNER_KEY));
    assert!(ok(&out).contains("\"registrationId\": \"bulk-1\""));
    let none = failed(run(&["enrollment", "list"], None));
    assert!(none.contains("DPS_SERVICE_CONNECTION_STRING"), "{none}");
}

/// A TPM enrolled through the service API from its own EK (`enrollment create --config`, on a fresh
/// swtpm) is then assigned through the activation challenge.
#[cfg(feature = "tpm")]
#[test]
fn tpm_enrolled_from_its_ek_is_assigned() {
    let tpm = hsm_tpm::testing::Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ServiceApi {
        emulator: emu,
        server_ca: ca_file,
        connection_string: cs,
        ..
    } = service_api(d);
    let cfg = d.join("tpm.toml");
    std::fs::write(&cfg, format!("[tpm]\nbackend = \"tpm\"\ntcti = \"{}\"\n", tpm.tcti())).unwrap();

    let created: Value = serde_json::from_str(&ok(&run(
        &["enrollment", "create", "--config", p(&cfg), "--trusted-ca", p(&ca_file)],
        Some(&cs),
    )))
    .unwrap();
    assert_eq!(created["attestation"]["type"], "tpm", "{created}");
    let id = created["registrationId"].as_str().unwrap();
    let out = ok(&run(
        &[
            "provision",
            "--config",
            p(&cfg),
            "--id-scope",
            SCOPE,
            "--global-endpoint",
            &emu.global_endpoint(),
            "--trusted-ca",
            p(&ca_file),
            "--timeout",
            "30",
        ],
        None,
    ));
    assert!(out.contains(&format!("registration id: {id}")), "{out}");
    assert!(out.contains(&format!("assigned hub: {HUB}")), "{out}");
}
