//! A client that ends its AMQP connection with only `close` (no detach, no end: AMQP 1.0 sections 2.4.3 and
//! 2.7.9, a close ends the sessions and links with it) and hangs up, as the C SDK's uAMQP does, is let go at
//! once: with a bound of one connection (`limits.rs`), the next connection is admitted within a few hundred
//! milliseconds, on the DPS side (after a registration whose answer the client leaves unsettled: before,
//! the listener waited for its outcome until the request deadline) and on the IoT Hub side (after a
//! put-token, with a cloud-to-device link attached).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::amqp::{runtime, tls};
use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions};
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::types::messaging::{AmqpValue, ApplicationProperties, Body, Data, Message, Properties};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};

const DEVICE: &str = "amqp-close-dev";
const DEVICE_KEY: &str = "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How soon after the client's close the connection must be released.
const PROMPT: Duration = Duration::from_millis(500);

fn emulator() -> Emulator {
    Emulator::start_with(
        config(vec![Enrollment::SymmetricIndividual {
            registration_id: DEVICE.into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        }]),
        0,
        ServerOptions {
            request_timeout: REQUEST_TIMEOUT,
            retry_after: Duration::from_millis(0),
            max_connections: 1,
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

/// The client's end of the connection as the C SDK's uAMQP ends it (`connection_close`): the `close`
/// frame written, then the transport shut down (TLS `close_notify`) without waiting for the server's
/// `close`. fe2o3 runs over one end of a pipe; a pump carries its bytes over TLS and, once it has carried a
/// `close` frame, shuts the TLS stream down and drops it.
struct Hangup {
    /// Set when the pump carried the client's `close` and shut the stream down.
    done: tokio::sync::oneshot::Receiver<()>,
}

/// Whether `frame` (a whole AMQP frame) is a `close` performative: frame type 0, descriptor `0x18`.
fn is_close(frame: &[u8]) -> bool {
    let body = usize::from(frame[4]) * 4;
    frame[5] == 0 && frame.get(body..body + 3) == Some(&[0x00, 0x53, 0x18][..])
}

/// Carry bytes between fe2o3's end of the pipe and the TLS stream until fe2o3 writes `close`.
async fn pump(
    mut pipe: tokio::io::DuplexStream,
    mut tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    done: tokio::sync::oneshot::Sender<()>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut written = Vec::new();
    let (mut up, mut down) = ([0u8; 4096], [0u8; 4096]);
    loop {
        tokio::select! {
            n = pipe.read(&mut up) => {
                let n = n.unwrap();
                if n == 0 {
                    return;
                }
                tls.write_all(&up[..n]).await.unwrap();
                tls.flush().await.unwrap();
                written.extend_from_slice(&up[..n]);
                // Whole frames (and protocol headers) in what fe2o3 wrote: a close ends the connection.
                loop {
                    if written.starts_with(b"AMQP") && written.len() >= 8 {
                        written.drain(..8);
                        continue;
                    }
                    let Some(size) = written.get(..4).map(|s| u32::from_be_bytes(s.try_into().unwrap()) as usize)
                    else {
                        break;
                    };
                    if written.len() < size {
                        break;
                    }
                    let frame: Vec<u8> = written.drain(..size).collect();
                    if is_close(&frame) {
                        let _ = tls.shutdown().await;
                        drop(tls);
                        let _ = done.send(());
                        return;
                    }
                }
            }
            n = tls.read(&mut down) => {
                let n = n.unwrap();
                if n == 0 {
                    return;
                }
                pipe.write_all(&down[..n]).await.unwrap();
            }
        }
    }
}

async fn open(emu: &Emulator, hostname: &str, sasl: SaslProfile) -> (ConnectionHandle<()>, Hangup) {
    let tls = tls(emu, "localhost").await;
    let (client, pipe) = tokio::io::duplex(64 * 1024);
    let (tx, done) = tokio::sync::oneshot::channel();
    tokio::spawn(pump(pipe, tls, tx));
    let connection = Connection::builder()
        .container_id("amqp-close")
        .hostname(hostname)
        .sasl_profile(sasl)
        .open_with_stream(client)
        .await
        .unwrap();
    (connection, Hangup { done })
}

/// Send only `close` on `connection` (its sessions and links stay as they are: no detach, no end) and hang
/// up; how long until the listener, at its bound of one connection, admits the next one (its TLS handshake
/// is answered only once the closed connection's place is free).
async fn close_only_and_time_the_release(
    emu: &Emulator,
    mut connection: ConnectionHandle<()>,
    hangup: Hangup,
) -> Duration {
    let closing = tokio::spawn(async move {
        // Its outcome is the failed read of the hung-up pipe.
        let _ = connection.close().await;
    });
    tokio::time::timeout(Duration::from_secs(5), hangup.done)
        .await
        .expect("fe2o3 wrote no close within 5 s")
        .unwrap();
    let started = Instant::now();
    let next = tokio::time::timeout(Duration::from_secs(30), tls(emu, "localhost")).await;
    let took = started.elapsed();
    assert!(next.is_ok(), "the next connection was not admitted within 30 s");
    closing.abort();
    took
}

#[test]
fn a_bare_close_after_a_registration_releases_the_connection_at_once() {
    let emu = emulator();
    runtime().block_on(async {
        let token = sas(DEVICE, DEVICE_KEY, now() + 3600);
        let (mut connection, hangup) = open(
            &emu,
            "localhost",
            SaslProfile::Plain {
                username: format!("{SCOPE}/registrations/{DEVICE}"),
                password: token,
            },
        )
        .await;
        let mut session = Session::begin(&mut connection).await.unwrap();
        let address = format!("amqps://localhost/{SCOPE}/registrations/{DEVICE}");
        let mut api_version = fe2o3_amqp::types::definitions::Fields::new();
        api_version.insert(
            Symbol::from("com.microsoft:api-version"),
            Value::String("2021-06-01".into()),
        );
        let mut sender = Sender::builder()
            .name("close-snd")
            .target(address.as_str())
            .properties(api_version.clone())
            .attach(&mut session)
            .await
            .unwrap();
        let mut receiver = Receiver::builder()
            .name("close-rcv")
            .source(address.as_str())
            .properties(api_version)
            .attach(&mut session)
            .await
            .unwrap();
        let request = Message::builder()
            .properties(Properties::builder().message_id(1u64).build())
            .application_properties(
                ApplicationProperties::builder()
                    .insert("iotdps-operation-type", SimpleValue::String("iotdps-register".into()))
                    .build(),
            )
            .body(Body::<Value>::Data(
                vec![Data(Binary::from(
                    format!(r#"{{"registrationId":"{DEVICE}"}}"#).into_bytes(),
                ))]
                .into(),
            ))
            .build();
        let outcome = sender.send(Sendable::from(request)).await.unwrap();
        assert!(outcome.is_accepted(), "{outcome:?}");
        let answer = receiver.recv::<Body<Value>>().await.unwrap();
        // The answer is left unsettled: the server waits for its outcome when the close comes.
        let status = answer
            .message()
            .application_properties
            .as_ref()
            .and_then(|p| p.0.get("iotdps-status").cloned());
        assert_eq!(status, Some(SimpleValue::Int(202)));

        let took = close_only_and_time_the_release(&emu, connection, hangup).await;
        drop((sender, receiver, session));
        assert!(
            took < PROMPT,
            "the connection was released {took:?} after the client's close"
        );
    });
}

/// The IoT Hub side of the listener: a device DPS assigned puts its token on `$cbs`, leaves the answer
/// unsettled, attaches its cloud-to-device link and sends only `close`.
#[test]
fn a_bare_close_after_a_put_token_releases_the_hub_connection_at_once() {
    let emu = emulator();
    let agent = agent(&emu, None, common::Tls::Any);
    let body = provision(&agent, &emu, DEVICE, Some(&sas(DEVICE, DEVICE_KEY, now() + 600)));
    assert_assigned(&body, DEVICE);
    drop(agent);
    runtime().block_on(async {
        let (mut connection, hangup) = open(&emu, HUB, SaslProfile::Anonymous).await;
        let mut session = Session::begin(&mut connection).await.unwrap();
        let mut sender = Sender::attach(&mut session, "cbs-sender", "$cbs").await.unwrap();
        let mut receiver = Receiver::attach(&mut session, "cbs-receiver", "$cbs").await.unwrap();
        let key = hsm_core::sas::decode_key("test key", DEVICE_KEY).unwrap();
        let token = hsm_core::sas::Audience::Hub {
            host: HUB.into(),
            device_id: DEVICE.into(),
        }
        .sign_with_key(&key, now() + 600);
        let put = Message::builder()
            .properties(Properties::builder().message_id(1u64).build())
            .application_properties(
                ApplicationProperties::builder()
                    .insert("operation", "put-token".to_string())
                    .insert("type", "servicebus.windows.net:sastoken".to_string())
                    .insert("name", format!("{HUB}/devices/{DEVICE}"))
                    .build(),
            )
            .body(Body::Value(AmqpValue(Value::String(token))))
            .build();
        let outcome = sender.send(put).await.unwrap();
        assert!(outcome.is_accepted(), "{outcome:?}");
        // The answer is left unsettled: the server's answers task waits for its outcome when the close comes.
        let answer = receiver.recv::<Body<Value>>().await.unwrap();
        let status = answer
            .message()
            .application_properties
            .as_ref()
            .and_then(|p| p.0.get("status-code").cloned());
        assert_eq!(status, Some(SimpleValue::Int(200)));
        // A cloud-to-device link, attached and left idle by the server (one it closes at the end).
        let c2d = format!("amqps://{HUB}/devices/{DEVICE}/messages/devicebound");
        let c2d = Receiver::attach(&mut session, "c2d", c2d.as_str()).await.unwrap();

        let took = close_only_and_time_the_release(&emu, connection, hangup).await;
        assert!(
            took < PROMPT,
            "the connection was released {took:?} after the client's close"
        );
        drop((sender, receiver, c2d, session));
    });
}
