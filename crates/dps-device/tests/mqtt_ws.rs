//! The library over MQTT over WebSockets (TLS, `/$iothub/websocket`, subprotocol `mqtt`) against the
//! emulator's HTTPS port: x509 and symmetric keys, and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::scripted::{Scripted, Step};
use common::*;
use dps_device::{Attestation, Error, Options, ProvisioningClient, Transport};
use dps_emulator::{Emulator, Enrollment};
use serde_json::json;

fn ws_client(emu: &Emulator, options: Options) -> ProvisioningClient {
    ProvisioningClient::new(
        &emu.global_endpoint(),
        SCOPE,
        Transport::MqttWs,
        roots(&emu.server_ca_pem()),
        options,
    )
}

fn assert_refused_ws(result: Result<dps_device::Assignment, Error>, code: u8) {
    match result {
        Err(Error::ConnectionRefused {
            code: c,
            transport: Transport::MqttWs,
            ..
        }) => assert_eq!(c, code),
        other => panic!("expected CONNACK {code} over WebSockets, got {other:?}"),
    }
}

#[tokio::test]
async fn x509_file_key_is_assigned_with_payload() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root("group root");
    let intermediate = root.intermediate("group intermediate");
    let id = intermediate.file_identity(dir.path(), "ws-x509", &[&intermediate]);
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![root.der()],
    }]);
    let payload = json!({"site": "plant-9"});
    let a = ws_client(&emu, options())
        .register(&x509(id), Some(payload.clone()))
        .await
        .unwrap();
    assert_assigned(&a, "ws-x509");
    assert_eq!(a.payload, Some(payload));
}

#[tokio::test]
async fn symmetric_individual_and_group_are_assigned() {
    let emu = emulator(vec![
        Enrollment::SymmetricIndividual {
            registration_id: "ws-symm".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        },
        Enrollment::SymmetricGroup {
            name: "fleet".into(),
            primary_key: GROUP_KEY.into(),
            secondary_key: None,
        },
    ]);
    let client = ws_client(&emu, options());
    assert_assigned(
        &client.register(&symmetric("ws-symm", DEVICE_KEY), None).await.unwrap(),
        "ws-symm",
    );
    let derived = hsm_core::sas::encode_key(&hsm_core::sas::derive_device_key(GROUP_KEY, "ws-group-1").unwrap());
    assert_assigned(
        &client.register(&symmetric("ws-group-1", &derived), None).await.unwrap(),
        "ws-group-1",
    );
}

#[tokio::test]
async fn untrusted_chain_cn_mismatch_and_wrong_key_are_refused_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let enrolled = Ca::root("enrolled");
    let rogue = Ca::root("rogue");
    let emu = emulator(vec![
        Enrollment::X509Group {
            name: "fleet".into(),
            ca: vec![enrolled.der()],
        },
        Enrollment::SymmetricIndividual {
            registration_id: "ws-symm".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        },
    ]);
    let client = ws_client(&emu, options());
    assert_refused_ws(
        client
            .register(&x509(rogue.file_identity(dir.path(), "dev-r", &[])), None)
            .await,
        5,
    );
    let good = enrolled.file_identity(dir.path(), "dev-a", &[]);
    assert_refused_ws(client.register_as(&x509(good.clone()), Some("dev-b"), None).await, 5);
    assert_refused_ws(client.register(&symmetric("ws-symm", GROUP_DEVICE_KEY), None).await, 5);
    // The same identities done right are admitted: the refusals were about the chain, the CN and the key.
    assert_assigned(&client.register(&x509(good), None).await.unwrap(), "dev-a");
    assert_assigned(
        &client.register(&symmetric("ws-symm", DEVICE_KEY), None).await.unwrap(),
        "ws-symm",
    );
}

#[tokio::test]
async fn an_untrusted_server_is_a_tls_error() {
    let emu = emulator(vec![]);
    let other = emulator(vec![]);
    // Trusting another emulator's CA: the server certificate does not verify.
    let client = ProvisioningClient::new(
        &emu.global_endpoint(),
        SCOPE,
        Transport::MqttWs,
        roots(&other.server_ca_pem()),
        options(),
    );
    let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
    assert!(
        matches!(&e, Error::Tls { transport: Transport::MqttWs, message } if message.contains("certificate")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_refused_upgrade_names_the_path_and_the_status() {
    let body = "no such endpoint";
    let server = Scripted::start(vec![Step::Raw(
        format!(
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )]);
    let client = ProvisioningClient::new(
        &server.endpoint,
        SCOPE,
        Transport::MqttWs,
        roots(&server.ca_pem),
        options(),
    );
    let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            &e,
            Error::Transport {
                transport: Transport::MqttWs,
                ..
            }
        ) && text.contains("/$iothub/websocket")
            && text.contains("404"),
        "{e:?}"
    );
}

#[tokio::test]
async fn tpm_is_refused_before_any_connection() {
    // Nothing listens on port 1: an attempt to connect would be a transport error.
    let client = ProvisioningClient::new(
        "127.0.0.1:1",
        SCOPE,
        Transport::MqttWs,
        rustls::RootCertStore::empty(),
        options(),
    );
    let tpm: Box<dyn hsm_core::TpmIdentity> = Box::new(NoTpm);
    let e = client
        .register_as(&Attestation::Tpm(Arc::new(Mutex::new(tpm))), Some("tpm-1"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidRequest(m) if m.contains("not supported over MQTT over WebSockets")),
        "{e:?}"
    );
}

/// A TPM identity that must never be used.
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

#[tokio::test]
async fn a_server_closing_after_the_request_is_a_transport_error_in_bounded_time() {
    // A TLS server that reads the upgrade request and closes: no 101, no MQTT.
    let server = Scripted::start(vec![Step::Close]);
    let client = ProvisioningClient::new(
        &server.endpoint,
        SCOPE,
        Transport::MqttWs,
        roots(&server.ca_pem),
        options(),
    );
    let started = std::time::Instant::now();
    let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Transport {
                transport: Transport::MqttWs,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}
