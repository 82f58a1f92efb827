//! The AMQP listener's SASL `TPM` mechanism (issue 23), frame by frame, against devices that get it wrong:
//! the real activation challenge arrives in segments and a token not signed with its key is refused; an
//! unenrolled EK, frames out of order, an unacknowledged segment, a frame over the SASL bound and silence
//! each end in outcome `auth` or a closed connection within the request deadline. (The whole flow with a
//! real TPM: dps-device's TPM row on swtpm, and the C SDK's `prov_sasl_tpm.c` in `scripts/sdk-interop.sh`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions};
use dps_wire::sasl_tpm::{self, BlobAssembler, Challenge, TpmInit};
use fe2o3_amqp::frames::sasl::Frame;
use fe2o3_amqp::transport::Transport;
use fe2o3_amqp::types::primitives::{Binary, Symbol};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslResponse};
use futures_util::{SinkExt as _, StreamExt as _};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const SASL_HEADER: &[u8] = b"AMQP\x03\x01\x00\x00";
const DEVICE: &str = "tpm-dev";
const WRONG_KEY: &str = "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==";

type Frames = Transport<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Frame>;

/// A marshalled `TPM2B_PUBLIC` of an RSA-2048 restricted decryption key with AES-128-CFB, as a TPM's EK
/// and SRK are; `fill` makes the modulus (odd, top bit set) differ between keys.
fn rsa_storage_key(fill: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x0001u16.to_be_bytes()); // TPM_ALG_RSA
    body.extend_from_slice(&0x000bu16.to_be_bytes()); // nameAlg SHA-256
    body.extend_from_slice(&0x0003_0072u32.to_be_bytes()); // restricted, decrypt, fixedTPM/Parent, ...
    body.extend_from_slice(&0u16.to_be_bytes()); // empty authPolicy
    body.extend_from_slice(&0x0006u16.to_be_bytes()); // AES
    body.extend_from_slice(&128u16.to_be_bytes());
    body.extend_from_slice(&0x0043u16.to_be_bytes()); // CFB
    body.extend_from_slice(&0x0010u16.to_be_bytes()); // scheme NULL
    body.extend_from_slice(&2048u16.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes()); // exponent 65537
    let mut modulus = vec![fill; 256];
    modulus[0] |= 0x80;
    modulus[255] |= 1;
    body.extend_from_slice(&256u16.to_be_bytes());
    body.extend_from_slice(&modulus);
    let mut out = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn emulator(ek: &[u8]) -> Emulator {
    Emulator::start_with(
        config(vec![Enrollment::TpmIndividual {
            registration_id: DEVICE.into(),
            endorsement_key: base64::engine::general_purpose::STANDARD.encode(ek),
        }]),
        0,
        ServerOptions {
            request_timeout: REQUEST_TIMEOUT,
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

/// TLS, the SASL header exchange and `sasl-mechanisms` (which must offer `TPM`). The test side's codec
/// takes frames up to 4 KiB, so it can send one over the 512 bytes the server takes.
async fn sasl(emu: &Emulator) -> Frames {
    let config = client_builder(&emu.server_ca_pem(), common::Tls::Any).with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(emu.amqp_endpoint()).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    stream.write_all(SASL_HEADER).await.unwrap();
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await.unwrap();
    assert_eq!(&header, SASL_HEADER);
    let mut frames = Transport::<_, Frame>::bind(stream, 4096, None);
    match next(&mut frames).await {
        Some(Frame::Mechanisms(m)) => assert!(m.sasl_server_mechanisms.iter().any(|s| s.as_str() == "TPM"), "{m:?}"),
        other => panic!("expected sasl-mechanisms, got {other:?}"),
    }
    frames
}

/// The next frame, `None` once the server closed; panics when nothing comes within twice the deadline.
async fn next(frames: &mut Frames) -> Option<Frame> {
    match tokio::time::timeout(REQUEST_TIMEOUT * 2, frames.next()).await {
        Ok(Some(Ok(frame))) => Some(frame),
        Ok(_) => None,
        Err(_) => panic!("no frame and no close within {:?}", REQUEST_TIMEOUT * 2),
    }
}

async fn init(frames: &mut Frames, registration_id: &str, ek: &[u8]) {
    let bytes = TpmInit {
        id_scope: SCOPE,
        registration_id,
        endorsement_key: ek,
    }
    .encode()
    .unwrap();
    frames
        .send(Frame::Init(SaslInit {
            mechanism: Symbol::from("TPM"),
            initial_response: Some(Binary::from(bytes)),
            hostname: None,
        }))
        .await
        .unwrap();
}

async fn respond(frames: &mut Frames, bytes: Vec<u8>) {
    let _ = frames
        .send(Frame::Response(SaslResponse {
            response: Binary::from(bytes),
        }))
        .await;
}

async fn challenge(frames: &mut Frames) -> Vec<u8> {
    match next(frames).await {
        Some(Frame::Challenge(c)) => c.challenge.into_vec(),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

async fn assert_refused(frames: &mut Frames) {
    match next(frames).await {
        Some(Frame::Outcome(o)) => assert_eq!(o.code, SaslCode::Auth),
        other => panic!("expected outcome auth, got {other:?}"),
    }
}

/// Init and SRK: the first segment of the activation challenge.
async fn up_to_the_blob(frames: &mut Frames, ek: &[u8], srk: &[u8]) -> Vec<u8> {
    init(frames, DEVICE, ek).await;
    assert_eq!(challenge(frames).await, sasl_tpm::SRK_REQUEST);
    respond(frames, sasl_tpm::encode_storage_root_key(srk).unwrap()).await;
    challenge(frames).await
}

fn run(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

#[test]
fn the_real_challenge_comes_in_segments_and_a_token_not_signed_with_its_key_is_refused() {
    let (ek, srk) = (rsa_storage_key(0x5a), rsa_storage_key(0x3c));
    let emu = emulator(&ek);
    run(async {
        let mut frames = sasl(&emu).await;
        let mut segment = up_to_the_blob(&mut frames, &ek, &srk).await;
        let mut blob = BlobAssembler::default();
        let mut controls = Vec::new();
        let key = loop {
            assert!(segment.len() <= sasl_tpm::MAX_FRAME_DATA, "{} bytes", segment.len());
            controls.push(segment[0]);
            let Challenge::Segment { sequence, last, data } = Challenge::decode(&segment).unwrap() else {
                panic!("expected a segment, got {segment:?}");
            };
            if let Some(key) = blob.push(sequence, last, data).unwrap() {
                break key;
            }
            respond(&mut frames, sasl_tpm::SEGMENT_ACK.to_vec()).await;
            segment = challenge(&mut frames).await;
        };
        // The blob of an RSA-2048 EK and SRK (two 256-byte secrets) takes two segments.
        assert_eq!(controls, [0x80, 0xc1]);
        assert!(key.len() > sasl_tpm::MAX_SEGMENT, "{} bytes", key.len());
        let token = sas(DEVICE, WRONG_KEY, now() + 3600);
        respond(&mut frames, sasl_tpm::encode_token(&token).unwrap()).await;
        assert_refused(&mut frames).await;
    });
}

#[test]
fn an_unenrolled_ek_is_refused_at_the_challenge() {
    let (ek, srk) = (rsa_storage_key(0x5a), rsa_storage_key(0x3c));
    let emu = emulator(&rsa_storage_key(0x11));
    run(async {
        let mut frames = sasl(&emu).await;
        init(&mut frames, DEVICE, &ek).await;
        assert_eq!(challenge(&mut frames).await, sasl_tpm::SRK_REQUEST);
        respond(&mut frames, sasl_tpm::encode_storage_root_key(&srk).unwrap()).await;
        assert_refused(&mut frames).await;
        // And a registration with no TPM enrollment at all.
        let mut frames = sasl(&emu).await;
        init(&mut frames, "nobody", &ek).await;
        assert_eq!(challenge(&mut frames).await, sasl_tpm::SRK_REQUEST);
        respond(&mut frames, sasl_tpm::encode_storage_root_key(&srk).unwrap()).await;
        assert_refused(&mut frames).await;
    });
}

#[test]
fn frames_out_of_order_are_refused() {
    let (ek, srk) = (rsa_storage_key(0x5a), rsa_storage_key(0x3c));
    let emu = emulator(&ek);
    run(async {
        // A response with no exchange under way.
        let mut frames = sasl(&emu).await;
        respond(&mut frames, sasl_tpm::SEGMENT_ACK.to_vec()).await;
        assert_refused(&mut frames).await;
        // An acknowledgement where the SRK is due.
        let mut frames = sasl(&emu).await;
        init(&mut frames, DEVICE, &ek).await;
        assert_eq!(challenge(&mut frames).await, sasl_tpm::SRK_REQUEST);
        respond(&mut frames, sasl_tpm::SEGMENT_ACK.to_vec()).await;
        assert_refused(&mut frames).await;
        // A segment answered with something other than its acknowledgement.
        let mut frames = sasl(&emu).await;
        up_to_the_blob(&mut frames, &ek, &srk).await;
        respond(
            &mut frames,
            sasl_tpm::encode_token("SharedAccessSignature sr=x").unwrap(),
        )
        .await;
        assert_refused(&mut frames).await;
        // The acknowledgement again where the token is due: no endless exchange.
        let mut frames = sasl(&emu).await;
        up_to_the_blob(&mut frames, &ek, &srk).await;
        respond(&mut frames, sasl_tpm::SEGMENT_ACK.to_vec()).await;
        assert_eq!(challenge(&mut frames).await[0], 0xc1);
        respond(&mut frames, sasl_tpm::SEGMENT_ACK.to_vec()).await;
        assert_refused(&mut frames).await;
        // The C SDK's segmented init (control byte 0x80), which no frame-sized EK needs.
        let mut frames = sasl(&emu).await;
        frames
            .send(Frame::Init(SaslInit {
                mechanism: Symbol::from("TPM"),
                initial_response: Some(Binary::from(b"\x80scope\0dev\0ek".to_vec())),
                hostname: None,
            }))
            .await
            .unwrap();
        assert_refused(&mut frames).await;
    });
}

#[test]
fn an_oversized_response_and_silence_end_within_the_deadline() {
    let ek = rsa_storage_key(0x5a);
    let emu = emulator(&ek);
    run(async {
        // A response larger than a SASL frame may be: the connection ends at once, no outcome ok.
        let mut frames = sasl(&emu).await;
        init(&mut frames, DEVICE, &ek).await;
        assert_eq!(challenge(&mut frames).await, sasl_tpm::SRK_REQUEST);
        let started = Instant::now();
        respond(&mut frames, vec![0u8; 1500]).await;
        match next(&mut frames).await {
            None => {}
            Some(Frame::Outcome(o)) => assert_ne!(o.code, SaslCode::Ok),
            Some(other) => panic!("expected the end, got {other:?}"),
        }
        assert!(started.elapsed() < REQUEST_TIMEOUT, "took {:?}", started.elapsed());
        // A device that never sends its SRK: cut at the request deadline.
        let mut frames = sasl(&emu).await;
        let started = Instant::now();
        init(&mut frames, DEVICE, &ek).await;
        assert_eq!(challenge(&mut frames).await, sasl_tpm::SRK_REQUEST);
        assert!(
            next(&mut frames).await.is_none(),
            "the server sent a frame to a silent device"
        );
        let took = started.elapsed();
        assert!(took < REQUEST_TIMEOUT * 2, "took {took:?}");
    });
}
