//! The AMQP client (issue 23) against a hostile server: it answers the protocol header with garbage, with a
//! frame claiming gigabytes, or with nothing at all; or (the scripted fe2o3 server of
//! `common/amqp_server.rs`) it challenges SASL without end, never answers a link attach, or answers without
//! an operation id. Each registration ends within its bound with a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use dps_device::{Error, Options, ProvisioningClient, Transport};

/// A TLS server that reads the client's 8-byte protocol header, writes `answer`, then holds the connection
/// open without a word until the client leaves.
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
                let mut header = [0u8; 8];
                if tls.read_exact(&mut header).is_err() {
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

fn client(endpoint: &str, ca_pem: &str, timeout: Duration) -> ProvisioningClient {
    ProvisioningClient::new(
        endpoint,
        SCOPE,
        Transport::Amqp,
        roots(ca_pem),
        Options { timeout, ..options() },
    )
}

#[tokio::test]
async fn garbage_instead_of_a_protocol_header_fails_at_once() {
    let (endpoint, ca) = hostile(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    let started = Instant::now();
    let e = client(&endpoint, &ca, Duration::from_secs(20))
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(&e, Error::Transport { transport: Transport::Amqp, message, .. } if message.contains("opening the AMQP connection")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_frame_claiming_gigabytes_fails_at_once() {
    // The SASL header, then a SASL frame header claiming 2 GiB.
    let (endpoint, ca) = hostile(b"AMQP\x03\x01\x00\x00\x7f\xff\xff\xf0\x02\x01\x00\x00\x00\x53");
    let started = Instant::now();
    let e = client(&endpoint, &ca, Duration::from_secs(20))
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            &e,
            Error::Transport {
                transport: Transport::Amqp,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_ends_at_the_overall_timeout() {
    let (endpoint, ca) = hostile(b"AMQP\x03\x01\x00\x00");
    let started = Instant::now();
    let e = client(&endpoint, &ca, Duration::from_secs(2))
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert!(matches!(&e, Error::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn endless_sasl_challenges_end_at_the_first() {
    let server = amqp_server::start(amqp_server::Script::EndlessChallenges).await;
    let started = Instant::now();
    let e = client(&server.endpoint, &server.ca_pem, Duration::from_secs(20))
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // PLAIN has no challenge: the first one ends the exchange.
    assert_eq!(server.challenges.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(
        matches!(&e, Error::Transport { transport: Transport::Amqp, message, .. }
            if message.contains("opening the AMQP connection") && message.contains("SASL Challenge is not implemented")),
        "{e:?}"
    );
    assert!(!e.is_timeout(), "{e:?}");
}

#[tokio::test]
async fn a_link_that_never_attaches_ends_at_the_overall_timeout() {
    let server = amqp_server::start(amqp_server::Script::NeverAttach).await;
    let started = Instant::now();
    let e = client(&server.endpoint, &server.ca_pem, Duration::from_secs(2))
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert!(
        matches!(&e, Error::Timeout { detail, .. } if detail.contains("the service did not answer over AMQP")),
        "{e:?}"
    );
    assert!(e.is_timeout() && e.is_retryable(), "{e:?}");
}

#[tokio::test]
async fn an_answer_without_an_operation_id_is_a_protocol_error() {
    let server = amqp_server::start(amqp_server::Script::NoOperationId).await;
    let started = Instant::now();
    let e = client(&server.endpoint, &server.ca_pem, Duration::from_secs(20))
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(&e, Error::Protocol { transport: Transport::Amqp, message } if message.contains("missing field `operationId`")),
        "{e:?}"
    );
    assert!(!e.is_retryable(), "{e:?}");
}
