//! The AMQP client gathers its frames: fe2o3 flushes each frame alone, and the client's stream keeps
//! them until the connection task next reads, so a burst of frames (a flow and the request; the last
//! disposition, the detaches, the end and the close) leaves in one TLS record. Counted on the wire by a
//! relay in front of the emulator: one x509 registration (AMQP header, open, begin, two attaches, flow,
//! two transfers, two dispositions, two detaches, end, close: 14 writes, with the TLS handshake's
//! encrypted record and the `close_notify` 16 records) took 16 records before, 11 to 13 since.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Registrations made; each is one connection.
const REGISTRATIONS: usize = 5;

/// One record per write, as before: the encrypted records (TLS content type 23) a client sends.
const ONE_PER_WRITE: usize = 16;

#[tokio::test]
async fn a_registration_sends_its_bursts_of_frames_in_one_tls_record() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("fleet");
    // Assigned at the first poll without a wait, as in the bench.
    let emu = Emulator::start_with(
        test_support::emulator::config(vec![Enrollment::X509Group {
            name: "fleet".into(),
            ca: vec![ca.der()],
        }]),
        0,
        ServerOptions {
            retry_after: std::time::Duration::ZERO,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let (relay, mut counts) = relay(emu.amqp_endpoint()).await;
    let client = client_to(&relay, &emu.server_ca_pem(), dps_device::Transport::Amqp, options());
    let identity = x509(ca.file_identity(dir.path(), "dev-w", &[]));
    let mut records = Vec::new();
    for _ in 0..REGISTRATIONS {
        assert_assigned(&client.register(&identity, None).await.unwrap(), "dev-w");
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), counts.recv())
            .await
            .expect("the relay saw the connection end")
            .unwrap();
        records.push(n);
    }
    // Each burst's gathering depends on the order fe2o3's connection task takes its frames in (its
    // `select!` starts at a random branch): every registration gathers at least one burst, and
    // together they gather several.
    assert!(records.iter().all(|&n| n < ONE_PER_WRITE), "{records:?}");
    assert!(
        records.iter().sum::<usize>() <= REGISTRATIONS * (ONE_PER_WRITE - 2),
        "{records:?}"
    );
}

/// A relay on 127.0.0.1 to `upstream`: its endpoint, and for each connection (when the client's side
/// ends) the number of encrypted TLS records (content type 23) the client sent.
async fn relay(upstream: String) -> (String, mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 16 * 1024];
                loop {
                    let n = client_read.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = server_write.shutdown().await;
                let _ = tx.send(encrypted_records(&seen));
            });
        }
    });
    (endpoint, rx)
}

/// The TLS records of content type 23 (application data: every encrypted record of TLS 1.3) in
/// `stream`, a client's whole side of a connection.
fn encrypted_records(stream: &[u8]) -> usize {
    let (mut at, mut count) = (0, 0);
    while at + 5 <= stream.len() {
        let length = usize::from(u16::from_be_bytes([stream[at + 3], stream[at + 4]]));
        if stream[at] == 23 {
            count += 1;
        }
        at += 5 + length;
    }
    assert_eq!(at, stream.len(), "the client's side ends with a whole TLS record");
    count
}
