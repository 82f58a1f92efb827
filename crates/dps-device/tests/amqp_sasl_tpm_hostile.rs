//! The client's SASL `TPM` exchange (issue 23) against a hostile AMQP server: one that does not offer
//! `TPM`, one that asks for the SRK again and again, one that sends blob segments without end. Each
//! registration ends at once with a clear error, well before its overall timeout. (The server side and the
//! honest flow: the emulator's `amqp_sasl_tpm.rs` and the TPM row of `transports.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use dps_device::{Attestation, Error, Options, ProvisioningClient, Transport};
use fe2o3_amqp::frames::sasl::Frame;
use fe2o3_amqp::transport::Transport as Frames;
use fe2o3_amqp::types::primitives::{Array, Binary, Symbol};
use fe2o3_amqp::types::sasl::{SaslChallenge, SaslMechanisms};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SASL_HEADER: &[u8] = b"AMQP\x03\x01\x00\x00";

/// What the hostile server does after its SASL header.
#[derive(Clone, Copy)]
enum Hostile {
    /// Offers PLAIN only.
    NoTpm,
    /// Answers the init and every response with the SRK request.
    SrkForever,
    /// Asks for the SRK, then sends segments, never the last.
    EndlessSegments,
}

async fn serve(behaviour: Hostile) -> (String, String) {
    let (config, ca_pem) = loopback_server_config();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut header = [0u8; 8];
                if tls.read_exact(&mut header).await.is_err() || tls.write_all(SASL_HEADER).await.is_err() {
                    return;
                }
                let _ = tls.flush().await;
                let mut frames = Frames::<_, Frame>::bind(tls, 4096, None);
                let offered = match behaviour {
                    Hostile::NoTpm => "PLAIN",
                    Hostile::SrkForever | Hostile::EndlessSegments => "TPM",
                };
                let mechanisms = SaslMechanisms {
                    sasl_server_mechanisms: Array::from(vec![Symbol::from(offered)]),
                };
                if frames.send(Frame::Mechanisms(mechanisms)).await.is_err() {
                    return;
                }
                let mut sent = 0u8;
                // One challenge for every frame the client sends, until it leaves.
                while let Some(Ok(_)) = frames.next().await {
                    let challenge = match (behaviour, sent) {
                        (Hostile::NoTpm, _) => return,
                        (Hostile::SrkForever, _) | (Hostile::EndlessSegments, 0) => vec![0x00],
                        (Hostile::EndlessSegments, n) => vec![0x80 | ((n - 1) & 0x03), 1, 2, 3],
                    };
                    sent = sent.wrapping_add(1);
                    let frame = Frame::Challenge(SaslChallenge {
                        challenge: Binary::from(challenge),
                    });
                    if frames.send(frame).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (endpoint, ca_pem)
}

async fn register(behaviour: Hostile, tpm: &hsm_tpm::testing::Swtpm) -> (Error, Duration) {
    let (endpoint, ca) = serve(behaviour).await;
    let identity: Box<dyn hsm_core::TpmIdentity> =
        Box::new(hsm_tpm::Tpm::open(hsm_tpm::TpmOptions::new(tpm.tcti())).unwrap());
    let client = ProvisioningClient::new(
        &endpoint,
        SCOPE,
        Transport::Amqp,
        roots(&ca),
        Options {
            timeout: Duration::from_secs(20),
            ..options()
        },
    );
    let started = Instant::now();
    let e = client
        .register_as(&Attestation::Tpm(Arc::new(Mutex::new(identity))), Some("tpm-1"), None)
        .await
        .unwrap_err();
    (e, started.elapsed())
}

fn assert_fails_fast(behaviour: &str, (e, took): (Error, Duration), needle: &str) {
    assert!(took < Duration::from_secs(5), "{behaviour}: took {took:?}");
    let message = e.to_string();
    assert!(message.contains(needle), "{behaviour}: {message:?} lacks {needle:?}");
}

#[tokio::test]
async fn a_hostile_server_ends_the_sasl_tpm_exchange_at_once() {
    let tpm = hsm_tpm::testing::Swtpm::start().unwrap();
    assert_fails_fast(
        "no TPM offered",
        register(Hostile::NoTpm, &tpm).await,
        "does not offer the SASL TPM mechanism",
    );
    assert_fails_fast(
        "the SRK asked for again and again",
        register(Hostile::SrkForever, &tpm).await,
        "asked for the SRK twice",
    );
    assert_fails_fast(
        "segments without end",
        register(Hostile::EndlessSegments, &tpm).await,
        "takes more than 4 segments",
    );
}
