//! The library over MQTT (TLS) against the emulator's MQTT listener: x509 and symmetric keys, the
//! payload, and the refusals (CONNACK codes), TPM refused before any connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use dps_device::{Attestation, Error, Options, ProvisioningClient, Transport};
use dps_emulator::Enrollment;
use serde_json::json;

#[tokio::test]
async fn x509_file_key_is_assigned_with_payload() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root("group root");
    let intermediate = root.intermediate("group intermediate");
    let id = intermediate.file_identity(dir.path(), "mqtt-x509", &[&intermediate]);
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![root.der()],
    }]);
    let payload = json!({"site": "plant-3"});
    let a = mqtt_client(&emu, options())
        .register(&x509(id), Some(payload.clone()))
        .await
        .unwrap();
    assert_assigned(&a, "mqtt-x509");
    assert_eq!(a.payload, Some(payload));
}

#[tokio::test]
async fn symmetric_individual_and_group_are_assigned() {
    let emu = emulator(vec![
        Enrollment::SymmetricIndividual {
            registration_id: "mqtt-symm".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        },
        Enrollment::SymmetricGroup {
            name: "fleet".into(),
            primary_key: GROUP_KEY.into(),
            secondary_key: None,
        },
    ]);
    let client = mqtt_client(&emu, options());
    assert_assigned(
        &client
            .register(&symmetric("mqtt-symm", DEVICE_KEY), None)
            .await
            .unwrap(),
        "mqtt-symm",
    );
    let derived = hsm_core::sas::encode_key(&hsm_core::sas::derive_device_key(GROUP_KEY, "mqtt-group-1").unwrap());
    assert_assigned(
        &client
            .register(&symmetric("mqtt-group-1", &derived), None)
            .await
            .unwrap(),
        "mqtt-group-1",
    );
}

#[test]
fn blocking_facade_registers_over_mqtt() {
    let emu = emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "mqtt-blocking".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]);
    let client = dps_device::blocking::ProvisioningClient::new(
        &emu.mqtt_endpoint(),
        SCOPE,
        Transport::Mqtt,
        roots(&emu.server_ca_pem()),
        options(),
    )
    .unwrap();
    assert_assigned(
        &client.register(&symmetric("mqtt-blocking", DEVICE_KEY), None).unwrap(),
        "mqtt-blocking",
    );
}

#[tokio::test]
async fn wrong_key_and_expired_token_are_refused_at_connect() {
    let emu = emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "mqtt-symm".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]);
    assert_refused(
        mqtt_client(&emu, options())
            .register(&symmetric("mqtt-symm", GROUP_DEVICE_KEY), None)
            .await,
        5,
    );
    let expired = Options {
        sas_expiry: Some(now() - 60),
        ..options()
    };
    assert_refused(
        mqtt_client(&emu, expired)
            .register(&symmetric("mqtt-symm", DEVICE_KEY), None)
            .await,
        5,
    );
}

#[tokio::test]
async fn untrusted_chain_and_cn_mismatch_are_refused_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let enrolled = Ca::root("enrolled");
    let rogue = Ca::root("rogue");
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![enrolled.der()],
    }]);
    let client = mqtt_client(&emu, options());
    assert_refused(
        client
            .register(&x509(rogue.file_identity(dir.path(), "dev-r", &[])), None)
            .await,
        5,
    );
    let good = enrolled.file_identity(dir.path(), "dev-a", &[]);
    assert_refused(client.register_as(&x509(good.clone()), Some("dev-b"), None).await, 5);
    // The same identity under its own name is admitted: the refusals above were about the chain and CN.
    assert_assigned(&client.register(&x509(good), None).await.unwrap(), "dev-a");
}

#[tokio::test]
async fn tpm_is_refused_before_any_connection() {
    // Nothing listens on port 1: an attempt to connect would be a transport error.
    let client = ProvisioningClient::new("127.0.0.1:1", SCOPE, Transport::Mqtt, roots_empty(), options());
    let tpm: Box<dyn hsm_core::TpmIdentity> = Box::new(NoTpm);
    let e = client
        .register_as(&Attestation::Tpm(Arc::new(Mutex::new(tpm))), Some("tpm-1"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidRequest(m) if m.contains("TPM attestation is not supported over MQTT")),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_emulator_refuses_a_tpm_enrolled_device_over_mqtt() {
    let emu = emulator(vec![Enrollment::TpmIndividual {
        registration_id: "tpm-device".into(),
        endorsement_key: ek_b64(),
    }]);
    assert_refused(
        mqtt_client(&emu, options())
            .register(&symmetric("tpm-device", DEVICE_KEY), None)
            .await,
        5,
    );
}

#[tokio::test]
async fn a_stopped_emulator_is_a_transport_error() {
    let emu = emulator(vec![]);
    let client = mqtt_client(&emu, options());
    drop(emu);
    let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                transport: Transport::Mqtt,
                ..
            }
        ),
        "{e:?}"
    );
}

fn roots_empty() -> rustls::RootCertStore {
    rustls::RootCertStore::empty()
}

/// A TPM identity that must never be used: the client refuses TPM over MQTT before touching it.
struct NoTpm;

impl hsm_core::TpmIdentity for NoTpm {
    fn endorsement_key(&self) -> hsm_core::Result<Vec<u8>> {
        panic!("the TPM was used")
    }
    fn storage_root_key(&self) -> hsm_core::Result<Vec<u8>> {
        panic!("the TPM was used")
    }
    fn activate_identity_key(&self, _: &[u8]) -> hsm_core::Result<()> {
        panic!("the TPM was used")
    }
}

impl hsm_core::SasSigner for NoTpm {
    fn sign_with_identity(&self, _: &[u8]) -> hsm_core::Result<Vec<u8>> {
        panic!("the TPM was used")
    }
}

/// The EK of a fresh swtpm, as the emulator's configuration wants it.
fn ek_b64() -> String {
    use base64::Engine as _;
    let swtpm = hsm_tpm::testing::Swtpm::start().unwrap();
    let tpm = hsm_tpm::Tpm::open(hsm_tpm::TpmOptions::new(swtpm.tcti())).unwrap();
    base64::engine::general_purpose::STANDARD.encode(hsm_core::TpmIdentity::endorsement_key(&tpm).unwrap())
}
