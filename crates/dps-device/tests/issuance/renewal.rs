//! Renewal over IoT Hub `$iothub/credentials`: a chain for the new key, refusals, an operation left in
//! progress replaced, the hub gone mid-renewal, throttling, and the onboarding credential admitted.

use std::time::Duration;

use dps_device::{Error, RenewalOptions, renew_certificate, verify_issued_chain};
use dps_emulator::{Enrollment, IssuanceOptions};
use tracing::instrument::WithSubscriber as _;

use crate::common::*;
use crate::setup::*;

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
    let rsa = include_bytes!("../../../dps-emulator/tests/data/rsa-device.csr.der").to_vec();
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
