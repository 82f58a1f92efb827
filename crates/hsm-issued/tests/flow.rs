//! The issuance flows against the DPS emulator: a certificate issued at registration (HTTPS and
//! MQTT, symmetric-key onboarding), renewal over IoT Hub `$iothub/credentials`, re-registration
//! with the issued identity, keys on SoftHSM2 and in files; the hub gone mid-renewal leaves the
//! old identity working, and the next renewal completes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TokenExt as _, assert_signs_for, token};
use dps_device::{Attestation, Options, ProvisioningClient, RenewalOptions, Transport};
use dps_emulator::{Emulator, Enrollment, IssuanceOptions, IssuingCa, ServerOptions};
use hsm_issued::flow::{register, renew_via_hub};
use hsm_issued::{KeySource, Store};
use rustls_pki_types::CertificateDer;

use test_support::emulator::{DEVICE_KEY, HUB, SCOPE};
use tracing::instrument::WithSubscriber as _;

/// The emulator's issuing CA, given so that a second emulator issues from the same one and an
/// x509 group enrollment can trust it.
fn issuing_ca() -> (IssuingCa, CertificateDer<'static>) {
    let ca = test_support::pki::Ca::root_with("flow issuing CA", test_support::pki::KeyType::P384, |_| {});
    (
        IssuingCa {
            certificate_pem: ca.pem(),
            key_pem: ca.key_pem().into(),
        },
        ca.der(),
    )
}

