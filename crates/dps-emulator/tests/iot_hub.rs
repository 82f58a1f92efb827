//! The emulator's IoT Hub over MQTT/TLS: a device DPS assigned connects with a SAS token of its DPS key or
//! with its x509 chain, sends telemetry (kept, read back through the accessor and the service call), reads
//! its twin and patches its reported properties; wrong keys, unknown devices, expired tokens and wrong
//! client ids are refused with IoT Hub's CONNACK codes, and hostile publishes close the session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions, ServicePolicy};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Login, Packet, Publish, Subscribe};
use rustls::{ClientConnection, StreamOwned};

const DEVICE: &str = "hub-device";
const POLICY_KEY: &str = "c2VydmljZS1wb2xpY3kta2V5LWZvci10ZXN0cy0wMDAwMDA=";
const API: &str = "2021-04-12";

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn emulator(enrollments: Vec<Enrollment>) -> Emulator {
    Emulator::start_with(
        config(enrollments),
        0,
        ServerOptions {
            retry_after: Duration::from_millis(0),
            service_policies: vec![ServicePolicy::owner("owner", POLICY_KEY)],
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

fn symmetric(id: &str) -> Enrollment {
    Enrollment::SymmetricIndividual {
        registration_id: id.into(),
        primary_key: GROUP_DEVICE_KEY.into(),
        secondary_key: None,
    }
}

fn tls(emu: &Emulator, device: Option<&Identity>) -> Tls {
    let builder = client_builder(&emu.server_ca_pem(), common::Tls::Any);
    let config = match device {
        Some(d) => builder
            .with_client_auth_cert(d.chain.clone(), d.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(emu.mqtt_endpoint()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    StreamOwned::new(conn, tcp)
}

fn send(s: &mut Tls, packet: Packet) {
    let mut out = BytesMut::new();
    packet.write(&mut out, usize::MAX).unwrap();
    s.write_all(&out).unwrap();
    s.flush().unwrap();
}

/// The next packet, or `None` when the server closed the connection.
fn next(s: &mut Tls, buf: &mut BytesMut) -> Option<Packet> {
    loop {
        match Packet::read(buf, 1 << 20) {
            Ok(p) => return Some(p),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                let mut chunk = [0u8; 4096];
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// CONNECT as the C SDK does (`{hub}/{deviceId}/?api-version=...`); the CONNACK code and the session.
fn connect(
    emu: &Emulator,
    client_id: &str,
    device_id: &str,
    password: &str,
    x509: Option<&Identity>,
) -> (ConnectReturnCode, Tls, BytesMut) {
    let mut s = tls(emu, x509);
    let mut connect = Connect::new(client_id);
    connect.keep_alive = 60;
    connect.login = Some(Login::new(
        format!("{HUB}/{device_id}/?api-version={API}&DeviceClientType=test"),
        password,
    ));
    send(&mut s, Packet::Connect(connect));
    let mut buf = BytesMut::new();
    match next(&mut s, &mut buf) {
        Some(Packet::ConnAck(a)) => (a.code, s, buf),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

fn provision_sas(emu: &Emulator, id: &str) {
    let agent = agent(emu, None, common::Tls::Any);
    let body = provision(&agent, emu, id, Some(&sas(id, GROUP_DEVICE_KEY, now() + 600)));
    assert_assigned(&body, id);
}

fn publish(s: &mut Tls, buf: &mut BytesMut, topic: &str, payload: &str, pkid: u16) -> Option<Packet> {
    let mut p = Publish::new(topic, QoS::AtLeastOnce, payload.as_bytes().to_vec());
    p.pkid = pkid;
    send(s, Packet::Publish(p));
    next(s, buf)
}

#[test]
fn sas_device_sends_telemetry_and_uses_its_twin() {
    let emu = emulator(vec![symmetric(DEVICE)]);
    provision_sas(&emu, DEVICE);
    let token = hub_sas(HUB, DEVICE, GROUP_DEVICE_KEY, now() + 600);
    let (code, mut s, mut buf) = connect(&emu, DEVICE, DEVICE, &token, None);
    assert_eq!(code, ConnectReturnCode::Success);
    send(
        &mut s,
        Packet::Subscribe(Subscribe::new("$iothub/twin/res/#", QoS::AtMostOnce)),
    );
    assert!(matches!(next(&mut s, &mut buf), Some(Packet::SubAck(_))));

    let topic = format!("devices/{DEVICE}/messages/events/temp=21&%24.ct=application%2Fjson");
    match publish(&mut s, &mut buf, &topic, r#"{"t":21}"#, 3) {
        Some(Packet::PubAck(a)) => assert_eq!(a.pkid, 3),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    match publish(
        &mut s,
        &mut buf,
        "$iothub/twin/PATCH/properties/reported/?$rid=7",
        r#"{"fw":"1.0"}"#,
        4,
    ) {
        Some(Packet::PubAck(_)) => {}
        other => panic!("expected PUBACK, got {other:?}"),
    }
    match next(&mut s, &mut buf) {
        Some(Packet::Publish(p)) => assert_eq!(p.topic, "$iothub/twin/res/204/?$rid=7&$version=2"),
        other => panic!("expected the patch answer, got {other:?}"),
    }
    send(
        &mut s,
        Packet::Publish(Publish::new("$iothub/twin/GET/?$rid=8", QoS::AtMostOnce, Vec::new())),
    );
    match next(&mut s, &mut buf) {
        Some(Packet::Publish(p)) => {
            assert_eq!(p.topic, "$iothub/twin/res/200/?$rid=8");
            let twin: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
            assert_eq!(twin["reported"]["fw"], "1.0");
            assert_eq!(twin["reported"]["$version"], 2);
        }
        other => panic!("expected the twin, got {other:?}"),
    }

    let kept = emu.hub_messages(Some(DEVICE));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].body, br#"{"t":21}"#);
    assert_eq!(
        kept[0].properties,
        vec![("temp".into(), "21".into()), ("$.ct".into(), "application/json".into())]
    );

    // The service call over HTTPS, with a service SAS token.
    let host = emu.global_endpoint();
    let key = hsm_core::sas::decode_key("policy", POLICY_KEY).unwrap();
    let expiry = now() + 600;
    let sig = hsm_core::sas::hmac_sha256(
        &key,
        format!("{}\n{expiry}", hsm_core::sas::url_encode(&host)).as_bytes(),
    );
    use base64::Engine as _;
    let token = format!(
        "SharedAccessSignature sr={}&sig={}&se={expiry}&skn=owner",
        hsm_core::sas::url_encode(&host),
        hsm_core::sas::url_encode(&base64::engine::general_purpose::STANDARD.encode(sig))
    );
    let url = format!("https://{host}/devices/{DEVICE}/messages/events?api-version=2021-10-01");
    let agent = agent(&emu, None, common::Tls::Any);
    let (status, body) = outcome(agent.get(&url).set("Authorization", &token).call());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["deviceId"], DEVICE);
    assert_eq!(body[0]["body"], "eyJ0IjoyMX0=");
    let (status, _) = outcome(agent.get(&url).call());
    assert_eq!(status, 401);
}

#[test]
fn group_derived_key_and_x509_devices_connect() {
    let ca = Ca::root("hub test CA");
    let emu = emulator(vec![
        Enrollment::SymmetricGroup {
            name: "group".into(),
            primary_key: GROUP_KEY.into(),
            secondary_key: None,
        },
        Enrollment::X509Group {
            name: "fleet".into(),
            ca: vec![ca.der()],
        },
    ]);
    // GROUP_DEVICE_KEY is the key derived from GROUP_KEY for "device-0001" (shared/test-vectors.md).
    provision_sas(&emu, "device-0001");
    let (code, ..) = connect(
        &emu,
        "device-0001",
        "device-0001",
        &hub_sas(HUB, "device-0001", GROUP_DEVICE_KEY, now() + 600),
        None,
    );
    assert_eq!(code, ConnectReturnCode::Success);

    let leaf = ca.leaf("x509-device");
    let agent = agent(&emu, Some(&leaf), common::Tls::Any);
    assert_assigned(&provision(&agent, &emu, "x509-device", None), "x509-device");
    let (code, mut s, mut buf) = connect(&emu, "x509-device", "x509-device", "", Some(&leaf));
    assert_eq!(code, ConnectReturnCode::Success);
    match publish(&mut s, &mut buf, "devices/x509-device/messages/events/", "hello", 1) {
        Some(Packet::PubAck(_)) => {}
        other => panic!("expected PUBACK, got {other:?}"),
    }
    assert_eq!(emu.hub_messages(Some("x509-device"))[0].body, b"hello");

    // Another CA's certificate with the same CN: refused.
    let stranger = Ca::root("stranger").leaf("x509-device");
    let (code, ..) = connect(&emu, "x509-device", "x509-device", "", Some(&stranger));
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
}

#[test]
fn wrong_key_unknown_device_expired_token_and_wrong_client_id_are_refused() {
    let emu = emulator(vec![symmetric(DEVICE), symmetric("never-registered")]);
    provision_sas(&emu, DEVICE);
    let other_key = "b3RoZXIta2V5LW9mLXRoZS1yaWdodC1sZW5ndGgtMDAwMDA=";
    let cases = [
        (
            DEVICE,
            DEVICE,
            hub_sas(HUB, DEVICE, other_key, now() + 600),
            ConnectReturnCode::NotAuthorized,
        ),
        (
            DEVICE,
            DEVICE,
            hub_sas(HUB, DEVICE, GROUP_DEVICE_KEY, now() - 1),
            ConnectReturnCode::NotAuthorized,
        ),
        (
            "never-registered",
            "never-registered",
            hub_sas(HUB, "never-registered", GROUP_DEVICE_KEY, now() + 600),
            ConnectReturnCode::NotAuthorized,
        ),
        (
            "someone-else",
            DEVICE,
            hub_sas(HUB, DEVICE, GROUP_DEVICE_KEY, now() + 600),
            ConnectReturnCode::BadClientId,
        ),
        // A token for another device's resource.
        (
            DEVICE,
            DEVICE,
            hub_sas(HUB, "someone-else", GROUP_DEVICE_KEY, now() + 600),
            ConnectReturnCode::NotAuthorized,
        ),
        (DEVICE, DEVICE, String::new(), ConnectReturnCode::NotAuthorized),
    ];
    for (client_id, device_id, password, expected) in cases {
        let (code, mut s, mut buf) = connect(&emu, client_id, device_id, &password, None);
        assert_eq!(code, expected, "client {client_id}, device {device_id}");
        assert!(next(&mut s, &mut buf).is_none(), "the refused connection stays open");
    }
    assert!(emu.hub_messages(None).is_empty());
}

#[test]
fn hostile_publishes_close_the_session() {
    let emu = emulator(vec![symmetric(DEVICE)]);
    provision_sas(&emu, DEVICE);
    let token = hub_sas(HUB, DEVICE, GROUP_DEVICE_KEY, now() + 600);
    let long = "x".repeat(60_000);
    let hostile = [
        "devices/someone-else/messages/events/".to_string(),
        format!("devices/{DEVICE}/messages/devicebound/"),
        "$iothub/nothing/here".to_string(),
        format!("$iothub/{long}"),
    ];
    for topic in hostile {
        let (code, mut s, mut buf) = connect(&emu, DEVICE, DEVICE, &token, None);
        assert_eq!(code, ConnectReturnCode::Success);
        assert!(
            publish(&mut s, &mut buf, &topic, "x", 1).is_none(),
            "publishing to {:.60} kept the session",
            topic
        );
    }
    // A twin request without $rid is answered 400, and the session goes on.
    let (_, mut s, mut buf) = connect(&emu, DEVICE, DEVICE, &token, None);
    send(
        &mut s,
        Packet::Publish(Publish::new("$iothub/twin/GET/?", QoS::AtMostOnce, Vec::new())),
    );
    match next(&mut s, &mut buf) {
        Some(Packet::Publish(p)) => assert!(p.topic.starts_with("$iothub/twin/res/400/"), "{}", p.topic),
        other => panic!("expected a 400, got {other:?}"),
    }
    // Another device's subscription is refused.
    send(
        &mut s,
        Packet::Subscribe(Subscribe::new(
            "devices/someone-else/messages/devicebound/#",
            QoS::AtMostOnce,
        )),
    );
    match next(&mut s, &mut buf) {
        Some(Packet::SubAck(a)) => assert_eq!(
            a.return_codes,
            vec![rumqttc::mqttbytes::v4::SubscribeReasonCode::Failure]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    assert!(emu.hub_messages(None).is_empty());
}

#[test]
fn a_session_ends_when_its_token_expires() {
    let emu = emulator(vec![symmetric(DEVICE)]);
    provision_sas(&emu, DEVICE);
    let expiry = now() + 2;
    let (code, mut s, mut buf) = connect(
        &emu,
        DEVICE,
        DEVICE,
        &hub_sas(HUB, DEVICE, GROUP_DEVICE_KEY, expiry),
        None,
    );
    assert_eq!(code, ConnectReturnCode::Success);
    // The read timeout (20 s) bounds the wait; the hub closes the session at the token's expiry.
    assert!(next(&mut s, &mut buf).is_none(), "the session outlived its token");
    assert!(now() >= expiry, "closed at {} before the expiry {expiry}", now());
    assert!(
        now() <= expiry + 2,
        "closed at {}, long after the expiry {expiry}",
        now()
    );
}

#[test]
fn malformed_hub_usernames_and_another_hub_are_refused() {
    let emu = emulator(vec![symmetric(DEVICE)]);
    provision_sas(&emu, DEVICE);
    let token = hub_sas(HUB, DEVICE, GROUP_DEVICE_KEY, now() + 600);
    let long = "h".repeat(30_000);
    let usernames = [
        format!("{HUB}/{DEVICE}"),
        format!("{HUB}/{DEVICE}/?api-version="),
        format!("{HUB}/{DEVICE}/?DeviceClientType=x"),
        format!("other-hub.example.test/{DEVICE}/?api-version={API}"),
        format!("{long}/{DEVICE}/?api-version={API}"),
    ];
    for username in usernames {
        let mut s = tls(&emu, None);
        let mut connect = Connect::new(DEVICE);
        connect.login = Some(Login::new(username.clone(), token.clone()));
        send(&mut s, Packet::Connect(connect));
        let mut buf = BytesMut::new();
        match next(&mut s, &mut buf) {
            Some(Packet::ConnAck(a)) => assert_eq!(a.code, ConnectReturnCode::BadUserNamePassword, "{username:.80}"),
            other => panic!("expected CONNACK for {username:.80}, got {other:?}"),
        }
        assert!(next(&mut s, &mut buf).is_none(), "the refused connection stays open");
    }
}
