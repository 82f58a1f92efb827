//! The emulator under connection floods and slow clients, as a table over its listeners (HTTPS, MQTT, AMQP):
//! threads stay bounded under 300 idle connections and a real device still gets through the listener; a
//! client dribbling bytes (before the TLS handshake, and a request after it) is cut off at the request
//! deadline. Then `Retry-After` is what was set, and `chacha20_only`. The AMQP listener's other hostile
//! peers (garbage, silence, a flood of handshaken connections) are `amqp_hostile.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::mqtt::{self, DEVICE};
use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Packet, Publish};
use rustls::{ClientConnection, StreamOwned};

/// Thread counts are per process: these tests run one at a time. A closed connection's thread may still be
/// ending when its successor starts: at most one more than the limit, plus the accepting thread.
static SERIAL: Mutex<()> = Mutex::new(());

const MAX_CONNECTIONS: usize = 8;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

fn emulator() -> Emulator {
    Emulator::start_with(
        config(vec![
            Enrollment::SymmetricGroup {
                name: "g".into(),
                primary_key: GROUP_KEY.into(),
                secondary_key: None,
            },
            Enrollment::SymmetricIndividual {
                registration_id: DEVICE.into(),
                primary_key: GROUP_DEVICE_KEY.into(),
                secondary_key: None,
            },
        ]),
        0,
        ServerOptions {
            retry_after: Duration::from_secs(1),
            max_connections: MAX_CONNECTIONS,
            request_timeout: REQUEST_TIMEOUT,
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The rows: the listeners with a request-response protocol of their own over TLS.
#[derive(Clone, Copy, Debug)]
enum Listener {
    Https,
    Mqtt,
    Amqp,
}

const ROWS: [Listener; 3] = [Listener::Https, Listener::Mqtt, Listener::Amqp];

/// The AMQP SASL protocol header.
const SASL_HEADER: &[u8] = b"AMQP\x03\x01\x00\x00";

/// A TLS connection to the AMQP port, handshake done.
fn amqp_tls(emu: &Emulator) -> mqtt::Stream {
    let config = client_builder(&emu.server_ca_pem(), Tls::Any).with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, TcpStream::connect(emu.amqp_endpoint()).unwrap());
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

impl Listener {
    fn endpoint(self, emu: &Emulator) -> String {
        match self {
            Listener::Https => emu.global_endpoint(),
            Listener::Mqtt => emu.mqtt_endpoint(),
            Listener::Amqp => emu.amqp_endpoint(),
        }
    }

    /// A real device registers over this listener (over MQTT the way Node's client does; over AMQP a late
    /// client's protocol header is answered with the server's and its SASL mechanisms, a full AMQP
    /// registration being dps-device's tests).
    fn register(self, emu: &Emulator) {
        match self {
            Listener::Https => {
                let agent = agent(emu, None, Tls::Any);
                let token = sas("device-0001", GROUP_DEVICE_KEY, now() + 600);
                let body = provision(&agent, emu, "device-0001", Some(&token));
                assert_assigned(&body, "device-0001");
            }
            Listener::Mqtt => mqtt::register(emu),
            Listener::Amqp => {
                let mut late = amqp_tls(emu);
                late.write_all(SASL_HEADER).unwrap();
                late.flush().unwrap();
                late.sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut header = [0u8; 8];
                late.read_exact(&mut header).unwrap();
                assert_eq!(&header, SASL_HEADER);
            }
        }
    }

    /// How long registering may take with 300 idle connections in place.
    fn register_within(self) -> Duration {
        match self {
            Listener::Https => REQUEST_TIMEOUT + Duration::from_secs(3),
            Listener::Mqtt | Listener::Amqp => Duration::from_secs(6),
        }
    }

    /// A TLS connection past the handshake (over MQTT also past CONNECT, keep-alive 60 s), and a request to
    /// send on it a byte at a time.
    fn slow_request(self, emu: &Emulator) -> (mqtt::Stream, Vec<u8>) {
        match self {
            Listener::Https => {
                let roots = {
                    let mut r = rustls::RootCertStore::empty();
                    for c in rustls_pemfile::certs(&mut emu.server_ca_pem().as_bytes()) {
                        r.add(c.unwrap()).unwrap();
                    }
                    r
                };
                let config = rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let tcp = TcpStream::connect(emu.global_endpoint()).unwrap();
                let conn = ClientConnection::new(Arc::new(config), "127.0.0.1".try_into().unwrap()).unwrap();
                let request = b"PUT /0ne00000A0A/registrations/x/register?api-version=2021-06-01 HTTP/1.1\r\nX: "
                    .iter()
                    .chain(&[b'x'; 200])
                    .copied()
                    .collect();
                (StreamOwned::new(conn, tcp), request)
            }
            Listener::Mqtt => {
                let (s, _) = mqtt::connect(emu, 60);
                let mut packet = BytesMut::new();
                Packet::Publish(Publish::new(
                    "$dps/registrations/PUT/iotdps-register/?$rid=1",
                    QoS::AtMostOnce,
                    vec![b'x'; 200],
                ))
                .write(&mut packet, usize::MAX)
                .unwrap();
                (s, packet.to_vec())
            }
            Listener::Amqp => {
                // The SASL header, then a SASL frame of 256 bytes: size, data offset 2, type 1, channel 0.
                let mut request = SASL_HEADER.to_vec();
                request.extend_from_slice(&[0x00, 0x00, 0x01, 0x00, 0x02, 0x01, 0x00, 0x00]);
                request.extend_from_slice(&[b'x'; 248]);
                (amqp_tls(emu), request)
            }
        }
    }
}

#[test]
fn idle_connections_do_not_grow_threads_and_a_device_still_registers() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for row in ROWS {
        let emu = emulator();
        let endpoint = row.endpoint(&emu);
        let before = threads();
        let mut idle = Vec::new();
        for _ in 0..300 {
            idle.push(TcpStream::connect(&endpoint).unwrap());
        }
        // Watch the threads until the listener has taken them all (closing idle ones to stay within the bound).
        let mut peak = 0;
        let port = test_support::wait::accept_queue_port(endpoint.clone());
        test_support::wait::until_true(
            &format!("the {row:?} listener to accept 300 connections"),
            test_support::wait::DEADLINE,
            || {
                peak = peak.max(threads());
                test_support::wait::accept_queue(port) == Some(0)
            },
        );
        peak = peak.max(threads());
        assert!(
            peak <= before + MAX_CONNECTIONS + 2,
            "{row:?}: {before} threads before 300 idle connections, {peak} with them"
        );
        let started = Instant::now();
        row.register(&emu);
        assert!(
            started.elapsed() < row.register_within(),
            "{row:?}: registering took {:?}",
            started.elapsed()
        );
        assert!(threads() <= before + MAX_CONNECTIONS + 2, "{row:?}");
        drop(idle);
    }
}

#[test]
fn a_client_sending_a_byte_now_and_then_is_cut_off_at_the_deadline() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for row in ROWS {
        let emu = emulator();

        // Before the TLS handshake: a record header, then a byte every 300 ms.
        let mut raw = TcpStream::connect(row.endpoint(&emu)).unwrap();
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
        assert!(
            took <= REQUEST_TIMEOUT + Duration::from_secs(1),
            "{row:?}: closed after {took:?}"
        );
        dribble.join().unwrap();

        // After the handshake: a request a byte at a time, on time for any per-read timeout.
        let (mut tls, request) = row.slow_request(&emu);
        let started = Instant::now();
        let mut cut = None;
        for b in request {
            if tls.write_all(&[b]).and_then(|()| tls.flush()).is_err() {
                cut = Some(started.elapsed());
                break;
            }
            // Pacing: the slow client under test.
            std::thread::sleep(Duration::from_millis(200));
        }
        let took = cut.unwrap_or_else(|| common::until_closed(&mut tls.sock, Duration::from_secs(10)));
        assert!(
            took <= REQUEST_TIMEOUT + Duration::from_secs(1),
            "{row:?}: closed after {took:?}"
        );

        // The server is still fine.
        row.register(&emu);
    }
}

#[test]
fn retry_after_is_the_configured_value() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let token = sas("device-0001", GROUP_DEVICE_KEY, now() + 600);
    let response = agent
        .put(&register_url(&emu, SCOPE, "device-0001"))
        .set("Authorization", &token)
        .send_json(serde_json::json!({"registrationId": "device-0001"}))
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.header("Retry-After"), Some("1"));
    drop(emu);

    // The default is a realistic delay, not 0.
    let emu = Emulator::start(config(Vec::new())).unwrap();
    let _ = emu;
    assert_eq!(ServerOptions::default().retry_after, Duration::from_secs(2));
}

/// `chacha20_only`: a client offering only AES-GCM is refused; a default client gets ChaCha20.
#[test]
fn chacha20_only_offers_nothing_else() {
    // Its emulator's threads would count in the thread-bound test's numbers: one at a time here too.
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let emu = Emulator::start_with(
        config(Vec::new()),
        0,
        ServerOptions {
            chacha20_only: true,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let roots = {
        let mut r = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut emu.server_ca_pem().as_bytes()) {
            r.add(c.unwrap()).unwrap();
        }
        Arc::new(r)
    };
    let handshake = |aes_only: bool| {
        let mut p = provider().as_ref().clone();
        if aes_only {
            p.cipher_suites.retain(|s| format!("{:?}", s.suite()).contains("AES"));
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(p))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let tcp = TcpStream::connect(emu.global_endpoint()).unwrap();
        let conn = ClientConnection::new(Arc::new(config), "127.0.0.1".try_into().unwrap()).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .map(|()| format!("{:?}", tls.conn.negotiated_cipher_suite().map(|s| s.suite())))
    };
    let suite = handshake(false).unwrap();
    assert!(suite.contains("CHACHA20_POLY1305"), "{suite}");
    assert!(handshake(true).is_err(), "an AES-only client must be refused");
}
