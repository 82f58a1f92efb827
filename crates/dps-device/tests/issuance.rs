//! Certificate issuance against the emulator: a CSR with the registration (HTTPS and MQTT), the chain
//! checked with `verify_issued_chain`, refusals with the service's error, and renewal over IoT Hub
//! `$iothub/credentials` (retry with replace, the hub gone mid-operation).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::scripted::{Scripted, json};
use common::*;
use dps_device::{Error, RenewalOptions, renew_certificate, verify_issued_chain};
use dps_emulator::{Emulator, Enrollment, IssuanceOptions, ServerOptions};
use hsm_core::file::{FileX509, KeyReference};
use rcgen::KeyPair;
use tracing::instrument::WithSubscriber as _;

/// A fresh P-384 key and its DER CSR with subject CN `cn`.
fn csr(cn: &str) -> (KeyPair, Vec<u8>) {
    let (der, key) = test_support::pki::csr(cn, KeyType::P384);
    (key, der)
}

fn sym_enrollment(id: &str) -> Enrollment {
    Enrollment::SymmetricIndividual {
        registration_id: id.into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }
}

fn emulator_with(enrollments: Vec<Enrollment>, issuance: IssuanceOptions) -> Emulator {
    Emulator::start_with(
        test_support::emulator::config(enrollments),
        0,
        ServerOptions {
            issuance,
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

fn issuing_root(emu: &Emulator) -> Vec<u8> {
    hsm_core::pem::parse_certificates("issuing CA", emu.issuing_ca_pem().as_bytes()).unwrap()[0].to_vec()
}

/// The issued chain and key as a file identity (what the issued-identity store holds).
fn issued_identity(dir: &std::path::Path, name: &str, chain: &[Vec<u8>], key: &KeyPair) -> Arc<FileX509> {
    let pem: String = chain
        .iter()
        .map(|der| format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", b64(der)))
        .collect();
    let (cert, keyp) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, pem).unwrap();
    std::fs::write(&keyp, key.serialize_pem()).unwrap();
    Arc::new(FileX509::open(&cert, &keyp, KeyReference::Token).unwrap())
}

fn b64(der: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn renewal_options() -> RenewalOptions {
    RenewalOptions {
        timeout: Duration::from_secs(20),
        retry_floor: Duration::ZERO,
        ..RenewalOptions::default()
    }
}

async fn register_issued(emu: &Emulator, mqtt: bool, id: &str) -> (KeyPair, Vec<u8>, Vec<Vec<u8>>) {
    let (key, csr) = csr(id);
    let client = match mqtt {
        true => mqtt_client(emu, options()),
        false => https_client(emu, options()),
    };
    let a = client
        .register_with_csr(&symmetric(id, DEVICE_KEY), None, None, &csr)
        .await
        .unwrap();
    assert_assigned(&a, id);
    let chain = a.issued_certificate_chain.clone().unwrap();
    (key, csr, chain)
}

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
    let rsa = include_bytes!("../../dps-emulator/tests/data/rsa-device.csr.der").to_vec();
    let p256 = { test_support::pki::csr("p256-device", KeyType::P256).0 };
    let server = Scripted::start(vec![json(500, None, "{}")]);
    for (csr, shown) in [(rsa, "1.2.840.113549.1.1.1"), (p256, "1.2.840.10045.3.1.7")] {
        let client = dps_device::ProvisioningClient::new(
            &server.endpoint,
            SCOPE,
            dps_device::Transport::Https,
            roots(&server.ca_pem),
            options(),
        );
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

#[tokio::test]
async fn verify_refuses_a_chain_for_another_key_a_wrong_cn_and_a_broken_link() {
    let emu = emulator(vec![sym_enrollment("verify-me")]);
    let (_, csr, chain) = register_issued(&emu, false, "verify-me").await;
    let (_, other_csr) = self::csr("verify-me");
    let refused = |r: Result<(), Error>| match r {
        Err(Error::IssuedChain(m)) => m,
        other => panic!("expected IssuedChain, got {other:?}"),
    };
    let m = refused(verify_issued_chain(&chain, &other_csr, "verify-me"));
    assert!(m.contains("not the key of our CSR"), "{m}");
    let m = refused(verify_issued_chain(&chain, &csr, "another-id"));
    assert!(m.contains("is not the registration id 'another-id'"), "{m}");
    let stranger = Ca::root("dps-emulator issuing CA");
    let m = refused(verify_issued_chain(
        &[chain[0].clone(), stranger.der().to_vec()],
        &csr,
        "verify-me",
    ));
    assert!(m.contains("certificate 0 is not signed by certificate 1"), "{m}");
    let m = refused(verify_issued_chain(&chain[..1], &csr, "verify-me"));
    assert!(m.contains("root is not self-signed"), "{m}");
    let m = refused(verify_issued_chain(&[], &csr, "verify-me"));
    assert!(m.contains("empty"), "{m}");
}

#[tokio::test]
async fn renewal_over_iothub_credentials_issues_a_chain_for_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(vec![sym_enrollment("renew-me")]);
    let (key, _, chain) = register_issued(&emu, false, "renew-me").await;
    let identity = issued_identity(dir.path(), "issued", &chain, &key);
    let (_, new_csr) = csr("renew-me");
    let renewed = renew_certificate(
        HUB,
        &emu.mqtt_endpoint(),
        "renew-me",
        identity,
        roots(&emu.server_ca_pem()),
        &new_csr,
        &renewal_options(),
    )
    .await
    .unwrap();
    verify_issued_chain(&renewed, &new_csr, "renew-me").unwrap();
    assert_ne!(renewed[0], chain[0]);
    assert_eq!(renewed.last().unwrap(), &issuing_root(&emu));
}

#[tokio::test]
async fn renewal_refuses_wrong_cn_and_rsa_with_400040() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(vec![sym_enrollment("renew-bad")]);
    let (key, _, chain) = register_issued(&emu, true, "renew-bad").await;
    let identity = issued_identity(dir.path(), "issued", &chain, &key);
    let (_, wrong_cn) = csr("not-me");
    let rsa = include_bytes!("../../dps-emulator/tests/data/rsa-device.csr.der").to_vec();
    for (csr, needle) in [(wrong_cn, "CN 'not-me' does not match"), (rsa, "key is RSA")] {
        let r = renew_certificate(
            HUB,
            &emu.mqtt_endpoint(),
            "renew-bad",
            identity.clone(),
            roots(&emu.server_ca_pem()),
            &csr,
            &renewal_options(),
        )
        .await;
        match r {
            Err(Error::Service(e)) => {
                assert_eq!((e.status, e.error_code), (400, Some(400040)), "{e}");
                assert!(e.message.contains(needle), "{e}");
            }
            other => panic!("expected 400040, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn renewal_with_a_certificate_from_another_ca_is_refused_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(vec![sym_enrollment("renew-stranger")]);
    let stranger = Ca::root("stranger").file_identity(dir.path(), "renew-stranger", &[]);
    let (_, csr) = csr("renew-stranger");
    let r = renew_certificate(
        HUB,
        &emu.mqtt_endpoint(),
        "renew-stranger",
        stranger,
        roots(&emu.server_ca_pem()),
        &csr,
        &renewal_options(),
    )
    .await;
    match r {
        Err(Error::ConnectionRefused { code: 5, .. }) => {}
        other => panic!("expected CONNACK 5, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_left_in_progress_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_with(
        vec![sym_enrollment("renew-busy")],
        IssuanceOptions {
            credentials_delay: Duration::from_secs(3),
            ..IssuanceOptions::default()
        },
    );
    let (key, _, chain) = register_issued(&emu, false, "renew-busy").await;
    let identity = issued_identity(dir.path(), "issued", &chain, &key);
    let (_, first_csr) = csr("renew-busy");
    // A device that gives up after the 202 (a restart): its operation stays in progress on the hub.
    let cut_short = renew_certificate(
        HUB,
        &emu.mqtt_endpoint(),
        "renew-busy",
        identity.clone(),
        roots(&emu.server_ca_pem()),
        &first_csr,
        &RenewalOptions {
            timeout: Duration::from_secs(1),
            ..renewal_options()
        },
    )
    .await;
    assert!(matches!(cut_short, Err(Error::Timeout { .. })), "{cut_short:?}");
    // The next attempt is told 409005 and sends again with replace.
    let (_, csr) = csr("renew-busy");
    let renewed = renew_certificate(
        HUB,
        &emu.mqtt_endpoint(),
        "renew-busy",
        identity,
        roots(&emu.server_ca_pem()),
        &csr,
        &renewal_options(),
    )
    .await
    .unwrap();
    verify_issued_chain(&renewed, &csr, "renew-busy").unwrap();
}

/// What the device logs when the hub's 202 came (the event the test of a hub gone after it waits for).
const HUB_ACCEPTED: &str = "the hub accepted the certificate request (202)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_gone_mid_renewal_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_with(
        vec![sym_enrollment("renew-gone")],
        IssuanceOptions {
            credentials_delay: Duration::from_secs(3),
            ..IssuanceOptions::default()
        },
    );
    let (key, _, chain) = register_issued(&emu, false, "renew-gone").await;
    let identity = issued_identity(dir.path(), "issued", &chain, &key);
    let (_, csr) = csr("renew-gone");
    let (endpoint, roots) = (emu.mqtt_endpoint(), roots(&emu.server_ca_pem()));
    let (logging, accepted) = test_support::logged::watch(HUB_ACCEPTED);
    let renewal = tokio::spawn(
        async move { renew_certificate(HUB, &endpoint, "renew-gone", identity, roots, &csr, &renewal_options()).await }
            .with_subscriber(logging),
    );
    // The 202 comes at once; the certificate would come after 3 s: stop the emulator in between.
    tokio::task::spawn_blocking(move || accepted.wait(test_support::wait::DEADLINE))
        .await
        .unwrap();
    let stopping = tokio::task::spawn_blocking(move || emu.shutdown());
    let result = renewal.await.unwrap();
    match &result {
        Err(Error::Transport { message, .. }) => assert!(
            message.contains("accepted the certificate request (202) but the connection ended"),
            "{message}"
        ),
        other => panic!("expected a transport error, got {other:?}"),
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_throttled_renewal_waits_for_retry_after_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_with(
        vec![sym_enrollment("renew-throttled")],
        IssuanceOptions {
            credentials_throttle: 2,
            ..IssuanceOptions::default()
        },
    );
    let (key, _, chain) = register_issued(&emu, false, "renew-throttled").await;
    let identity = issued_identity(dir.path(), "issued", &chain, &key);
    let (_, csr) = csr("renew-throttled");
    let started = std::time::Instant::now();
    let renewed = renew_certificate(
        HUB,
        &emu.mqtt_endpoint(),
        "renew-throttled",
        identity.clone(),
        roots(&emu.server_ca_pem()),
        &csr,
        &renewal_options(),
    )
    .await
    .unwrap();
    // Two 429s with retry-after=1: at least two seconds of waiting, whatever the floor (zero here).
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    verify_issued_chain(&renewed, &csr, "renew-throttled").unwrap();
}

#[tokio::test]
async fn throttling_beyond_max_attempts_is_the_service_error() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator_with(
        vec![sym_enrollment("renew-throttled-out")],
        IssuanceOptions {
            credentials_throttle: 10,
            ..IssuanceOptions::default()
        },
    );
    let (key, _, chain) = register_issued(&emu, false, "renew-throttled-out").await;
    let identity = issued_identity(dir.path(), "issued", &chain, &key);
    let (_, csr) = csr("renew-throttled-out");
    let r = renew_certificate(
        HUB,
        &emu.mqtt_endpoint(),
        "renew-throttled-out",
        identity,
        roots(&emu.server_ca_pem()),
        &csr,
        &RenewalOptions {
            max_attempts: 2,
            ..renewal_options()
        },
    )
    .await;
    match r {
        Err(Error::Service(e)) => assert_eq!((e.status, e.error_code), (429, Some(429002)), "{e}"),
        other => panic!("expected the 429, got {other:?}"),
    }
}

#[tokio::test]
async fn renewal_with_the_onboarding_x509_credential_is_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("onboarding CA");
    let emu = emulator(vec![Enrollment::X509Group {
        name: "g".into(),
        ca: vec![ca.der()],
    }]);
    let onboarding = ca.file_identity(dir.path(), "renew-onboarding", &[]);
    // The hub knows the device once DPS has assigned it (with the same onboarding credential).
    let assignment = https_client(&emu, options())
        .register(&x509(onboarding.clone()), None)
        .await
        .unwrap();
    assert_assigned(&assignment, "renew-onboarding");
    let (_, csr) = csr("renew-onboarding");
    let chain = renew_certificate(
        HUB,
        &emu.mqtt_endpoint(),
        "renew-onboarding",
        onboarding,
        roots(&emu.server_ca_pem()),
        &csr,
        &renewal_options(),
    )
    .await
    .unwrap();
    verify_issued_chain(&chain, &csr, "renew-onboarding").unwrap();
}

#[test]
fn verify_refuses_an_expired_chain() {
    let ca = Ca::root_with("CA", KeyType::P384, |_| {});
    let (key, csr) = csr("expired");
    let mut leaf = test_support::pki::params("expired");
    leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2020, 2, 1);
    let leaf = ca.issue(leaf, key);
    let chain = vec![leaf.leaf().to_vec(), ca.der().to_vec()];
    match verify_issued_chain(&chain, &csr, "expired") {
        Err(Error::IssuedChain(m)) => assert!(m.contains("certificate 0 is not valid now"), "{m}"),
        other => panic!("expected IssuedChain, got {other:?}"),
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
        let client = dps_device::ProvisioningClient::new(
            &server.endpoint,
            SCOPE,
            dps_device::Transport::Https,
            roots(&server.ca_pem),
            options(),
        );
        match client
            .register_with_csr(&symmetric("d", DEVICE_KEY), None, None, &csr)
            .await
        {
            Err(Error::Protocol { message, .. }) => assert!(message.contains(needle), "{message}"),
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }
}
