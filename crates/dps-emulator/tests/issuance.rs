//! Certificate issuance at the HTTP level: `csr` checks, the api-version gate, a given issuing CA, and the
//! binary's issuance flags. (The device-side flows, MQTT and `$iothub/credentials` included, are tested
//! from dps-device.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};

use base64::Engine as _;
use common::*;
use dps_emulator::{Emulator, Enrollment, IssuanceOptions, IssuingCa, ServerOptions};
use serde_json::json;

const KEY: &str = "cHJpbWFyeS1rZXktZm9yLXRlc3RzLTAxMjM0NTY3ODk=";
const ID: &str = "issue-device";

fn enrollment() -> Enrollment {
    Enrollment::SymmetricIndividual {
        registration_id: ID.into(),
        primary_key: KEY.into(),
        secondary_key: None,
    }
}

fn csr_b64(cn: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(test_support::pki::csr(cn, KeyType::P384).0)
}

/// PUT register with `body` and `api_version`; then, on 202, the assigned answer.
fn register(emu: &Emulator, api_version: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let agent = agent(emu, None, Tls::Any);
    let auth = sas(ID, KEY, now() + 600);
    let url = format!(
        "https://{}/{SCOPE}/registrations/{ID}/register?api-version={api_version}",
        emu.global_endpoint()
    );
    let (status, answer) = outcome(agent.put(&url).set("Authorization", &auth).send_json(body));
    if status != 202 {
        return (status, answer);
    }
    let operation = answer["operationId"].as_str().unwrap();
    outcome(
        agent
            .get(&operation_url(emu, ID, operation))
            .set("Authorization", &auth)
            .call(),
    )
}

#[test]
fn csr_needs_an_api_version_that_knows_it() {
    let emu = Emulator::start(config(vec![enrollment()])).unwrap();
    let (status, body) = register(&emu, "2021-06-01", json!({"registrationId": ID, "csr": csr_b64(ID)}));
    assert_eq!((status, body["errorCode"].as_u64()), (400, Some(400004)), "{body}");
    assert!(body["message"].as_str().unwrap().contains("does not know it"), "{body}");
    for version in ["2025-07-01-preview", "2026-11-01"] {
        let (status, body) = register(&emu, version, json!({"registrationId": ID, "csr": csr_b64(ID)}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["registrationState"]["issuedCertificateChain"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}

#[test]
fn csr_must_be_base64_der_without_pem_armour() {
    let emu = Emulator::start(config(vec![enrollment()])).unwrap();
    for (csr, needle) in [
        (json!("-----BEGIN CERTIFICATE REQUEST-----"), "without PEM armour"),
        (json!("***"), "not base64"),
        (json!(7), "must be a string"),
        (json!("AAEC"), "not a DER PKCS#10"),
    ] {
        let (status, body) = register(&emu, "2025-07-01-preview", json!({"registrationId": ID, "csr": csr}));
        assert_eq!((status, body["errorCode"].as_u64()), (400, Some(400004)), "{body}");
        assert!(body["message"].as_str().unwrap().contains(needle), "{needle}: {body}");
    }
}

#[test]
fn a_given_issuing_ca_signs_the_chain() {
    let ca = Ca::root_with("given issuing CA", KeyType::P384, |p| {
        p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign]
    });
    let emu = Emulator::start_with(
        config(vec![enrollment()]),
        0,
        ServerOptions {
            issuance: IssuanceOptions {
                validity_days: 7,
                ca: Some(IssuingCa {
                    certificate_pem: ca.pem(),
                    key_pem: ca.key_pem().into(),
                }),
                ..IssuanceOptions::default()
            },
            ..ServerOptions::default()
        },
    )
    .unwrap();
    assert_eq!(emu.issuing_ca_pem(), ca.pem());
    let (status, body) = register(
        &emu,
        "2025-07-01-preview",
        json!({"registrationId": ID, "csr": csr_b64(ID)}),
    );
    assert_eq!(status, 200, "{body}");
    let chain = body["registrationState"]["issuedCertificateChain"].as_array().unwrap();
    let root = base64::engine::general_purpose::STANDARD
        .decode(chain[1].as_str().unwrap())
        .unwrap();
    assert_eq!(root, ca.der().to_vec());
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(chain[0].as_str().unwrap())
        .unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let days = leaf.validity().time_to_expiration().unwrap().whole_days();
    assert!((6..=7).contains(&days), "validity {days} days");
}

#[test]
fn the_binary_writes_the_issuing_ca_and_refuses_a_validity_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dps.toml");
    std::fs::write(&config, test_support::emulator::toml_config()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dps-emulator"))
        .arg("--config")
        .arg(&config)
        .args(["--certificate-validity-days", "91"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("outside 7 to 90"), "{stderr}");

    let ca_out = dir.path().join("issuing-ca.pem");
    let emu = test_support::emulator::Process::start(
        env!("CARGO_BIN_EXE_dps-emulator"),
        dir.path(),
        &test_support::emulator::toml_config(),
        &["--issuing-ca-out".as_ref(), ca_out.as_os_str()],
    );
    drop(emu);
    let pem = std::fs::read_to_string(&ca_out).unwrap();
    let der = hsm_core::pem::parse_certificates("issuing CA", pem.as_bytes()).unwrap();
    let (_, root) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
    assert_eq!(
        root.public_key()
            .algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_oid()
            .unwrap(),
        x509_parser::oid_registry::OID_NIST_EC_P384
    );
}

#[test]
fn the_status_lookup_never_returns_the_chain_and_refuses_a_csr() {
    let emu = Emulator::start(config(vec![enrollment()])).unwrap();
    let (status, body) = register(
        &emu,
        "2025-07-01-preview",
        json!({"registrationId": ID, "csr": csr_b64(ID)}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["registrationState"]["issuedCertificateChain"].is_array());
    let agent = agent(&emu, None, Tls::Any);
    let url = format!(
        "https://{}/{SCOPE}/registrations/{ID}?api-version=2025-07-01-preview",
        emu.global_endpoint()
    );
    let auth = sas(ID, KEY, now() + 600);
    let (status, state) = outcome(
        agent
            .post(&url)
            .set("Authorization", &auth)
            .send_json(json!({"registrationId": ID})),
    );
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["assignedHub"], HUB);
    assert_eq!(state["etag"], body["registrationState"]["etag"]);
    assert!(state.get("issuedCertificateChain").is_none(), "{state}");
    let (status, refused) = outcome(
        agent
            .post(&url)
            .set("Authorization", &auth)
            .send_json(json!({"registrationId": ID, "csr": csr_b64(ID)})),
    );
    assert_eq!(
        (status, refused["errorCode"].as_u64()),
        (400, Some(400004)),
        "{refused}"
    );
    assert!(
        refused["message"].as_str().unwrap().contains("must not carry a csr"),
        "{refused}"
    );
}
