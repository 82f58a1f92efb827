//! The emulator's IoT Hub over AMQP (fe2o3-amqp as the client, shaped as the C SDK's hub transport): a
//! device DPS assigned puts its SAS token on `$cbs`, sends telemetry (single and batched, kept and read
//! back), patches and reads its twin, renews its token on the same connection; wrong and expired tokens are
//! answered 401, links before a put-token or to another device are refused, and a connection that puts no
//! token is closed at the request deadline; after SASL, garbage closes the connection; an x509 device opens
//! its session with its first link.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::amqp::{runtime, tls};
use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions};
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Data, Message, MessageAnnotations, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEVICE: &str = "amqp-hub-device";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const BATCH_FORMAT: u32 = 0x8001_3700;

fn emulator() -> Emulator {
    let enrollments = [DEVICE, "other-device"]
        .iter()
        .map(|id| Enrollment::SymmetricIndividual {
            registration_id: (*id).into(),
            primary_key: GROUP_DEVICE_KEY.into(),
            secondary_key: None,
        })
        .collect();
    let emu = Emulator::start_with(
        config(enrollments),
        0,
        ServerOptions {
            retry_after: Duration::from_millis(0),
            request_timeout: REQUEST_TIMEOUT,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    for id in [DEVICE, "other-device"] {
        let agent = agent(&emu, None, common::Tls::Any);
        let body = provision(&agent, &emu, id, Some(&sas(id, GROUP_DEVICE_KEY, now() + 600)));
        assert_assigned(&body, id);
    }
    emu
}

async fn open(emu: &Emulator) -> (ConnectionHandle<()>, SessionHandle<()>) {
    let mut connection = Connection::builder()
        .container_id("hub-test")
        .hostname(HUB)
        .sasl_profile(SaslProfile::Anonymous)
        .open_with_stream(tls(emu, "127.0.0.1").await)
        .await
        .unwrap();
    let session = Session::begin(&mut connection).await.unwrap();
    (connection, session)
}

struct Cbs {
    sender: Sender,
    receiver: Receiver,
    next_id: u64,
}

impl Cbs {
    async fn attach(session: &mut SessionHandle<()>) -> Cbs {
        let sender = Sender::attach(session, "cbs-sender", "$cbs").await.unwrap();
        let receiver = Receiver::attach(session, "cbs-receiver", "$cbs").await.unwrap();
        Cbs {
            sender,
            receiver,
            next_id: 0,
        }
    }

    /// Put `token` for `device`: the answer's status-code.
    async fn put(&mut self, device: &str, token: &str) -> i32 {
        self.next_id += 1;
        let message = Message::builder()
            .properties(Properties::builder().message_id(MessageId::Ulong(self.next_id)).build())
            .application_properties(
                ApplicationProperties::builder()
                    .insert("operation", "put-token".to_string())
                    .insert("type", "servicebus.windows.net:sastoken".to_string())
                    .insert("name", format!("{HUB}/devices/{device}"))
                    .build(),
            )
            .body(Body::Value(AmqpValue(Value::String(token.to_string()))))
            .build();
        self.sender.send(message).await.unwrap();
        let answer = self.receiver.recv::<Body<Value>>().await.unwrap();
        self.receiver.accept(&answer).await.unwrap();
        let message = answer.into_message();
        assert_eq!(
            message.properties.as_ref().and_then(|p| p.correlation_id.clone()),
            Some(MessageId::Ulong(self.next_id))
        );
        match message
            .application_properties
            .as_ref()
            .and_then(|p| p.0.get("status-code"))
        {
            Some(SimpleValue::Int(s)) => *s,
            other => panic!("status-code {other:?}"),
        }
    }
}

fn telemetry_message(seq: &str) -> Message<Data> {
    Message::builder()
        .application_properties(ApplicationProperties::builder().insert("seq", seq.to_string()).build())
        .data(Binary::from(format!("{{\"seq\":{seq}}}").into_bytes()))
        .build()
}

/// A batch as the C SDK sends it: each data section one encoded message.
fn batch(seqs: &[&str]) -> Sendable<Body<Value>> {
    let sections = seqs
        .iter()
        .map(|s| {
            let bytes = serde_amqp::to_vec(&fe2o3_amqp::types::messaging::message::__private::Serializable(
                telemetry_message(s),
            ))
            .unwrap();
            Data(Binary::from(bytes))
        })
        .collect::<Vec<_>>();
    let message: Message<Body<Value>> = Message::builder().body(Body::Data(sections.into())).build();
    Sendable::builder()
        .message(message)
        .message_format(BATCH_FORMAT)
        .build()
}

fn twin_request(operation: &str, resource: Option<&str>, id: &str, body: &[u8]) -> Message<Body<Value>> {
    let mut annotations =
        MessageAnnotations::builder().insert(Symbol::from("operation"), Value::String(operation.into()));
    if let Some(r) = resource {
        annotations = annotations.insert(Symbol::from("resource"), Value::String(r.into()));
    }
    Message::builder()
        .properties(
            Properties::builder()
                .correlation_id(MessageId::String(id.into()))
                .build(),
        )
        .message_annotations(annotations.build())
        .body(Body::Data(vec![Data(Binary::from(body.to_vec()))].into()))
        .build()
}

fn annotation(message: &Message<Body<Value>>, name: &str) -> Option<Value> {
    message
        .message_annotations
        .as_ref()
        .and_then(|a| a.0.get(&OwnedKey::Symbol(Symbol::from(name))))
        .cloned()
}

/// Whether the link is (or soon is) detached by the server: a send on it fails.
async fn refused(sender: &mut Sender) -> bool {
    let sent = tokio::time::timeout(Duration::from_secs(5), sender.send(telemetry_message("0"))).await;
    matches!(sent, Ok(Err(_)))
}

#[test]
fn sas_device_puts_its_token_sends_telemetry_and_uses_its_twin() {
    let emu = emulator();
    runtime().block_on(async {
        let (mut connection, mut session) = open(&emu).await;
        let mut cbs = Cbs::attach(&mut session).await;
        assert_eq!(
            cbs.put(DEVICE, &hub_sas(HUB, DEVICE, GROUP_DEVICE_KEY, now() + 600))
                .await,
            200
        );
        let address = format!("amqps://{HUB}/devices/{DEVICE}/messages/events");
        let mut events = Sender::attach(&mut session, "link-snd", address.as_str())
            .await
            .unwrap();
        let outcome = events.send(telemetry_message("1")).await.unwrap();
        assert!(outcome.is_accepted(), "{outcome:?}");
        let outcome = events.send(batch(&["2", "3"])).await.unwrap();
        assert!(outcome.is_accepted(), "{outcome:?}");
        let kept = emu.hub_messages(Some(DEVICE));
        let seqs: Vec<_> = kept.iter().map(|m| m.properties.clone()).collect();
        assert_eq!(
            seqs,
            vec![
                vec![("seq".to_string(), "1".to_string())],
                vec![("seq".to_string(), "2".to_string())],
                vec![("seq".to_string(), "3".to_string())]
            ]
        );
        assert_eq!(kept[2].body, br#"{"seq":3}"#);

        let twin = format!("amqps://{HUB}/devices/{DEVICE}/twin");
        let mut twin_out = Sender::attach(&mut session, "twin-snd", twin.as_str()).await.unwrap();
        let mut twin_in = Receiver::attach(&mut session, "twin-rcv", twin.as_str()).await.unwrap();
        let mut ask = async |m: Message<Body<Value>>| {
            twin_out.send(m).await.unwrap();
            let d = twin_in.recv::<Body<Value>>().await.unwrap();
            twin_in.accept(&d).await.unwrap();
            d.into_message()
        };
        let answer = ask(twin_request(
            "PATCH",
            Some("/properties/reported"),
            "c1",
            br#"{"fw":"1.0"}"#,
        ))
        .await;
        assert_eq!(annotation(&answer, "status"), Some(Value::Int(204)));
        assert_eq!(annotation(&answer, "version"), Some(Value::Long(2)));
        // A data section (empty) or none: the C SDK refuses an amqp-value body.
        assert!(
            matches!(&answer.body, Body::Data(d) if d.len() == 1 && d[0].0.is_empty()),
            "{:?}",
            answer.body
        );
        assert_eq!(
            answer.properties.as_ref().and_then(|p| p.correlation_id.clone()),
            Some(MessageId::String("c1".into()))
        );
        let answer = ask(twin_request(
            "PUT",
            Some("/notifications/twin/properties/desired"),
            "c2",
            b" ",
        ))
        .await;
        assert_eq!(annotation(&answer, "status"), Some(Value::Int(200)));
        let answer = ask(twin_request("GET", None, "c3", b" ")).await;
        assert_eq!(annotation(&answer, "status"), Some(Value::Int(200)));
        let Body::Data(body) = &answer.body else {
            panic!("{:?}", answer.body)
        };
        let doc: serde_json::Value = serde_json::from_slice(&body[0].0).unwrap();
        assert_eq!(doc["reported"]["fw"], "1.0");
        assert!(doc["desired"].is_object());

        // Cloud-to-device: attached, left idle.
        let c2d = format!("amqps://{HUB}/devices/{DEVICE}/messages/devicebound");
        let _c2d = Receiver::attach(&mut session, "c2d", c2d.as_str()).await.unwrap();
        // Another device's telemetry address: refused.
        let other = format!("amqps://{HUB}/devices/other-device/messages/events");
        let mut other = Sender::attach(&mut session, "other", other.as_str()).await.unwrap();
        assert!(
            refused(&mut other).await,
            "a link to another device's address was served"
        );
        // This connection still serves its device.
        assert!(events.send(telemetry_message("4")).await.unwrap().is_accepted());
        drop(session);
        let _ = connection.close().await;
    });
}

#[test]
fn wrong_and_expired_tokens_are_answered_401_and_links_before_a_token_are_refused() {
    let emu = emulator();
    runtime().block_on(async {
        let (_connection, mut session) = open(&emu).await;
        let address = format!("amqps://{HUB}/devices/{DEVICE}/messages/events");
        let mut early = Sender::attach(&mut session, "early", address.as_str()).await.unwrap();
        assert!(refused(&mut early).await, "telemetry before a put-token was served");
        let mut cbs = Cbs::attach(&mut session).await;
        let other_key = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDA=";
        assert_eq!(
            cbs.put(DEVICE, &hub_sas(HUB, DEVICE, other_key, now() + 600)).await,
            401
        );
        assert_eq!(
            cbs.put(DEVICE, &hub_sas(HUB, DEVICE, GROUP_DEVICE_KEY, now() - 10))
                .await,
            401
        );
        assert_eq!(
            cbs.put(
                "never-registered",
                &hub_sas(HUB, "never-registered", GROUP_DEVICE_KEY, now() + 600)
            )
            .await,
            401
        );
        let mut late = Sender::attach(&mut session, "late", address.as_str()).await.unwrap();
        assert!(
            refused(&mut late).await,
            "telemetry after refused put-tokens was served"
        );
    });
    assert!(emu.hub_messages(Some(DEVICE)).is_empty());
}

/// A token renewed on the same connection before it expires keeps the device connected past the first
/// token's expiry; one not renewed closes the connection when it expires.
#[test]
fn a_renewed_token_keeps_the_connection_and_an_expired_one_closes_it() {
    let emu = emulator();
    runtime().block_on(async {
        let (_connection, mut session) = open(&emu).await;
        let mut cbs = Cbs::attach(&mut session).await;
        let first_expiry = now() + 2;
        assert_eq!(
            cbs.put(DEVICE, &hub_sas(HUB, DEVICE, GROUP_DEVICE_KEY, first_expiry))
                .await,
            200
        );
        let address = format!("amqps://{HUB}/devices/{DEVICE}/messages/events");
        let mut events = Sender::attach(&mut session, "link-snd", address.as_str())
            .await
            .unwrap();
        assert_eq!(
            cbs.put(DEVICE, &hub_sas(HUB, DEVICE, GROUP_DEVICE_KEY, now() + 600))
                .await,
            200
        );
        // Pacing: the clock passing the first token's expiry (whole seconds) is the behaviour under
        // test; there is no event to wait on. The connection still serves on the renewed token.
        tokio::time::sleep(Duration::from_secs((first_expiry + 1).saturating_sub(now()))).await;
        assert!(events.send(telemetry_message("1")).await.unwrap().is_accepted());

        let (mut connection, mut session) = open(&emu).await;
        let mut cbs = Cbs::attach(&mut session).await;
        assert_eq!(
            cbs.put(DEVICE, &hub_sas(HUB, DEVICE, GROUP_DEVICE_KEY, now() + 2))
                .await,
            200
        );
        let started = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(10), connection.on_close()).await;
        assert!(closed.is_ok(), "the connection outlived its token");
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    });
}

#[test]
fn a_connection_that_puts_no_token_is_closed_at_the_request_deadline() {
    let emu = emulator();
    runtime().block_on(async {
        let (mut connection, mut session) = open(&emu).await;
        let _cbs = Cbs::attach(&mut session).await;
        let started = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(10), connection.on_close()).await;
        assert!(closed.is_ok(), "the connection was still open after 10 s");
        assert!(started.elapsed() < REQUEST_TIMEOUT * 2, "{:?}", started.elapsed());
    });
}

/// SASL MSSBCBS (the C SDK's), then garbage instead of the AMQP header: closed at once.
#[test]
fn garbage_after_sasl_closes_the_connection() {
    let emu = emulator();
    runtime().block_on(async {
        let mut s = tls(&emu, "127.0.0.1").await;
        s.write_all(b"AMQP\x03\x01\x00\x00").await.unwrap();
        let mut header = [0u8; 8];
        s.read_exact(&mut header).await.unwrap();
        assert_eq!(&header, b"AMQP\x03\x01\x00\x00");
        // sasl-mechanisms (descriptor 0x40), then our sasl-init for MSSBCBS, then garbage.
        let mut first = vec![0u8; 4096];
        let n = s.read(&mut first).await.unwrap();
        assert!(
            n > 8 && first[..n].windows(7).any(|w| w == b"MSSBCBS"),
            "MSSBCBS is not offered"
        );
        let init = sasl_init(b"MSSBCBS");
        s.write_all(&init).await.unwrap();
        let n = s.read(&mut first).await.unwrap();
        assert!(n > 8, "no SASL outcome");
        s.write_all(&[0xde; 64]).await.unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "still open after 5 s");
        assert!(started.elapsed() < REQUEST_TIMEOUT);
    });
}

