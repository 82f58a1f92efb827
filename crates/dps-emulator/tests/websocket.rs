//! MQTT over WebSockets on the HTTPS port: the upgrade's path and subprotocol checks, and an MQTT session
//! whose packets span WebSocket messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::result_large_err)]

mod common;

use std::net::TcpStream;
use std::sync::Arc;

use bytes::BytesMut;
use common::*;
use dps_emulator::{Emulator, Enrollment};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Login, Packet, Publish};
use rustls::{ClientConnection, StreamOwned};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn emulator() -> Emulator {
    Emulator::start(config(vec![Enrollment::SymmetricIndividual {
        registration_id: "ws-device".into(),
        primary_key: GROUP_DEVICE_KEY.into(),
        secondary_key: None,
    }]))
    .unwrap()
}

fn upgrade(emu: &Emulator, path: &str, subprotocol: Option<&str>) -> Result<WebSocket<Tls>, tungstenite::Error> {
    let config = client_builder(&emu.server_ca_pem(), common::Tls::Any).with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(emu.global_endpoint()).unwrap();
    let mut request = format!("wss://{}{path}", emu.global_endpoint())
        .into_client_request()
        .unwrap();
    if let Some(p) = subprotocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    match tungstenite::client(request, StreamOwned::new(conn, tcp)) {
        Ok((ws, response)) => {
            // The token the client offered, as it spelled it.
            let chosen = response.headers()["sec-websocket-protocol"].to_str().unwrap();
            assert!(chosen.eq_ignore_ascii_case("mqtt"), "{chosen}");
            assert!(subprotocol.unwrap().split(", ").any(|p| p == chosen), "{chosen}");
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("interrupted on a blocking stream"),
    }
}

fn http_status(result: Result<WebSocket<Tls>, tungstenite::Error>) -> (u16, String) {
    match result {
        Err(tungstenite::Error::Http(r)) => (
            r.status().as_u16(),
            String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(e) => panic!("not an HTTP refusal: {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

fn encode(packet: Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    packet.write(&mut out, usize::MAX).unwrap();
    out.to_vec()
}

/// The next MQTT packet from the binary messages.
fn next_packet(ws: &mut WebSocket<Tls>, buf: &mut BytesMut) -> Packet {
    loop {
        match Packet::read(buf, 1 << 20) {
            Ok(p) => return p,
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => match ws.read().unwrap() {
                Message::Binary(b) => buf.extend_from_slice(&b),
                other => panic!("unexpected message {other:?}"),
            },
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_wrong_path_is_404_and_a_missing_subprotocol_400() {
    let emu = emulator();
    let (status, body) = http_status(upgrade(&emu, "/mqtt", Some("mqtt")));
    assert_eq!(status, 404);
    assert!(body.contains("/$iothub/websocket"), "{body}");
    let (status, body) = http_status(upgrade(&emu, "/$iothub/websocket", None));
    assert_eq!(status, 400);
    assert!(body.contains("mqtt"), "{body}");
}

#[test]
fn mqtt_packets_spanning_messages_register_a_device() {
    let emu = emulator();
    // The C SDK offers "MQTT" (upper case) among others.
    let mut ws = upgrade(&emu, "/$iothub/websocket", Some("chat, MQTT")).unwrap();
    let mut connect = Connect::new("ws-device");
    connect.login = Some(Login::new(
        format!("{SCOPE}/registrations/ws-device/api-version=2021-06-01"),
        sas("ws-device", GROUP_DEVICE_KEY, now() + 600),
    ));
    let connect = encode(Packet::Connect(connect));
    // The CONNECT in two messages, then the PUBLISH and a PINGREQ in one.
    let (first, second) = connect.split_at(7);
    ws.send(Message::binary(first.to_vec())).unwrap();
    ws.send(Message::binary(second.to_vec())).unwrap();
    let mut buf = BytesMut::new();
    match next_packet(&mut ws, &mut buf) {
        Packet::ConnAck(a) => assert_eq!(a.code, ConnectReturnCode::Success),
        other => panic!("{other:?}"),
    }
    let mut both = encode(Packet::Publish(Publish::new(
        "$dps/registrations/PUT/iotdps-register/?$rid=7",
        QoS::AtMostOnce,
        r#"{"registrationId":"ws-device"}"#,
    )));
    both.extend(encode(Packet::PingReq));
    ws.send(Message::binary(both)).unwrap();
    match next_packet(&mut ws, &mut buf) {
        Packet::Publish(p) => {
            assert!(p.topic.starts_with("$dps/registrations/res/202/?$rid=7"), "{}", p.topic);
            let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
            assert_eq!(body["status"], "assigning");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(next_packet(&mut ws, &mut buf), Packet::PingResp));
}

#[test]
fn a_wrong_sas_is_refused_at_connect_over_websockets() {
    let emu = emulator();
    let mut ws = upgrade(&emu, "/$iothub/websocket", Some("mqtt")).unwrap();
    let mut connect = Connect::new("ws-device");
    connect.login = Some(Login::new(
        format!("{SCOPE}/registrations/ws-device/api-version=2021-06-01"),
        sas("ws-device", GROUP_KEY, now() + 600),
    ));
    ws.send(Message::binary(encode(Packet::Connect(connect)))).unwrap();
    match next_packet(&mut ws, &mut BytesMut::new()) {
        Packet::ConnAck(a) => assert_eq!(a.code, ConnectReturnCode::NotAuthorized),
        other => panic!("{other:?}"),
    }
}
