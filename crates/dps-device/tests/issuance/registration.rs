//! Issuance at registration: a CSR over HTTPS and MQTT, X.509 onboarding, refusals with the service's error
//! or before anything is sent, and assignments without a usable chain.

use dps_device::{Error, verify_issued_chain};
use dps_emulator::Enrollment;

use crate::common::scripted::{Scripted, json};
use crate::common::*;
use crate::setup::*;

#[tokio::test]
async fn issuance_over_https_returns_a_chain_to_the_issuing_root() {
    let emu = emulator(vec![sym_enrollment("issue-https")]);
    let (_, csr, chain) = register_issued(&emu, false, "issue-https").await;
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], issuing_root(&emu), "the chain ends with the issuing root");
    verify_issued_chain(&chain, &csr, "issue-https").unwrap();
}

#[tokio::test]
async fn issuance_over_mqtt_returns_a_chain_that_verifies() {
    let emu = emulator(vec![sym_enrollment("issue-mqtt")]);
    let (_, csr, chain) = register_issued(&emu, true, "issue-mqtt").await;
    assert_eq!(chain.last().unwrap(), &issuing_root(&emu));
    verify_issued_chain(&chain, &csr, "issue-mqtt").unwrap();
}

#[tokio::test]
async fn x509_onboarding_gets_an_issued_certificate_too() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("onboarding CA");
    let emu = emulator(vec![Enrollment::X509Group {
        name: "g".into(),
        ca: vec![ca.der()],
    }]);
    let identity = ca.file_identity(dir.path(), "x509-issue", &[]);
    let (_, csr) = csr("x509-issue");
    let a = mqtt_client(&emu, options())
        .register_with_csr(&x509(identity), None, None, &csr)
        .await
        .unwrap();
    verify_issued_chain(a.issued_certificate_chain.as_ref().unwrap(), &csr, "x509-issue").unwrap();
}

#[tokio::test]
async fn a_registration_without_csr_gets_no_chain() {
    let emu = emulator(vec![sym_enrollment("no-csr")]);
    let a = https_client(&emu, options())
        .register(&symmetric("no-csr", DEVICE_KEY), None)
        .await
        .unwrap();
    assert!(a.issued_certificate_chain.is_none());
    assert!(a.state.issued_certificate_chain.is_none());
}

#[tokio::test]
async fn wrong_cn_is_refused_with_the_service_error() {
    let emu = emulator(vec![sym_enrollment("cn-device")]);
    let (_, csr) = csr("someone-else");
    for client in [https_client(&emu, options()), mqtt_client(&emu, options())] {
        let e = service_error(
            client
                .register_with_csr(&symmetric("cn-device", DEVICE_KEY), None, None, &csr)
                .await,
        );
        assert_eq!((e.status, e.error_code), (400, Some(400004)), "{e}");
        assert!(
            e.message
                .contains("CN 'someone-else' does not match the registration id 'cn-device'"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn rsa_and_p256_csrs_are_refused_before_anything_is_sent() {
    // Made with `openssl req -new -newkey rsa:2048 -subj /CN=rsa-device -outform DER`.
    let rsa = include_bytes!("../../../dps-emulator/tests/data/rsa-device.csr.der").to_vec();
    let p256 = { test_support::pki::csr("p256-device", KeyType::P256).0 };
    let server = Scripted::start(vec![json(500, None, "{}")]);
    for (csr, shown) in [(rsa, "1.2.840.113549.1.1.1"), (p256, "1.2.840.10045.3.1.7")] {
        let client = server.https_client(options());
        match client
            .register_with_csr(&symmetric("p256-device", DEVICE_KEY), None, None, &csr)
            .await
        {
            Err(Error::InvalidRequest(m)) => {
                assert!(m.contains(shown) && m.contains("ECDSA P-384 keys only"), "{m}")
            }
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_api_version_without_csr_is_refused_before_connecting() {
    let emu = emulator(vec![sym_enrollment("old-api")]);
    let (_, csr) = csr("old-api");
    let client = https_client(
        &emu,
        dps_device::Options {
            api_version: Some(dps_device::ApiVersion::DEVICE),
            ..options()
        },
    );
    match client
        .register_with_csr(&symmetric("old-api", DEVICE_KEY), None, None, &csr)
        .await
    {
        Err(Error::InvalidRequest(m)) => assert!(m.contains("does not know csr"), "{m}"),
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

/// A service that assigns without the chain, or with a chain that is not base64: errors, not an assignment.
#[tokio::test]
async fn an_assignment_without_a_usable_chain_is_a_protocol_error() {
    let (_, csr) = csr("d");
    let state = r#""registrationId":"d","assignedHub":"h","deviceId":"d","status":"assigned""#;
    for (answer, needle) in [
        (
            format!(r#"{{"operationId":"o","status":"assigned","registrationState":{{{state}}}}}"#),
            "without an issuedCertificateChain",
        ),
        (
            format!(
                r#"{{"operationId":"o","status":"assigned","registrationState":{{{state},"issuedCertificateChain":["%%"]}}}}"#
            ),
            "issuedCertificateChain[0]: not base64",
        ),
    ] {
        let server = Scripted::start(vec![json(200, None, &answer)]);
        let client = server.https_client(options());
        match client
            .register_with_csr(&symmetric("d", DEVICE_KEY), None, None, &csr)
            .await
        {
            Err(Error::Protocol { message, .. }) => assert!(message.contains(needle), "{message}"),
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }
}
