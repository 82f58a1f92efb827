//! A raw MQTT 3.1.1 client of the emulator's MQTT listener (rumqttc's packet codec over rustls): send and read
//! packets, connect a DPS session, register the way Node's client does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use dps_emulator::Emulator;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Login, Packet, Publish, Subscribe, Unsubscribe};
use rustls::{ClientConnection, StreamOwned};

use super::{GROUP_DEVICE_KEY, SCOPE, client_builder, now, sas};

/// The registration id `connect` and `register` use: enroll it with `GROUP_DEVICE_KEY` as its key.
pub const DEVICE: &str = "mqtt-device";

pub type Stream = StreamOwned<ClientConnection, TcpStream>;

pub fn tls(emu: &Emulator) -> Stream {
    let config = client_builder(&emu.server_ca_pem(), super::Tls::Any).with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(emu.mqtt_endpoint()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    StreamOwned::new(conn, tcp)
}

pub fn send(s: &mut Stream, packet: Packet) {
    let mut out = BytesMut::new();
    packet.write(&mut out, usize::MAX).unwrap();
    s.write_all(&out).unwrap();
    s.flush().unwrap();
}

pub fn next(s: &mut Stream, buf: &mut BytesMut) -> Packet {
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
pub fn connect(emu: &Emulator, keep_alive: u16) -> (Stream, BytesMut) {
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
pub fn register(emu: &Emulator) {
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
