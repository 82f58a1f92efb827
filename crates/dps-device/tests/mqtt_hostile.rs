//! A misbehaving MQTT "DPS" (a real TLS server speaking MQTT through rumqttc's codec): a server that
//! closes mid-operation, one that answers `assigning` forever, and one that sends garbage each end
//! in a clear error within the overall timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use dps_device::{Error, Options, ProvisioningClient, Transport};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet, Publish, SubAck, SubscribeReasonCode};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Clone, Copy)]
enum Mode {
    /// Accept the connection and the subscription, read the register request, then close.
    CloseAfterRegister,
    /// Answer every request with 202 assigning (retry-after 1).
    EndlessAssigning,
    /// Answer CONNECT with bytes that are no MQTT packet.
    Garbage,
}

fn read_packet<R: Read>(stream: &mut R, buf: &mut BytesMut) -> Option<Packet> {
    loop {
        match Packet::read(buf, 1 << 16) {
            Ok(p) => return Some(p),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(_) => return None,
        }
    }
}

fn write_packet<W: Write>(stream: &mut W, packet: Packet) {
    let mut out = BytesMut::new();
    packet.write(&mut out, usize::MAX).unwrap();
    let _ = stream.write_all(&out).and_then(|()| stream.flush());
}

/// Starts the server; returns its endpoint and the PEM of its (self-signed) certificate.
fn serve(mode: Mode) -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der())),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let mut buf = BytesMut::new();
                while let Some(packet) = read_packet(&mut s, &mut buf) {
                    match packet {
                        Packet::Connect(_) => match mode {
                            Mode::Garbage => {
                                let _ = s.write_all(b"\xff\xfe not MQTT at all \x1b[2J");
                                let _ = s.flush();
                            }
                            _ => write_packet(&mut s, Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false))),
                        },
                        Packet::Subscribe(sub) => {
                            let codes = sub
                                .filters
                                .iter()
                                .map(|_| SubscribeReasonCode::Success(QoS::AtLeastOnce))
                                .collect();
                            write_packet(&mut s, Packet::SubAck(SubAck::new(sub.pkid, codes)));
                        }
                        Packet::Publish(p) => {
                            if matches!(mode, Mode::CloseAfterRegister) {
                                return;
                            }
                            let rid = p
                                .topic
                                .split("$rid=")
                                .nth(1)
                                .unwrap_or("0")
                                .split('&')
                                .next()
                                .unwrap_or("0")
                                .to_string();
                            let topic = format!("$dps/registrations/res/202/?$rid={rid}&retry-after=1");
                            let body = r#"{"operationId":"4.op","status":"assigning"}"#;
                            write_packet(
                                &mut s,
                                Packet::Publish(Publish::new(topic, QoS::AtMostOnce, body.as_bytes().to_vec())),
                            );
                        }
                        Packet::PingReq => write_packet(&mut s, Packet::PingResp),
                        _ => {}
                    }
                }
            });
        }
    });
    (endpoint, cert.cert.pem())
}

fn client(endpoint: &str, ca_pem: &str, timeout: Duration) -> ProvisioningClient {
    let options = Options { timeout, ..options() };
    ProvisioningClient::new(endpoint, SCOPE, Transport::Mqtt, roots(ca_pem), options)
}

#[tokio::test]
async fn a_server_closing_mid_operation_is_a_transport_error() {
    let (endpoint, ca) = serve(Mode::CloseAfterRegister);
    let started = Instant::now();
    let e = client(&endpoint, &ca, Duration::from_secs(20))
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
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

#[tokio::test]
async fn endless_assigning_ends_in_the_timeout() {
    let (endpoint, ca) = serve(Mode::EndlessAssigning);
    let started = Instant::now();
    let e = client(&endpoint, &ca, Duration::from_secs(4))
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(8),
        "took {took:?}"
    );
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains("assigning"), "{e}");
}

#[tokio::test]
async fn garbage_is_an_error_without_the_servers_control_characters() {
    let (endpoint, ca) = serve(Mode::Garbage);
    let started = Instant::now();
    let e = client(&endpoint, &ca, Duration::from_secs(20))
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let shown = e.to_string();
    assert!(!shown.contains('\u{1b}'), "{shown:?}");
}
