#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! TPM registration end to end: a swtpm-backed device against the DPS emulator, over HTTPS,
//! following the C SDK's TPM sequence (get_ek, get_srk, 401 challenge, activate, SAS signed in
//! the TPM, register, poll, activate the key returned at assignment).

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{Swtpm, agent, send, url};
use dps_emulator::{Emulator, EmulatorConfig, Enrollment};
use hsm_core::sas::Audience;
use hsm_core::{SasSigner, TpmIdentity};
use hsm_tpm::{Tpm, TpmOptions};
use serde_json::json;
use tlsio_bridge::TlsVersions;

use test_support::emulator::SCOPE;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn sas(tpm: &mut Tpm, registration_id: &str) -> String {
    let audience = Audience::Dps {
        id_scope: SCOPE.into(),
        registration_id: registration_id.into(),
    };
    let expiry = hsm_core::sas::expiry_in(Duration::from_secs(3600));
    let sig = tpm
        .sign_with_identity(audience.string_to_sign(expiry).as_bytes())
        .unwrap();
    audience.token(&sig, expiry)
}

#[test]
fn tpm_registration_against_the_emulator() {
    let sw = Swtpm::start();
    let mut tpm = Tpm::open(TpmOptions::new(sw.tcti())).unwrap();
    let ek = tpm.endorsement_key().unwrap();
    let srk = tpm.storage_root_key().unwrap();
    let reg = tpm.registration_id();

    let emu = Emulator::start(test_support::emulator::config(vec![Enrollment::TpmIndividual {
        registration_id: reg.clone(),
        endorsement_key: B64.encode(&ek),
    }]))
    .unwrap();
    let agent = agent(&emu, None, TlsVersions::Both);
    let body = json!({
        "registrationId": reg,
        "tpm": {"endorsementKey": B64.encode(&ek), "storageRootKey": B64.encode(&srk)},
    });
    let register = format!("registrations/{reg}/register");

    // 1. No token: the activation challenge.
    let (status, challenge) = send(agent.put(&url(&emu, &register)), Some(&body));
    assert_eq!(status, 401, "{challenge}");
    assert_eq!(challenge["keyName"], "registration");
    let blob = B64.decode(challenge["authenticationKey"].as_str().unwrap()).unwrap();
    tpm.activate_identity_key(&blob).unwrap();

    // A token made with another key is refused.
    let audience = Audience::Dps {
        id_scope: SCOPE.into(),
        registration_id: reg.clone(),
    };
    let forged = audience.sign_with_key(&[7u8; 32], hsm_core::sas::expiry_in(Duration::from_secs(60)));
    let (status, denied) = send(
        agent.put(&url(&emu, &register)).set("Authorization", &forged),
        Some(&body),
    );
    assert_eq!(status, 401);
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .contains("does not match the key issued"),
        "{denied}"
    );

    // 2. The SAS token signed inside the TPM.
    let token = sas(&mut tpm, &reg);
    let (status, op) = send(
        agent.put(&url(&emu, &register)).set("Authorization", &token),
        Some(&body),
    );
    assert_eq!(status, 202, "{op}");
    let operation_id = op["operationId"].as_str().unwrap().to_string();

    // 3. Poll: assigned, with the hub key to activate.
    let poll = format!("registrations/{reg}/operations/{operation_id}");
    let (status, assigned) = send(agent.get(&url(&emu, &poll)).set("Authorization", &token), None);
    assert_eq!(status, 200, "{assigned}");
    assert_eq!(assigned["status"], "assigned");
    assert_eq!(assigned["registrationState"]["deviceId"], reg.as_str());
    let hub_blob = B64
        .decode(
            assigned["registrationState"]["tpm"]["authenticationKey"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    tpm.activate_identity_key(&hub_blob).unwrap();
    // Polls are checked with the DPS key: a token signed with the hub key is refused.
    let (status, _) = send(
        agent.get(&url(&emu, &poll)).set("Authorization", &sas(&mut tpm, &reg)),
        None,
    );
    assert_eq!(status, 401);
    let (status, _) = send(agent.get(&url(&emu, &poll)).set("Authorization", &token), None);
    assert_eq!(status, 200);
}

#[test]
fn a_tpm_with_another_ek_is_refused() {
    let enrolled = Swtpm::start();
    let other = Swtpm::start();
    let a = Tpm::open(TpmOptions::new(enrolled.tcti())).unwrap();
    let b = Tpm::open(TpmOptions::new(other.tcti())).unwrap();
    let reg = a.registration_id();
    let emu = Emulator::start(test_support::emulator::config(vec![Enrollment::TpmIndividual {
        registration_id: reg.clone(),
        endorsement_key: B64.encode(a.endorsement_key().unwrap()),
    }]))
    .unwrap();
    let body = json!({
        "registrationId": reg,
        "tpm": {
            "endorsementKey": B64.encode(b.endorsement_key().unwrap()),
            "storageRootKey": B64.encode(b.storage_root_key().unwrap()),
        },
    });
    let (status, denied) = send(
        agent(&emu, None, TlsVersions::Both).put(&url(&emu, &format!("registrations/{reg}/register"))),
        Some(&body),
    );
    assert_eq!(status, 401);
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .contains("endorsementKey does not match"),
        "{denied}"
    );
}

#[test]
fn tpm_enrollments_in_the_emulator_configuration() {
    let sw = Swtpm::start();
    let tpm = Tpm::open(TpmOptions::new(sw.tcti())).unwrap();
    let text = format!(
        "id_scope = \"{SCOPE}\"\n[[enrollment]]\ntype = \"tpm-individual\"\nregistration_id = \"{}\"\nendorsement_key = \"{}\"\n",
        tpm.registration_id(),
        B64.encode(tpm.endorsement_key().unwrap())
    );
    let cfg = EmulatorConfig::from_toml(&text, std::path::Path::new(".")).unwrap();
    assert!(matches!(&cfg.enrollments[0], Enrollment::TpmIndividual { .. }));
    let bad = text.replace(&B64.encode(tpm.endorsement_key().unwrap()), "AAAA");
    let e = EmulatorConfig::from_toml(&bad, std::path::Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("enrollment[0].endorsement_key"), "{e}");
    let bad = text.replace("endorsement_key", "ek");
    assert!(EmulatorConfig::from_toml(&bad, std::path::Path::new(".")).is_err());
}
