//! The AMQP listener (issue 23) against hostile peers: garbage instead of a protocol header, a frame claiming
//! gigabytes, silence after TLS (and after the AMQP over WebSockets upgrade), a session that never attaches a
//! link, and a flood of such connections. Each
//! ends within a bound (the request deadline at most) and a real device still registers afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::{Connection, Session};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_CONNECTIONS: usize = 4;
const SASL_HEADER: &[u8] = b"AMQP\x03\x01\x00\x00";
const DEVICE_KEY: &str = "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==";

fn emulator() -> Emulator {
    Emulator::start_with(
        config(vec![Enrollment::SymmetricIndividual {
            registration_id: "amqp-dev".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        }]),
        0,
        ServerOptions {
            max_connections: MAX_CONNECTIONS,
            request_timeout: REQUEST_TIMEOUT,
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to the AMQP port, handshake done.
fn tls(emu: &Emulator) -> Tls {
    let config = client_builder(&emu.server_ca_pem(), common::Tls::Any).with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
    let sock = TcpStream::connect(emu.amqp_endpoint()).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// Read until the server closes the connection; what it sent and how long it took. Panics after `limit`.
fn until_closed(tls: &mut Tls, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    tls.sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match tls.read(&mut buf) {
            Ok(0) => return (got, started.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (got, started.elapsed()),
        }
    }
    panic!("still open after {limit:?}");
}

#[test]
fn garbage_instead_of_a_protocol_header_is_closed_at_once() {
    let emu = emulator();
    let mut tls = tls(&emu);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    tls.flush().unwrap();
    let (got, took) = until_closed(&mut tls, Duration::from_secs(10));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // AMQP 1.0 section 2.2: a server refusing the header answers with the one it supports, then closes.
    assert!(got.starts_with(b"AMQP"), "{got:?}");
}

#[test]
fn a_frame_claiming_gigabytes_is_refused_without_waiting_for_it() {
    let emu = emulator();
    let mut tls = tls(&emu);
    tls.write_all(SASL_HEADER).unwrap();
    // A SASL frame header: size 0x7fff_fff0, data offset 2, type 1 (SASL), channel 0, and a few bytes of it.
    tls.write_all(&[0x7f, 0xff, 0xff, 0xf0, 0x02, 0x01, 0x00, 0x00, 0x00, 0x53])
        .unwrap();
    tls.flush().unwrap();
    let (got, took) = until_closed(&mut tls, Duration::from_secs(10));
    assert!(
        took < REQUEST_TIMEOUT,
        "took {took:?}: the frame's size was not checked"
    );
    assert!(got.starts_with(SASL_HEADER), "{got:?}");
}

#[test]
fn silence_after_tls_is_cut_at_the_request_deadline() {
    let emu = emulator();
    let mut tls = tls(&emu);
    let (_, took) = until_closed(&mut tls, Duration::from_secs(10));
    assert!(
        took >= REQUEST_TIMEOUT - Duration::from_millis(300),
        "closed early: {took:?}"
    );
    assert!(took < REQUEST_TIMEOUT * 3, "took {took:?}");
}

/// AMQP over WebSockets on the HTTPS port: the upgrade is accepted with `AMQPWSB10`, then silence is cut at the
/// request deadline.
#[test]
fn amqp_over_websockets_then_silence_is_cut_at_the_request_deadline() {
    let emu = emulator();
    let config = client_builder(&emu.server_ca_pem(), common::Tls::Any).with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, TcpStream::connect(emu.global_endpoint()).unwrap());
    tls.write_all(
        b"GET /$iothub/websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: AMQPWSB10\r\n\r\n",
    )
    .unwrap();
    tls.flush().unwrap();
    let (got, took) = until_closed(&mut tls, Duration::from_secs(10));
    let answer = String::from_utf8_lossy(&got).to_lowercase();
    assert!(answer.starts_with("http/1.1 101"), "{answer}");
    assert!(answer.contains("sec-websocket-protocol: amqpwsb10"), "{answer}");
    assert!(
        took >= REQUEST_TIMEOUT - Duration::from_millis(300),
        "closed early: {took:?}"
    );
    assert!(took < REQUEST_TIMEOUT * 3, "took {took:?}");
}

/// SASL passes (a valid SAS token) and a session begins, but no link is ever attached: the server closes the
/// connection at the request deadline.
#[test]
fn a_session_that_never_attaches_is_closed_at_the_request_deadline() {
    let emu = emulator();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = client_builder(&emu.server_ca_pem(), common::Tls::Any).with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(emu.amqp_endpoint()).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let token = sas("amqp-dev", DEVICE_KEY, now() + 3600);
        let mut connection = Connection::builder()
            .container_id("hostile")
            .hostname("localhost")
            .sasl_profile(SaslProfile::Plain {
                username: format!("{SCOPE}/registrations/amqp-dev"),
                password: token,
            })
            .open_with_stream(stream)
            .await
            .unwrap();
        let _session = Session::begin(&mut connection).await.unwrap();
        let started = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(10), connection.on_close()).await;
        assert!(closed.is_ok(), "the connection was still open after 10 s");
        let took = started.elapsed();
        assert!(took < REQUEST_TIMEOUT * 2, "took {took:?}");
    });
}

/// More silent connections than the bound: the oldest idle ones are closed to make room, and a device that
/// comes after them still registers over AMQP (through dps-device's tests; here the TLS handshake and the
/// SASL outcome of a real client).
#[test]
fn a_flood_of_silent_connections_does_not_lock_out_a_device() {
    let emu = emulator();
    let flood: Vec<Tls> = (0..MAX_CONNECTIONS * 2).map(|_| tls(&emu)).collect();
    let mut late = tls(&emu);
    late.write_all(SASL_HEADER).unwrap();
    late.flush().unwrap();
    // The server answers with its SASL header and mechanisms, well before the flood's deadline passes.
    late.sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut header = [0u8; 8];
    late.read_exact(&mut header).unwrap();
    assert_eq!(&header, SASL_HEADER);
    drop(flood);
}
