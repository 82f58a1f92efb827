//! DICE identities provisioning against the local DPS emulator over real mutual TLS (rustls
//! client through tlsio-bridge, every TLS signature made by the DICE Alias key):
//! individual enrollment with the device's own chain, group enrollment with the DeviceID
//! signed by a group CA, the `dice:` token path, and refusals of tampered or foreign chains.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dps_emulator::{Emulator, Enrollment};
use hsm_core::{SigningKey, X509Identity};
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use tlsio_bridge::TlsVersions;

use test_support::emulator::SCOPE;

fn emulator(enrollments: Vec<Enrollment>) -> Emulator {
    Emulator::start(test_support::emulator::config(enrollments)).unwrap()
}

fn agent(emu: &Emulator, identity: &dyn X509Identity, versions: TlsVersions) -> ureq::Agent {
    let roots = tlsio_bridge::roots_from_pem("emulator CA", emu.server_ca_pem().as_bytes()).unwrap();
    let config = tlsio_bridge::client_config(roots, Some(identity), versions).unwrap();
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .timeout(Duration::from_secs(20))
        .build()
}

/// PUT .../register; returns the status and JSON body (or the transport error text as a string).
fn register(agent: &ureq::Agent, emu: &Emulator, registration_id: &str) -> (u16, Value) {
    let url = format!(
        "https://{}/{SCOPE}/registrations/{registration_id}/register?api-version=2021-06-01",
        emu.global_endpoint()
    );
    match agent
        .put(&url)
        .set("Content-Type", "application/json")
        .send_json(serde_json::json!({ "registrationId": registration_id }))
    {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn assert_accepted(agent: &ureq::Agent, emu: &Emulator, registration_id: &str) {
    let (status, body) = register(agent, emu, registration_id);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "assigning", "{body}");
    assert!(body["operationId"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
}

fn assert_refused(agent: &ureq::Agent, emu: &Emulator, registration_id: &str) -> String {
    let (status, body) = register(agent, emu, registration_id);
    assert_eq!(status, 401, "{body}");
    body.to_string()
}

/// Any chain with any key: for presenting altered chains.
struct Presented {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn SigningKey>,
}

impl X509Identity for Presented {
    fn certificate_chain(&self) -> hsm_core::Result<Vec<CertificateDer<'static>>> {
        Ok(self.chain.clone())
    }
    fn signing_key(&self) -> hsm_core::Result<Arc<dyn SigningKey>> {
        Ok(self.key.clone())
    }
    fn key_reference(&self) -> hsm_core::Result<zeroize::Zeroizing<String>> {
        Ok(zeroize::Zeroizing::new(String::new()))
    }
}

#[test]
fn individual_enrollment_with_the_device_id_certificate() {
    let dev = Device::new(b"firmware 1.0");
    let id = dev.identity("dice-device-1", "").unwrap();
    let emu = emulator(vec![Enrollment::X509Individual {
        registration_id: "dice-device-1".into(),
        certificate: vec![id.chain().device_id.clone()],
    }]);
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        assert_accepted(&agent(&emu, &id, versions), &emu, "dice-device-1");
    }

    // The token path: a signer re-derived from the `dice:` token signs the handshake.
    let hsm_core::token::KeyToken::Dice(token) =
        hsm_core::token::KeyToken::decode(&id.key_reference().unwrap()).unwrap()
    else {
        panic!("not a dice: token")
    };
    let via_token = Presented {
        chain: id.certificate_chain().unwrap(),
        key: hsm_riot::open_signer(&token).unwrap(),
    };
    assert_accepted(&agent(&emu, &via_token, TlsVersions::Both), &emu, "dice-device-1");

    // A firmware update changes the Alias key, not the DeviceID: the enrollment still holds.
    std::fs::write(&dev.firmware, b"firmware 2.0").unwrap();
    let updated = dev.identity("dice-device-1", "").unwrap();
    assert_ne!(updated.chain().alias, id.chain().alias);
    assert_accepted(&agent(&emu, &updated, TlsVersions::Both), &emu, "dice-device-1");
}

#[test]
fn tampered_or_foreign_chains_are_refused() {
    let dev = Device::new(b"firmware 1.0");
    let id = dev.identity("dice-device-2", "").unwrap();
    let emu = emulator(vec![Enrollment::X509Individual {
        registration_id: "dice-device-2".into(),
        certificate: vec![id.chain().device_id.clone()],
    }]);

    // One bit of the Alias certificate's signature flipped.
    let mut chain = id.certificate_chain().unwrap();
    let mut alias = chain[0].to_vec();
    let n = alias.len();
    alias[n - 4] ^= 0x01;
    chain[0] = CertificateDer::from(alias);
    let tampered = Presented {
        chain,
        key: id.signing_key().unwrap(),
    };
    assert_refused(&agent(&emu, &tampered, TlsVersions::Both), &emu, "dice-device-2");

    // Another device (another UDS) claiming the same registration id.
    let other = Device::new(b"firmware 1.0");
    let impostor = other.identity("dice-device-2", "").unwrap();
    assert_refused(&agent(&emu, &impostor, TlsVersions::Both), &emu, "dice-device-2");

    // The enrolled chain, but the Alias swapped for the impostor's (signed by another DeviceID).
    let spliced = Presented {
        chain: vec![impostor.chain().alias.clone(), id.chain().device_id.clone()],
        key: impostor.signing_key().unwrap(),
    };
    assert_refused(&agent(&emu, &spliced, TlsVersions::Both), &emu, "dice-device-2");

    // The genuine device still gets in.
    assert_accepted(&agent(&emu, &id, TlsVersions::Both), &emu, "dice-device-2");
}

#[test]
fn group_enrollment_with_the_device_id_signed_by_the_group_ca() {
    let dev = Device::new(b"fleet firmware");
    let pki = hsm_riot::pki::generate(&pki_options(
        &dev.path("pki"),
        "DICE Fleet Root",
        Some("DICE Fleet Intermediate"),
    ))
    .unwrap();
    let root = hsm_core::pem::parse_certificates("root", &std::fs::read(pki.root.unwrap()).unwrap()).unwrap();
    let emu = emulator(vec![Enrollment::X509Group {
        name: "dice-fleet".into(),
        ca: root.clone(),
    }]);
    let ca_lines = "ca_certificate = \"pki/intermediate-ca.cert.pem\"\nca_key = \"pki/intermediate-ca.key.pem\"\n";
    // Several devices, one group CA.
    for n in 1..=3 {
        let d = Device::new(b"fleet firmware");
        std::fs::create_dir(d.path("pki")).unwrap();
        for f in ["intermediate-ca.cert.pem", "intermediate-ca.key.pem"] {
            std::fs::copy(dev.path("pki").join(f), d.path("pki").join(f)).unwrap();
        }
        let reg = format!("fleet-device-{n}");
        let id = d.identity(&reg, ca_lines).unwrap();
        assert_eq!(id.certificate_chain().unwrap().len(), 3);
        assert_accepted(&agent(&emu, &id, TlsVersions::Both), &emu, &reg);
    }

    // A self-signed DICE device (not under the group CA) is refused.
    let loner = dev.identity("fleet-device-9", "").unwrap();
    assert_refused(&agent(&emu, &loner, TlsVersions::Both), &emu, "fleet-device-9");

    // Asking for another registration id than the certificate's common name is refused.
    let member = dev.identity("fleet-device-4", ca_lines).unwrap();
    assert_refused(&agent(&emu, &member, TlsVersions::Both), &emu, "fleet-device-5");
    assert_accepted(&agent(&emu, &member, TlsVersions::Both), &emu, "fleet-device-4");
}