/// A SASL frame holding sasl-init (0x41) with `mechanism` and no initial response.
fn sasl_init(mechanism: &[u8]) -> Vec<u8> {
    // list8 of one symbol8.
    let mut body = vec![0x00, 0x53, 0x41, 0xc0];
    let list = [&[0xa3, mechanism.len() as u8][..], mechanism].concat();
    body.push((list.len() + 1) as u8);
    body.push(1);
    body.extend_from_slice(&list);
    let size = (8 + body.len()) as u32;
    let mut frame = size.to_be_bytes().to_vec();
    frame.extend_from_slice(&[2, 1, 0, 0]);
    frame.extend_from_slice(&body);
    frame
}

/// An x509 device: no SASL, its TLS client chain; its first link (addressed without a hub, as Node's client
/// does) opens the session. Another CA's certificate with the same CN: the link is refused.
#[test]
fn x509_device_opens_its_session_with_its_first_link() {
    let ca = Ca::root("amqp hub test CA");
    let emu = Emulator::start_with(
        config(vec![Enrollment::X509Group {
            name: "fleet".into(),
            ca: vec![ca.der()],
        }]),
        0,
        ServerOptions {
            retry_after: Duration::from_millis(0),
            request_timeout: REQUEST_TIMEOUT,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let leaf = ca.leaf("x509-device");
    let agent = agent(&emu, Some(&leaf), common::Tls::Any);
    assert_assigned(&provision(&agent, &emu, "x509-device", None), "x509-device");
    let connect = async |identity: &Identity| {
        let config = client_builder(&emu.server_ca_pem(), common::Tls::Any)
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(emu.amqp_endpoint()).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let mut connection = Connection::builder()
            .container_id("hub-x509")
            .hostname(HUB)
            .open_with_stream(stream)
            .await
            .unwrap();
        let session = Session::begin(&mut connection).await.unwrap();
        (connection, session)
    };
    runtime().block_on(async {
        let (_connection, mut session) = connect(&leaf).await;
        let mut events = Sender::attach(&mut session, "link-snd", "/devices/x509-device/messages/events")
            .await
            .unwrap();
        assert!(events.send(telemetry_message("1")).await.unwrap().is_accepted());
        let stranger = Ca::root("stranger").leaf("x509-device");
        let (_connection, mut session) = connect(&stranger).await;
        let mut events = Sender::attach(&mut session, "link-snd", "/devices/x509-device/messages/events")
            .await
            .unwrap();
        assert!(refused(&mut events).await, "another CA's certificate was served");
    });
    assert_eq!(emu.hub_messages(Some("x509-device")).len(), 1);
}
