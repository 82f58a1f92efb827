//! The library over AMQP (TLS) against the emulator's AMQP listener (issue 23): x509 and symmetric keys, the
//! payload, and the refusals (SASL for a wrong key, the link for an untrusted chain, TLS for an untrusted
//! server), nothing listening, TPM refused before any connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use dps_device::{Error, ProvisioningClient, Transport};
use dps_emulator::Enrollment;
use serde_json::json;

#[tokio::test]
async fn x509_file_key_is_assigned_with_payload() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root("group root");
    let intermediate = root.intermediate("group intermediate");
    let id = intermediate.file_identity(dir.path(), "amqp-x509", &[&intermediate]);
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![root.der()],
    }]);
    let payload = json!({"site": "plant-5"});
    let a = amqp_client(&emu, options())
        .register(&x509(id), Some(payload.clone()))
        .await
        .unwrap();
    assert_assigned(&a, "amqp-x509");
    assert_eq!(a.payload, Some(payload));
}

#[tokio::test]
async fn symmetric_individual_and_group_are_assigned() {
    let emu = emulator(vec![
        Enrollment::SymmetricIndividual {
            registration_id: "amqp-symm".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        },
        Enrollment::SymmetricGroup {
            name: "fleet".into(),
            primary_key: GROUP_KEY.into(),
            secondary_key: None,
        },
    ]);
    let client = amqp_client(&emu, options());
    assert_assigned(
        &client
            .register(&symmetric("amqp-symm", DEVICE_KEY), None)
            .await
            .unwrap(),
        "amqp-symm",
    );
    let derived = hsm_core::sas::encode_key(&hsm_core::sas::derive_device_key(GROUP_KEY, "amqp-group-1").unwrap());
    assert_assigned(
        &client
            .register(&symmetric("amqp-group-1", &derived), None)
            .await
            .unwrap(),
        "amqp-group-1",
    );
}

/// AMQP over WebSockets on the emulator's HTTPS port (`/$iothub/websocket`, subprotocol `AMQPWSB10`).
#[tokio::test]
async fn amqp_ws_symmetric_and_x509_are_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root("ws root");
    let emu = emulator(vec![
        Enrollment::SymmetricIndividual {
            registration_id: "amqp-ws-symm".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        },
        Enrollment::X509Group {
            name: "fleet".into(),
            ca: vec![root.der()],
        },
    ]);
    let client = ProvisioningClient::new(
        &emu.global_endpoint(),
        SCOPE,
        Transport::AmqpWs,
        roots(&emu.server_ca_pem()),
        options(),
    );
    assert_assigned(
        &client
            .register(&symmetric("amqp-ws-symm", DEVICE_KEY), None)
            .await
            .unwrap(),
        "amqp-ws-symm",
    );
    let id = root.file_identity(dir.path(), "amqp-ws-x509", &[]);
    assert_assigned(&client.register(&x509(id), None).await.unwrap(), "amqp-ws-x509");
    let e = client
        .register(&symmetric("amqp-ws-symm", GROUP_DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Transport { transport: Transport::AmqpWs, message } if message.contains("refused the SAS token")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_wrong_key_is_refused_at_sasl() {
    let emu = emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "amqp-symm".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]);
    let e = amqp_client(&emu, options())
        .register(&symmetric("amqp-symm", GROUP_DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Transport { transport: Transport::Amqp, message } if message.contains("refused the SAS token")),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_untrusted_chain_is_refused_at_attach() {
    let dir = tempfile::tempdir().unwrap();
    let enrolled = Ca::root("enrolled");
    let rogue = Ca::root("rogue");
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![enrolled.der()],
    }]);
    let client = amqp_client(&emu, options());
    let e = client
        .register(&x509(rogue.file_identity(dir.path(), "dev-r", &[])), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Transport { transport: Transport::Amqp, message } if message.contains("link")),
        "{e:?}"
    );
    // The same client with an enrolled identity is admitted: the refusal was about the chain.
    assert_assigned(
        &client
            .register(&x509(enrolled.file_identity(dir.path(), "dev-a", &[])), None)
            .await
            .unwrap(),
        "dev-a",
    );
}

#[tokio::test]
async fn an_untrusted_server_is_a_tls_error() {
    let emu = emulator(vec![]);
    let other = Ca::root("not the server's CA");
    let mut store = rustls::RootCertStore::empty();
    store.add(other.der()).unwrap();
    let client = ProvisioningClient::new(&emu.amqp_endpoint(), SCOPE, Transport::Amqp, store, options());
    let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Tls {
                transport: Transport::Amqp,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn nothing_listening_fails_fast() {
    let emu = emulator(vec![]);
    let client = amqp_client(&emu, options());
    drop(emu);
    let started = Instant::now();
    let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                transport: Transport::Amqp,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
