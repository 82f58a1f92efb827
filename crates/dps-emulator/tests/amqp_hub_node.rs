//! The emulator's IoT Hub over AMQP as the official Node.js device client (`azure-iot-device-amqp` 1.14)
//! speaks it, where it differs from the C SDK (fe2o3-amqp as the client): its put-token names the audience
//! percent-encoded (the token's `sr` as it stands), and its links name no hub (`/devices/{id}/...`), so an
//! x509 device, which puts no token, is on the hub it asked for in its TLS handshake (SNI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::types::messaging::{AmqpValue, ApplicationProperties, Body, Data, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use rustls::pki_types::ServerName;
use test_support::pki::{Ca, Identity};

const DEVICE: &str = "node-amqp-device";
const X509_DEVICE: &str = "node-amqp-x509-device";
/// The hub whose name the emulator's server certificate carries, so a client can ask for it by SNI.
const LOCAL_HUB: &str = "localhost";

fn emulator(ca: &Ca) -> Emulator {
    let mut config = config(vec![
        Enrollment::SymmetricIndividual {
            registration_id: DEVICE.into(),
            primary_key: GROUP_DEVICE_KEY.into(),
            secondary_key: None,
        },
        Enrollment::X509Group {
            name: "fleet".into(),
            ca: vec![ca.der()],
        },
    ]);
    config.assigned_hub = LOCAL_HUB.into();
    let emu = Emulator::start_with(
        config,
        0,
        ServerOptions {
            retry_after: Duration::from_millis(0),
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let agent = agent(&emu, None, common::Tls::Any);
    let body = provision(&agent, &emu, DEVICE, Some(&sas(DEVICE, GROUP_DEVICE_KEY, now() + 600)));
    assert_eq!(body["registrationState"]["assignedHub"], LOCAL_HUB, "{body}");
    emu
}

/// A TLS connection to the AMQP port asking for `server_name` (an IP address: no SNI).
async fn tls(
    emu: &Emulator,
    device: Option<&Identity>,
    server_name: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let builder = client_builder(&emu.server_ca_pem(), common::Tls::Any);
    let config = match device {
        Some(d) => builder
            .with_client_auth_cert(d.chain.clone(), d.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(emu.amqp_endpoint()).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(server_name.to_string()).unwrap(), tcp)
        .await
        .unwrap()
}

fn telemetry(seq: &str) -> Message<Data> {
    Message::builder()
        .application_properties(ApplicationProperties::builder().insert("seq", seq.to_string()).build())
        .data(Binary::from(format!("{{\"seq\":{seq}}}").into_bytes()))
        .build()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn hub_sas(device_id: &str, expiry: u64) -> String {
    let key = hsm_core::sas::decode_key("test key", GROUP_DEVICE_KEY).unwrap();
    hsm_core::sas::Audience::Hub {
        host: LOCAL_HUB.into(),
        device_id: device_id.into(),
    }
    .sign_with_key(&key, expiry)
}

/// Node's put-token: `name` is `{hub}%2Fdevices%2F{id}`; then its relative telemetry address.
#[test]
fn a_percent_encoded_put_token_audience_is_the_devices_hub() {
    let emu = emulator(&Ca::root("unused CA"));
    runtime().block_on(async {
        let mut connection = Connection::builder()
            .container_id("node-like")
            .hostname(LOCAL_HUB)
            .sasl_profile(SaslProfile::Anonymous)
            .open_with_stream(tls(&emu, None, "127.0.0.1").await)
            .await
            .unwrap();
        let mut session = Session::begin(&mut connection).await.unwrap();
        let mut cbs_out = Sender::attach(&mut session, "cbs-sender", "$cbs").await.unwrap();
        let mut cbs_in = Receiver::attach(&mut session, "cbs-receiver", "$cbs").await.unwrap();
        let put = Message::builder()
            .properties(
                Properties::builder()
                    .message_id(MessageId::String("put-1".into()))
                    .build(),
            )
            .application_properties(
                ApplicationProperties::builder()
                    .insert("operation", "put-token".to_string())
                    .insert("type", "servicebus.windows.net:sastoken".to_string())
                    .insert("name", format!("{LOCAL_HUB}%2Fdevices%2F{DEVICE}"))
                    .build(),
            )
            .body(Body::Value(AmqpValue(Value::String(hub_sas(DEVICE, now() + 600)))))
            .build();
        cbs_out.send(put).await.unwrap();
        let answer = cbs_in.recv::<Body<Value>>().await.unwrap();
        cbs_in.accept(&answer).await.unwrap();
        let answer = answer.into_message();
        let status = answer
            .application_properties
            .as_ref()
            .and_then(|p| p.0.get("status-code"));
        let description = answer
            .application_properties
            .as_ref()
            .and_then(|p| p.0.get("status-description"));
        assert_eq!(status, Some(&SimpleValue::Int(200)), "{description:?}");

        let address = format!("/devices/{DEVICE}/messages/events");
        let mut events = Sender::attach(&mut session, "events", address.as_str()).await.unwrap();
        assert!(events.send(telemetry("1")).await.unwrap().is_accepted());
        let _ = connection.close().await;
    });
    assert_eq!(emu.hub_messages(Some(DEVICE))[0].body, br#"{"seq":1}"#);
}

/// Node's x509 device: no SASL, no token, links `/devices/{id}/...`; the hub is the TLS server name.
#[test]
fn an_x509_device_with_relative_link_addresses_is_on_the_hub_its_tls_asked_for() {
    let ca = Ca::root("node amqp CA");
    let emu = emulator(&ca);
    let leaf = ca.leaf(X509_DEVICE);
    let agent = agent(&emu, Some(&leaf), common::Tls::Any);
    let body = provision(&agent, &emu, X509_DEVICE, None);
    assert_eq!(body["registrationState"]["assignedHub"], LOCAL_HUB, "{body}");
    runtime().block_on(async {
        let mut connection = Connection::builder()
            .container_id("node-like-x509")
            .hostname(LOCAL_HUB)
            .open_with_stream(tls(&emu, Some(&leaf), LOCAL_HUB).await)
            .await
            .unwrap();
        let mut session = Session::begin(&mut connection).await.unwrap();
        let address = format!("/devices/{X509_DEVICE}/messages/events");
        let mut events = Sender::attach(&mut session, "events", address.as_str()).await.unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(5), events.send(telemetry("1"))).await;
        assert!(
            matches!(&outcome, Ok(Ok(o)) if o.is_accepted()),
            "telemetry of an x509 device on a relative address: {outcome:?}"
        );
        let _ = connection.close().await;
    });
    assert_eq!(emu.hub_messages(Some(X509_DEVICE))[0].body, br#"{"seq":1}"#);
}
