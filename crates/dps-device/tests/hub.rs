//! `dps_device::hub` against the emulator's IoT Hub: provision, connect with the same identity through
//! rumqttc (x509 TLS identity, SAS signed by the symmetric identity), over MQTT and MQTT over WebSockets,
//! send telemetry, patch and read the twin, and see the message where the service reads it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use dps_device::hub::{HubConnection, HubOptions, HubTopics};
use dps_device::{Attestation, Transport};
use dps_emulator::{Emulator, Enrollment};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};

/// The next incoming packet of `events` that `want` picks, within 20 s.
async fn wait_for<T>(events: &mut EventLoop, mut want: impl FnMut(&Packet) -> Option<T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(p)) => {
                    if let Some(t) = want(&p) {
                        return t;
                    }
                }
                Ok(Event::Outgoing(_)) => {}
                Err(e) => panic!("the hub connection failed: {e}"),
            }
        }
    })
    .await
    .expect("no answer within 20 s")
}

async fn provision_and_use_the_hub(emu: &Emulator, t: Transport, attestation: &Attestation, registration_id: &str) {
    let assignment = client(emu, t, options()).register(attestation, None).await.unwrap();
    assert_assigned(&assignment, registration_id);
    let mut hub_options = HubOptions::new(roots(&emu.server_ca_pem()));
    hub_options.transport = t;
    hub_options.endpoint = Some(endpoint(emu, t));
    let hub = HubConnection::new(&assignment, attestation, hub_options).await.unwrap();
    let topics = hub.topics();
    let (client, mut events) = AsyncClient::new(hub.mqtt_options().await.unwrap(), 10);
    wait_for(&mut events, |p| matches!(p, Packet::ConnAck(_)).then_some(())).await;

    client
        .subscribe(topics.twin_responses(), QoS::AtMostOnce)
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::SubAck(_)).then_some(())).await;
    let body = format!("hello from {registration_id} over {t}");
    client
        .publish(topics.telemetry("kind=greeting"), QoS::AtLeastOnce, false, body.clone())
        .await
        .unwrap();
    wait_for(&mut events, |p| matches!(p, Packet::PubAck(_)).then_some(())).await;

    client
        .publish(
            topics.twin_patch_reported("1"),
            QoS::AtMostOnce,
            false,
            r#"{"firmware":"1.2.3"}"#,
        )
        .await
        .unwrap();
    let status = wait_for(&mut events, |p| match p {
        Packet::Publish(p) => HubTopics::twin_answer(&p.topic)
            .filter(|(_, rid)| rid == "1")
            .map(|(s, _)| s),
        _ => None,
    })
    .await;
    assert_eq!(status, 204);
    client
        .publish(topics.twin_get("2"), QoS::AtMostOnce, false, "")
        .await
        .unwrap();
    let twin = wait_for(&mut events, |p| match p {
        Packet::Publish(p) if HubTopics::twin_answer(&p.topic) == Some((200, "2".into())) => {
            Some(serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap())
        }
        _ => None,
    })
    .await;
    assert_eq!(twin["reported"]["firmware"], "1.2.3", "{twin}");
    client.disconnect().await.unwrap();

    let kept = emu.hub_messages(Some(&assignment.device_id));
    assert!(
        kept.iter()
            .any(|m| m.body == body.as_bytes() && m.properties == vec![("kind".into(), "greeting".into())]),
        "{kept:?}"
    );
}

#[tokio::test]
async fn symmetric_key_device_provisions_connects_and_sends_over_mqtt_and_websockets() {
    let emu = emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "hub-sym".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]);
    let attestation = symmetric("hub-sym", DEVICE_KEY);
    for t in [Transport::Mqtt, Transport::MqttWs] {
        provision_and_use_the_hub(&emu, t, &attestation, "hub-sym").await;
    }
}

#[tokio::test]
async fn x509_device_provisions_connects_and_sends_over_mqtt_and_websockets() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root("hub fleet root");
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![root.der()],
    }]);
    let attestation = x509(root.file_identity(dir.path(), "hub-x509", &[]));
    for t in [Transport::Mqtt, Transport::MqttWs] {
        provision_and_use_the_hub(&emu, t, &attestation, "hub-x509").await;
    }
}

#[tokio::test]
async fn a_wrong_device_key_is_refused_by_the_hub() {
    let emu = emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "hub-wrong".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]);
    let assignment = mqtt_client(&emu, options())
        .register(&symmetric("hub-wrong", DEVICE_KEY), None)
        .await
        .unwrap();
    let mut hub_options = HubOptions::new(roots(&emu.server_ca_pem()));
    hub_options.endpoint = Some(emu.mqtt_endpoint());
    // The same device id, but a key DPS did not register it with.
    let imposter = symmetric("hub-wrong", GROUP_DEVICE_KEY);
    let hub = HubConnection::new(&assignment, &imposter, hub_options).await.unwrap();
    let (_client, mut events) = AsyncClient::new(hub.mqtt_options().await.unwrap(), 10);
    match tokio::time::timeout(Duration::from_secs(20), events.poll())
        .await
        .unwrap()
    {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::ConnectReturnCode::NotAuthorized)
        }
        other => panic!("expected CONNACK 5, got {other:?}"),
    }
}

#[tokio::test]
async fn a_sas_device_stays_connected_across_ten_token_renewals() {
    let emu = emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "hub-renew".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]);
    let attestation = symmetric("hub-renew", DEVICE_KEY);
    let assignment = mqtt_client(&emu, options()).register(&attestation, None).await.unwrap();
    let mut hub_options = HubOptions::new(roots(&emu.server_ca_pem()));
    hub_options.endpoint = Some(emu.mqtt_endpoint());
    hub_options.sas_lifetime = Duration::from_secs(3);
    let hub = HubConnection::new(&assignment, &attestation, hub_options)
        .await
        .unwrap();
    let renew_after = hub.renew_after().unwrap();
    assert!(renew_after < Duration::from_secs(2), "{renew_after:?}");
    let mut connections = 0;
    for renewal in 0..=10 {
        // A fresh token for each connection; the previous one is left before its token expires.
        let (client, mut events) = AsyncClient::new(hub.mqtt_options().await.unwrap(), 10);
        connections += 1;
        let due = tokio::time::Instant::now() + renew_after;
        wait_for(&mut events, |p| matches!(p, Packet::ConnAck(_)).then_some(())).await;
        client
            .publish(
                hub.topics().telemetry(""),
                QoS::AtLeastOnce,
                false,
                format!("renewal {renewal}"),
            )
            .await
            .unwrap();
        wait_for(&mut events, |p| matches!(p, Packet::PubAck(_)).then_some(())).await;
        // Serve the connection until the renewal is due: the hub must not drop it before.
        let served = tokio::time::timeout_at(due, async {
            loop {
                if let Err(e) = events.poll().await {
                    return e;
                }
            }
        })
        .await;
        assert!(
            served.is_err(),
            "the hub dropped the connection before renewal {renewal}: {served:?}"
        );
        client.disconnect().await.unwrap();
    }
    assert_eq!(connections, 11, "one connection per token, no reconnect storm");
    let kept = emu.hub_messages(Some("hub-renew"));
    assert_eq!(kept.len(), 11, "{kept:?}");
    assert_eq!(kept[10].body, b"renewal 10");
}
