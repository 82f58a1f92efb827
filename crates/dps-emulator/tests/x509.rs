//! x509 attestation over real mutual TLS: individual and group enrollments, and every refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dps_emulator::{Emulator, Enrollment};

#[test]
fn individual_enrollment_with_the_device_leaf() {
    let ca = Ca::root("individual root");
    let device = ca.leaf("device-x509");
    let emu = Emulator::start(config(vec![Enrollment::X509Individual {
        registration_id: "device-x509".into(),
        certificate: vec![device.leaf()],
    }]))
    .unwrap();
    let agent = agent(&emu, Some(&device), Tls::Any);
    let body = provision(&agent, &emu, "device-x509", None);
    assert_assigned(&body, "device-x509");
}

#[test]
fn individual_enrollment_with_the_issuing_ca_over_tls12() {
    let ca = Ca::root("individual root");
    let device = ca.leaf("device-tls12");
    let emu = Emulator::start(config(vec![Enrollment::X509Individual {
        registration_id: "device-tls12".into(),
        certificate: vec![ca.der()],
    }]))
    .unwrap();
    let agent = agent(&emu, Some(&device), Tls::Only12);
    assert_assigned(&provision(&agent, &emu, "device-tls12", None), "device-tls12");
}

#[test]
fn group_enrollment_through_an_intermediate() {
    let root = Ca::root("group root");
    let intermediate = root.intermediate("group intermediate");
    let other_root = Ca::root("other group root");
    let device = intermediate.leaf("group-device-7").with_intermediate(&intermediate);
    let emu = Emulator::start(config(vec![
        Enrollment::X509Group {
            name: "other".into(),
            ca: vec![other_root.der()],
        },
        Enrollment::X509Group {
            name: "fleet".into(),
            ca: vec![root.der()],
        },
    ]))
    .unwrap();
    let agent = agent(&emu, Some(&device), Tls::Any);
    assert_assigned(&provision(&agent, &emu, "group-device-7", None), "group-device-7");
}

#[test]
fn untrusted_chain_is_refused() {
    let enrolled = Ca::root("enrolled root");
    let rogue = Ca::root("rogue root");
    let emu = Emulator::start(config(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![enrolled.der()],
    }]))
    .unwrap();
    let device = rogue.leaf("device-1");
    let agent = agent(&emu, Some(&device), Tls::Any);
    assert_denied(
        put_register(&agent, &emu, "device-1", None),
        "certificate chain does not verify to any enrollment: UnknownIssuer (tried 'fleet')",
    );
}

#[test]
fn individual_enrollment_refuses_another_ca() {
    let enrolled = Ca::root("enrolled root");
    let rogue = Ca::root("rogue root");
    let emu = Emulator::start(config(vec![Enrollment::X509Individual {
        registration_id: "device-1".into(),
        certificate: vec![enrolled.der()],
    }]))
    .unwrap();
    let agent = agent(&emu, Some(&rogue.leaf("device-1")), Tls::Any);
    assert_denied(
        put_register(&agent, &emu, "device-1", None),
        "certificate chain does not verify to any enrollment: UnknownIssuer (tried x509-individual 'device-1')",
    );
}

#[test]
fn common_name_must_match_the_registration_id() {
    let ca = Ca::root("root");
    let emu = Emulator::start(config(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![ca.der()],
    }]))
    .unwrap();
    let agent = agent(&emu, Some(&ca.leaf("device-a")), Tls::Any);
    assert_denied(
        put_register(&agent, &emu, "device-b", None),
        "certificate CN 'device-a' does not match registration id 'device-b'",
    );
}

#[test]
fn expired_certificate_is_refused() {
    let ca = Ca::root("root");
    let device = ca.leaf_with("device-old", KeyType::P256, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let emu = Emulator::start(config(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![ca.der()],
    }]))
    .unwrap();
    let agent = agent(&emu, Some(&device), Tls::Any);
    assert_denied(
        put_register(&agent, &emu, "device-old", None),
        "certificate chain does not verify to any enrollment: certificate expired",
    );
}