fn emulator(ca: &(IssuingCa, CertificateDer<'static>), id: &str, delay: Duration) -> Emulator {
    emulator_in(ca, id, delay, None)
}

/// An emulator keeping its registrations in `state_dir`: one started again on it still knows the
/// devices it assigned (its hub admits only those).
fn emulator_in(
    ca: &(IssuingCa, CertificateDer<'static>),
    id: &str,
    delay: Duration,
    state_dir: Option<&std::path::Path>,
) -> Emulator {
    Emulator::start_with(
        test_support::emulator::config(vec![
            Enrollment::SymmetricIndividual {
                registration_id: id.into(),
                primary_key: DEVICE_KEY.into(),
                secondary_key: None,
            },
            // Re-registration with the issued certificate.
            Enrollment::X509Group {
                name: "issued".into(),
                ca: vec![ca.1.clone()],
            },
        ]),
        0,
        ServerOptions {
            issuance: IssuanceOptions {
                ca: Some(ca.0.clone()),
                credentials_delay: delay,
                ..IssuanceOptions::default()
            },
            state_dir: state_dir.map(std::path::Path::to_path_buf),
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

fn roots(emu: &Emulator) -> rustls::RootCertStore {
    tlsio_bridge_roots(&emu.server_ca_pem())
}

fn tlsio_bridge_roots(pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in hsm_core::pem::parse_certificates("server CA", pem.as_bytes()).unwrap() {
        roots.add(c).unwrap();
    }
    roots
}

fn client(emu: &Emulator, transport: Transport) -> ProvisioningClient {
    let endpoint = match transport {
        Transport::Https => emu.global_endpoint(),
        _ => emu.mqtt_endpoint(),
    };
    let options = Options {
        retry_floor: Duration::ZERO,
        timeout: Duration::from_secs(20),
        ..Options::default()
    };
    ProvisioningClient::builder(SCOPE)
        .endpoint(&endpoint)
        .transport(transport)
        .trust_roots(roots(emu))
        .options(options)
        .build()
        .unwrap()
}

fn symmetric(id: &str) -> Attestation {
    let key = hsm_core::sas::decode_key("test key", DEVICE_KEY).unwrap();
    Attestation::SymmetricKey(Arc::new(hsm_core::file::FileSymmetric::new(id.to_string(), key)))
}

fn renewal_options() -> RenewalOptions {
    RenewalOptions {
        timeout: Duration::from_secs(20),
        retry_floor: Duration::ZERO,
        ..RenewalOptions::default()
    }
}

fn assert_current_works(store: &Store, root: &CertificateDer<'_>) {
    let (_, chain, key) = store.current().unwrap();
    assert_eq!(chain.last().unwrap(), root, "the chain ends with the issuing root");
    assert_eq!(hsm_core::pem::common_name(&chain[0]).unwrap(), store.registration_id());
    assert_signs_for(key.as_ref(), &chain[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs11_issued_over_https_renewed_via_hub_then_by_reregistration_over_mqtt() {
    let keys = token().key_source();
    let id = "flow-p11";
    let ca = issuing_ca();
    let emu = emulator(&ca, id, Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), id, KeySource::parse(&keys).unwrap(), hsm::open_signer).unwrap();

    let first = register(&store, &client(&emu, Transport::Https), Some(&symmetric(id)), None)
        .await
        .unwrap();
    assert_eq!(first.assignment.as_ref().unwrap().assigned_hub, HUB);
    assert_current_works(&store, &ca.1);

    // IoT Hub renewal with the issued identity: a new key; the first stays until the second is used.
    let second = renew_via_hub(&store, HUB, &emu.mqtt_endpoint(), id, roots(&emu), &renewal_options())
        .await
        .unwrap();
    assert_ne!(second.generation.key, first.generation.key);
    assert_current_works(&store, &ca.1);
    assert_eq!(store.state().unwrap().retired, Some(first.generation.clone()));
    hsm::open_signer(&first.generation.key).unwrap();

    // Re-registration over MQTT authenticated by the second identity: it worked, so the first
    // is deleted, and the third becomes current.
    let third = register(&store, &client(&emu, Transport::Mqtt), None, None)
        .await
        .unwrap();
    assert_current_works(&store, &ca.1);
    let state = store.state().unwrap();
    assert_eq!(state.current, Some(third.generation));
    assert_eq!(state.retired, Some(second.generation.clone()));
    assert!(hsm::open_signer(&first.generation.key).is_err());
    assert_eq!(
        token().objects(id),
        vec![
            "issued-flow-p11-2/cert",
            "issued-flow-p11-2/private",
            "issued-flow-p11-2/public",
            "issued-flow-p11-3/cert",
            "issued-flow-p11-3/private",
            "issued-flow-p11-3/public",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_issued_over_mqtt_and_the_hub_gone_mid_renewal_keeps_the_identity() {
    let id = "flow-file";
    let ca = issuing_ca();
    // The certificate comes 3 s after the 202: the emulator is stopped in between.
    let state_dir = tempfile::tempdir().unwrap();
    let emu = emulator_in(&ca, id, Duration::from_secs(3), Some(state_dir.path()));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), id, KeySource::File, hsm::open_signer).unwrap();
    let first = register(&store, &client(&emu, Transport::Mqtt), Some(&symmetric(id)), None)
        .await
        .unwrap();
    assert_current_works(&store, &ca.1);

    let endpoint = emu.mqtt_endpoint();
    let server_roots = roots(&emu);
    let opts = renewal_options();
    let (logging, accepted) = test_support::logged::watch("the hub accepted the certificate request (202)");
    let renewal = renew_via_hub(&store, HUB, &endpoint, id, server_roots, &opts).with_subscriber(logging);
    let stop = async move {
        tokio::task::spawn_blocking(move || accepted.wait(test_support::wait::DEADLINE))
            .await
            .unwrap();
        emu.shutdown();
    };
    let (result, ()) = tokio::join!(renewal, stop);
    let e = result.unwrap_err().to_string();
    assert!(
        e.contains("(202)") && e.contains("connection"),
        "gone after the 202: {e}"
    );
    let state = store.state().unwrap();
    assert_eq!(
        state.current,
        Some(first.generation.clone()),
        "{e}: the old identity stays current"
    );
    assert!(state.pending.is_some(), "the request stays pending");
    assert_current_works(&store, &ca.1);

    // The hub is back (with the registrations it had): the next renewal completes.
    let emu = emulator_in(&ca, id, Duration::ZERO, Some(state_dir.path()));
    let renewed = renew_via_hub(&store, HUB, &emu.mqtt_endpoint(), id, roots(&emu), &renewal_options())
        .await
        .unwrap();
    assert_eq!(store.state().unwrap().current, Some(renewed.generation));
    assert_current_works(&store, &ca.1);
}

#[cfg(feature = "tpm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpm_issued_over_https_and_renewed_via_hub() {
    let sw = hsm_tpm::testing::Swtpm::start().expect("swtpm must be installed");
    let id = "flow-tpm";
    let ca = issuing_ca();
    let emu = emulator(&ca, id, Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let keys = KeySource::parse(&format!("tpm:tcti={}", sw.tcti())).unwrap();
    let store = Store::open(dir.path(), id, keys, hsm::open_signer).unwrap();
    let first = register(&store, &client(&emu, Transport::Https), Some(&symmetric(id)), None)
        .await
        .unwrap();
    assert!(
        first.generation.key.starts_with("tpm:blob="),
        "{}",
        first.generation.key
    );
    assert_current_works(&store, &ca.1);
    let second = renew_via_hub(&store, HUB, &emu.mqtt_endpoint(), id, roots(&emu), &renewal_options())
        .await
        .unwrap();
    assert_current_works(&store, &ca.1);
    store.confirm().unwrap();
    assert_eq!(store.state().unwrap().current, Some(second.generation));
    assert!(
        hsm::open_signer(&first.generation.key).is_err(),
        "the first key blob is deleted"
    );
}
