//! The device client against a hostile server, as a table over the transports that speak a protocol of
//! their own over TLS (MQTT, AMQP): a server that answers the client's first bytes with garbage, and one
//! that answers nothing at all. Each registration ends within its bound, in an error of its transport
//! that carries none of the server's control characters. Then the case of one protocol over the same
//! server (an AMQP frame claiming gigabytes); the scripted MQTT server's cases are `mqtt_hostile.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::*;
use dps_device::{Error, Transport};

/// The rows: each transport with its own wire over TLS, and what its client's first bytes are answered with
/// when the server means to say nothing (its own protocol header, where it has one).
const ROWS: [(Transport, &[u8]); 2] = [(Transport::Mqtt, b""), (Transport::Amqp, b"AMQP\x03\x01\x00\x00")];

/// A TLS server that reads the client's first 8 bytes, writes `answer`, then holds the connection open
/// without a word until the client leaves.
fn hostile(answer: &'static [u8]) -> (String, String) {
    let (config, ca_pem) = loopback_server_config();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut first = [0u8; 8];
                if tls.read_exact(&mut first).is_err() {
                    return;
                }
                let _ = tls.write_all(answer);
                let _ = tls.flush();
                let mut sink = [0u8; 1024];
                while matches!(tls.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    (endpoint, ca_pem)
}

#[tokio::test]
async fn garbage_instead_of_the_first_answer_fails_at_once_without_the_servers_control_characters() {
    for (t, _) in ROWS {
        let (endpoint, ca) = hostile(b"HTTP/1.1 400 Bad Request\r\n\x1b[2J\xff\xfe\r\n\r\n");
        let (e, took) =
            failed_registration(&client_to(&endpoint, &ca, t, timeout_after(Duration::from_secs(20)))).await;
        assert!(took < Duration::from_secs(10), "{t}: took {took:?}");
        let shown = e.to_string();
        assert!(!shown.contains('\u{1b}'), "{t}: {shown:?}");
        match (t, &e) {
            (Transport::Amqp, Error::Transport { transport, message, .. }) => {
                assert_eq!(*transport, t);
                assert!(message.contains("opening the AMQP connection"), "{message}");
            }
            (Transport::Mqtt, Error::Transport { transport, .. } | Error::Protocol { transport, .. }) => {
                assert_eq!(*transport, t)
            }
            _ => panic!("{t}: {e:?}"),
        }
    }
}

#[tokio::test]
async fn a_server_that_never_answers_ends_at_the_overall_timeout() {
    for (t, silence) in ROWS {
        let (endpoint, ca) = hostile(silence);
        let (e, took) = failed_registration(&client_to(&endpoint, &ca, t, timeout_after(Duration::from_secs(2)))).await;
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
            "{t}: took {took:?}"
        );
        assert!(matches!(&e, Error::Timeout { .. }), "{t}: {e:?}");
    }
}

#[tokio::test]
async fn an_amqp_frame_claiming_gigabytes_fails_at_once() {
    // The SASL header, then a SASL frame header claiming 2 GiB.
    let (endpoint, ca) = hostile(b"AMQP\x03\x01\x00\x00\x7f\xff\xff\xf0\x02\x01\x00\x00\x00\x53");
    let client = client_to(&endpoint, &ca, Transport::Amqp, timeout_after(Duration::from_secs(20)));
    let (e, took) = failed_registration(&client).await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_transport_error(&e, Transport::Amqp);
}