#[test]
fn expired_enrolled_leaf_is_refused() {
    let ca = Ca::root("root");
    let device = ca.leaf_with("device-old", KeyType::P256, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let emu = Emulator::start(config(vec![Enrollment::X509Individual {
        registration_id: "device-old".into(),
        certificate: vec![device.leaf()],
    }]))
    .unwrap();
    let agent = agent(&emu, Some(&device), Tls::Any);
    assert_denied(
        put_register(&agent, &emu, "device-old", None),
        "client certificate is not valid now",
    );
}

#[test]
fn no_client_certificate_and_no_sas_is_refused() {
    let ca = Ca::root("root");
    let emu = Emulator::start(config(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![ca.der()],
    }]))
    .unwrap();
    let agent = agent(&emu, None, Tls::Any);
    assert_denied(
        put_register(&agent, &emu, "device-1", None),
        "no credentials: send a SAS token in the Authorization header or present a client certificate",
    );
}

#[test]
fn unknown_registration_is_refused() {
    let ca = Ca::root("root");
    let emu = Emulator::start(config(vec![Enrollment::X509Individual {
        registration_id: "device-1".into(),
        certificate: vec![ca.der()],
    }]))
    .unwrap();
    let agent = agent(&emu, Some(&ca.leaf("device-2")), Tls::Any);
    assert_denied(
        put_register(&agent, &emu, "device-2", None),
        "no x509 enrollment for registration id 'device-2'",
    );
}

#[test]
fn a_certificate_without_its_private_key_fails_the_handshake() {
    // The enrolled leaf is presented, but the handshake is signed with another key: the server's
    // CertificateVerify check must reject it before any request is read.
    let ca = Ca::root("root");
    let device = ca.leaf("device-1");
    let impostor = ca.leaf("device-1");
    let emu = Emulator::start(config(vec![Enrollment::X509Individual {
        registration_id: "device-1".into(),
        certificate: vec![device.leaf()],
    }]))
    .unwrap();
    let impostor_agent = agent_with_mismatched_key(&emu, device.chain.clone(), &impostor.key);
    let result = impostor_agent
        .put(&register_url(&emu, SCOPE, "device-1"))
        .send_json(serde_json::json!({"registrationId": "device-1"}));
    match result {
        // The server aborts the handshake; depending on timing the client sees the alert, a reset or a
        // broken pipe, never a response.
        Err(ureq::Error::Transport(t)) => {
            let text = t.to_string();
            assert!(!text.contains("refused") && !text.contains("timed out"), "{text}");
        }
        Ok(r) => panic!("accepted with status {}", r.status()),
        Err(e) => panic!("expected a TLS failure, got {e}"),
    }
    // The server is still fine afterwards.
    let good = agent(&emu, Some(&device), Tls::Any);
    assert_assigned(&provision(&good, &emu, "device-1", None), "device-1");
}

#[test]
fn polls_are_authenticated_too() {
    let ca = Ca::root("root");
    let emu = Emulator::start(config(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![ca.der()],
    }]))
    .unwrap();
    let device = agent(&emu, Some(&ca.leaf("device-1")), Tls::Any);
    let (status, body) = put_register(&device, &emu, "device-1", None);
    assert_eq!(status, 202, "{body}");
    let op = body["operationId"].as_str().unwrap();
    let anonymous = agent(&emu, None, Tls::Any);
    assert_denied(
        outcome(anonymous.get(&operation_url(&emu, "device-1", op)).call()),
        "no credentials",
    );
    // Another device cannot read this operation either.
    let other = agent(&emu, Some(&ca.leaf("device-2")), Tls::Any);
    let (status, body) = outcome(other.get(&operation_url(&emu, "device-2", op)).call());
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("unknown operation id"),
        "{body}"
    );
}

#[test]
fn leaf_without_extended_key_usage_is_accepted_and_server_only_usage_is_refused() {
    let ca = Ca::root("root");
    let emu = Emulator::start(config(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![ca.der()],
    }]))
    .unwrap();
    let plain = ca.leaf_with("device-plain", KeyType::P256, |p| p.extended_key_usages.clear());
    let agent_plain = agent(&emu, Some(&plain), Tls::Any);
    assert_assigned(&provision(&agent_plain, &emu, "device-plain", None), "device-plain");

    let server_only = ca.leaf_with("device-server", KeyType::P256, |p| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    });
    let agent_server = agent(&emu, Some(&server_only), Tls::Any);
    assert_denied(
        put_register(&agent_server, &emu, "device-server", None),
        "certificate chain does not verify to any enrollment: certificate does not allow extended key usage for \
         client authentication",
    );
}
