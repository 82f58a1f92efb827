//! The emulator's IoT Hub over AMQP as the official Node.js device client (`azure-iot-device-amqp` 1.14)
//! speaks it where it differs from the C SDK (fe2o3-amqp as the client): its put-token names the audience
//! percent-encoded (the token's `sr` as it stands), then its links name no hub (`/devices/{id}/...`). Its
//! x509 device (no SASL, relative addresses) is `amqp_hub.rs`'s `x509_device_opens_its_session_with_its_first_link`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::amqp::{runtime, tls};
use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::types::messaging::{AmqpValue, ApplicationProperties, Body, Data, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};

const DEVICE: &str = "node-amqp-device";
/// The hub the official-SDK suite assigns (scripts/official-sdks.sh).
const LOCAL_HUB: &str = "localhost";

fn emulator() -> Emulator {
    let mut config = config(vec![Enrollment::SymmetricIndividual {
        registration_id: DEVICE.into(),
        primary_key: GROUP_DEVICE_KEY.into(),
        secondary_key: None,
    }]);
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

fn telemetry(seq: &str) -> Message<Data> {
    Message::builder()
        .application_properties(ApplicationProperties::builder().insert("seq", seq.to_string()).build())
        .data(Binary::from(format!("{{\"seq\":{seq}}}").into_bytes()))
        .build()
}

/// Node's put-token: `name` is `{hub}%2Fdevices%2F{id}`; then its relative telemetry address.
#[test]
fn a_percent_encoded_put_token_audience_is_the_devices_hub() {
    let emu = emulator();
    runtime().block_on(async {
        let mut connection = Connection::builder()
            .container_id("node-like")
            .hostname(LOCAL_HUB)
            .sasl_profile(SaslProfile::Anonymous)
            .open_with_stream(tls(&emu, "127.0.0.1").await)
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
            .body(Body::Value(AmqpValue(Value::String(hub_sas(
                LOCAL_HUB,
                DEVICE,
                GROUP_DEVICE_KEY,
                now() + 600,
            )))))
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
