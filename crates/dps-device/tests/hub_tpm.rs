//! A TPM device at the emulator's IoT Hub, on a fresh swtpm: it provisions over HTTPS (the assignment's hub
//! key activated in the TPM), connects to the hub with a SAS token signed inside the TPM and sends
//! telemetry; a token signed with another key is refused; the hub key survives an emulator restart (it is
//! kept with the registration state); a new assignment's key replaces the old one, whose tokens are then
//! refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use dps_device::hub::{HubConnection, HubOptions};
use dps_device::{Assignment, Attestation};
use dps_emulator::{Emulator, Enrollment, ServerOptions};
use hsm_core::TpmIdentity;
use hsm_tpm::testing::Swtpm;
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS};

fn start(enrollments: Vec<Enrollment>, state_dir: &Path) -> Emulator {
    let options = ServerOptions {
        state_dir: Some(state_dir.to_path_buf()),
        ..ServerOptions::default()
    };
    Emulator::start_with(test_support::emulator::config(enrollments), 0, options).unwrap()
}

async fn hub(emu: &Emulator, assignment: &Assignment, attestation: &Attestation) -> HubConnection {
    let mut options = HubOptions::new(roots(&emu.server_ca_pem()));
    options.endpoint = Some(emu.mqtt_endpoint());
    HubConnection::new(assignment, attestation, options).await.unwrap()
}

/// Connect with `options`; on CONNACK send one telemetry message and wait for its PUBACK.
async fn connect_and_send(options: MqttOptions, topic: String, body: &str) -> Result<(), ConnectionError> {
    let (client, mut events) = AsyncClient::new(options, 10);
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.poll().await? {
                Event::Incoming(Packet::ConnAck(_)) => {
                    client
                        .publish(topic.clone(), QoS::AtLeastOnce, false, body.to_string())
                        .await
                        .unwrap();
                }
                Event::Incoming(Packet::PubAck(_)) => {
                    client.disconnect().await.unwrap();
                    return Ok(());
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the hub answered within 20 s")
}

fn assert_not_authorized(result: Result<(), ConnectionError>) {
    match result {
        Err(ConnectionError::ConnectionRefused(code)) => assert_eq!(code, ConnectReturnCode::NotAuthorized),
        other => panic!("expected CONNACK 5 (not authorized), got {other:?}"),
    }
}

#[tokio::test]
async fn tpm_device_signs_hub_tokens_with_the_key_its_assignment_activated() {
    let state = tempfile::tempdir().unwrap();
    let swtpm = Swtpm::start().unwrap();
    let tpm: Box<dyn TpmIdentity> = Box::new(hsm_tpm::Tpm::open(hsm_tpm::TpmOptions::new(swtpm.tcti())).unwrap());
    let ek = tpm.endorsement_key().unwrap();
    let attestation = Attestation::Tpm(Arc::new(Mutex::new(tpm)));
    let registration_id = hsm_tpm::registration_id(&ek);
    let enrollments = vec![Enrollment::TpmIndividual {
        registration_id: registration_id.clone(),
        endorsement_key: base64::engine::general_purpose::STANDARD.encode(&ek),
    }];
    let emu = start(enrollments.clone(), state.path());
    let assignment = https_client(&emu, options())
        .register(&attestation, None)
        .await
        .unwrap();
    assert_assigned(&assignment, &registration_id);

    let connection = hub(&emu, &assignment, &attestation).await;
    assert!(
        connection.renew_after().is_some(),
        "a TPM device's SAS tokens are renewed"
    );
    let (password, expiry) = connection.password().await.unwrap();
    assert!(password.starts_with("SharedAccessSignature sr=") && expiry.is_some());
    let topic = connection.topics().telemetry("");
    connect_and_send(connection.mqtt_options().await.unwrap(), topic.clone(), "from the TPM")
        .await
        .unwrap();
    let kept = emu.hub_messages(Some(&assignment.device_id));
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].body, b"from the TPM");

    // The same device id with a token signed by a key that is not the activated hub key.
    let imposter = symmetric(&registration_id, DEVICE_KEY);
    let imposter = hub(&emu, &assignment, &imposter).await;
    assert_not_authorized(connect_and_send(imposter.mqtt_options().await.unwrap(), topic.clone(), "x").await);

    // The hub key is kept with the registration state: a restarted emulator still admits the device.
    drop(emu);
    let emu = start(enrollments, state.path());
    let connection = hub(&emu, &assignment, &attestation).await;
    connect_and_send(
        connection.mqtt_options().await.unwrap(),
        topic.clone(),
        "after a restart",
    )
    .await
    .unwrap();

    // A new assignment activates a new hub key: tokens of the old one are refused, the new key admitted.
    let (stale, _) = connection.password().await.unwrap();
    let again = https_client(&emu, options())
        .register(&attestation, None)
        .await
        .unwrap();
    assert_assigned(&again, &registration_id);
    let mut with_stale = connection.mqtt_options().await.unwrap();
    with_stale.set_credentials(connection.username(), stale);
    assert_not_authorized(connect_and_send(with_stale, topic.clone(), "stale").await);
    connect_and_send(connection.mqtt_options().await.unwrap(), topic, "with the new key")
        .await
        .unwrap();
    let bodies: Vec<_> = emu
        .hub_messages(Some(&again.device_id))
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, vec![b"after a restart".to_vec(), b"with the new key".to_vec()]);
}
