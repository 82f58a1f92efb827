//! The MQTT listener keeps the MQTT 3.1.1 server obligations (UNSUBACK, PINGRESP, PUBACK for QoS 1, the
//! keep-alive); its connection cap and request deadline are tested with the HTTPS listener's in `limits.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use common::mqtt::{DEVICE, connect, next, register, send};
use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Login, Packet, Publish, Subscribe};
use rustls::{ClientConnection, StreamOwned};

/// Every test here takes this lock: the keep-alive's timing is measured without the other tests' load.
static SERIAL: Mutex<()> = Mutex::new(());

const MAX_CONNECTIONS: usize = 8;

fn emulator(request_timeout: Duration) -> Emulator {
    Emulator::start_with(
        config(vec![Enrollment::SymmetricIndividual {
            registration_id: DEVICE.into(),
            primary_key: GROUP_DEVICE_KEY.into(),
            secondary_key: None,
        }]),
        0,
        ServerOptions {
            retry_after: Duration::from_secs(1),
            max_connections: MAX_CONNECTIONS,
            request_timeout,
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn unsubscribe_pingreq_and_qos1_publish_are_answered() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = emulator(Duration::from_secs(30));
    register(&emu);
}

#[test]
fn keep_alive_is_enforced_at_one_and_a_half_times() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // The request deadline is long: only the keep-alive can close the connection in time.
    let emu = emulator(Duration::from_secs(60));
    let (mut s, _) = connect(&emu, 2);
    let took = common::until_closed(&mut s.sock, Duration::from_secs(10));
    assert!(
        took >= Duration::from_millis(2500) && took <= Duration::from_millis(4000),
        "closed after {took:?} (keep-alive 2 s: 3 s expected)"
    );

    // A client that pings in time keeps its connection.
    let (mut s, mut buf) = connect(&emu, 2);
    for _ in 0..3 {
        // Pacing: a ping every 1.5 s (within the 3 s window) is the behaviour under test.
        std::thread::sleep(Duration::from_millis(1500));
        send(&mut s, Packet::PingReq);
        assert!(matches!(next(&mut s, &mut buf), Packet::PingResp));
    }
}

/// A throttled IoT Hub credentials request answers 429 in DPS's error shape, `info.retryAfter` included.
#[test]
fn a_throttled_credentials_request_carries_retry_after_in_its_error_body() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let ca = Ca::root("hub test CA");
    let device = ca.leaf("hub-device");
    let emu = Emulator::start_with(
        config(vec![Enrollment::X509Individual {
            registration_id: "hub-device".into(),
            certificate: vec![device.leaf()],
        }]),
        0,
        ServerOptions {
            issuance: dps_emulator::IssuanceOptions {
                credentials_throttle: 1,
                ..dps_emulator::IssuanceOptions::default()
            },
            ..ServerOptions::default()
        },
    )
    .unwrap();
    // The hub knows only devices DPS assigned.
    let https = agent(&emu, Some(&device), common::Tls::Any);
    assert_assigned(&provision(&https, &emu, "hub-device", None), "hub-device");
    let config = client_builder(&emu.server_ca_pem(), common::Tls::Any)
        .with_client_auth_cert(device.chain.clone(), device.key.clone_key())
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tcp = TcpStream::connect(emu.mqtt_endpoint()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut s = StreamOwned::new(ClientConnection::new(Arc::new(config), name).unwrap(), tcp);
    let mut connect = Connect::new("hub-device");
    connect.login = Some(Login::new(
        format!("{HUB}/hub-device/?api-version=2025-08-01-preview"),
        "",
    ));
    send(&mut s, Packet::Connect(connect));
    let mut buf = BytesMut::new();
    match next(&mut s, &mut buf) {
        Packet::ConnAck(a) => assert_eq!(a.code, ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    send(
        &mut s,
        Packet::Subscribe(Subscribe::new("$iothub/credentials/res/#", QoS::AtMostOnce)),
    );
    assert!(matches!(next(&mut s, &mut buf), Packet::SubAck(_)));
    send(
        &mut s,
        Packet::Publish(Publish::new(
            "$iothub/credentials/POST/issueCertificate/?$rid=5",
            QoS::AtMostOnce,
            r#"{"id":"hub-device","csr":"AAAA"}"#,
        )),
    );
    let Packet::Publish(answer) = next(&mut s, &mut buf) else {
        panic!("no answer")
    };
    assert_eq!(answer.topic, "$iothub/credentials/res/429/?$rid=5&retry-after=1");
    let body: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(body["errorCode"], 429002, "{body}");
    assert_eq!(body["info"]["retryAfter"], "1", "{body}");
    assert!(body["trackingId"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    assert!(body["timestampUtc"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
}
