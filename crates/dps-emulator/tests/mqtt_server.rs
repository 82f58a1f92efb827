//! The MQTT listener keeps the MQTT 3.1.1 server obligations (UNSUBACK, PINGRESP, PUBACK for QoS 1, the
//! keep-alive) and the limits of the HTTPS listener (the connection cap, the request deadline).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Login, Packet, Publish, Subscribe, Unsubscribe};
use rustls::{ClientConnection, StreamOwned};

/// Thread counts are per process: every test here takes this lock.
static SERIAL: Mutex<()> = Mutex::new(());

const DEVICE: &str = "mqtt-device";
const MAX_CONNECTIONS: usize = 8;

type Tls = StreamOwned<ClientConnection, TcpStream>;

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

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn tls(emu: &Emulator) -> Tls {
    let config = client_builder(&emu.server_ca_pem(), common::Tls::Any).with_no_client_auth();
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

fn next(s: &mut Tls, buf: &mut BytesMut) -> Packet {
    loop {
        match Packet::read(buf, 1 << 20) {
            Ok(p) => return p,
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "the server closed the connection");
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// A connected DPS session with the given keep-alive (seconds).
fn connect(emu: &Emulator, keep_alive: u16) -> (Tls, BytesMut) {
    let mut s = tls(emu);
    let mut connect = Connect::new(DEVICE);
    connect.keep_alive = keep_alive;
    connect.login = Some(Login::new(
        format!("{SCOPE}/registrations/{DEVICE}/api-version=2019-03-31"),
        sas(DEVICE, GROUP_DEVICE_KEY, now() + 600),
    ));
    send(&mut s, Packet::Connect(connect));
    let mut buf = BytesMut::new();
    match next(&mut s, &mut buf) {
        Packet::ConnAck(a) => assert_eq!(a.code, ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    (s, buf)
}

/// Register over MQTT, answering what Node's client expects along the way.
fn register(emu: &Emulator) {
    let (mut s, mut buf) = connect(emu, 60);
    send(
        &mut s,
        Packet::Subscribe(Subscribe::new("$dps/registrations/res/#", QoS::AtLeastOnce)),
    );
    assert!(matches!(next(&mut s, &mut buf), Packet::SubAck(_)));
    let mut publish = Publish::new(
        "$dps/registrations/PUT/iotdps-register/?$rid=1",
        QoS::AtLeastOnce,
        format!(r#"{{"registrationId":"{DEVICE}"}}"#),
    );
    publish.pkid = 7;
    send(&mut s, Packet::Publish(publish));
    // PUBACK for the QoS 1 publish, then the answer.
    match next(&mut s, &mut buf) {
        Packet::PubAck(a) => assert_eq!(a.pkid, 7),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    match next(&mut s, &mut buf) {
        Packet::Publish(p) => assert!(p.topic.starts_with("$dps/registrations/res/202/?$rid=1"), "{}", p.topic),
        other => panic!("expected the answer, got {other:?}"),
    }
    send(&mut s, Packet::PingReq);
    assert!(matches!(next(&mut s, &mut buf), Packet::PingResp));
    let mut unsubscribe = Unsubscribe::new("$dps/registrations/res/#");
    unsubscribe.pkid = 9;
    send(&mut s, Packet::Unsubscribe(unsubscribe));
    match next(&mut s, &mut buf) {
        Packet::UnsubAck(a) => assert_eq!(a.pkid, 9),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    send(&mut s, Packet::Disconnect);
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

#[test]
fn idle_mqtt_connections_do_not_grow_threads_and_a_device_still_registers() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = emulator(Duration::from_secs(2));
    let before = threads();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(emu.mqtt_endpoint()).unwrap());
    }
    // Watch the threads until the listener has taken them all (closing idle ones to stay within the bound).
    let mut peak = 0;
    let port = test_support::wait::accept_queue_port(emu.mqtt_endpoint());
    test_support::wait::until_true(
        "the MQTT listener to accept 300 connections",
        test_support::wait::DEADLINE,
        || {
            peak = peak.max(threads());
            test_support::wait::accept_queue(port) == Some(0)
        },
    );
    peak = peak.max(threads());
    assert!(
        peak <= before + MAX_CONNECTIONS + 2,
        "{before} threads before 300 idle MQTT connections, {peak} with them"
    );
    let started = Instant::now();
    register(&emu);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "registering took {:?}",
        started.elapsed()
    );
    assert!(threads() <= before + MAX_CONNECTIONS + 2);
    drop(idle);
}

#[test]
fn a_client_sending_a_byte_now_and_then_is_cut_off_at_the_deadline() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let timeout = Duration::from_secs(2);
    let emu = emulator(timeout);

    // Before the TLS handshake: a record header, then a byte every 300 ms.
    let mut raw = TcpStream::connect(emu.mqtt_endpoint()).unwrap();
    raw.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let writer = raw.try_clone().unwrap();
    let dribble = std::thread::spawn(move || {
        let mut w = writer;
        while w.write_all(&[0]).is_ok() {
            // Pacing: the slow client under test.
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let took = common::until_closed(&mut raw, Duration::from_secs(10));
    assert!(took <= timeout + Duration::from_secs(1), "closed after {took:?}");
    dribble.join().unwrap();

    // After CONNECT (keep-alive 60 s): a PUBLISH a byte at a time, each well within any per-read timeout.
    let (mut s, _) = connect(&emu, 60);
    let mut packet = BytesMut::new();
    Packet::Publish(Publish::new(
        "$dps/registrations/PUT/iotdps-register/?$rid=1",
        QoS::AtMostOnce,
        vec![b'x'; 200],
    ))
    .write(&mut packet, usize::MAX)
    .unwrap();
    let started = Instant::now();
    let mut cut = None;
    for b in packet.iter() {
        if s.write_all(&[*b]).and_then(|()| s.flush()).is_err() {
            cut = Some(started.elapsed());
            break;
        }
        // Pacing: the slow client under test.
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = cut.unwrap_or_else(|| common::until_closed(&mut s.sock, Duration::from_secs(10)));
    assert!(took <= timeout + Duration::from_secs(1), "closed after {took:?}");

    register(&emu);
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
