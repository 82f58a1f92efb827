//! The messages of the IoT Hub over AMQP, turned into the requests the hub service takes and back: a CBS
//! put-token (`$cbs`), a telemetry message (single or batched), a twin request and its answer.
//!
//! As the C SDK sends them (`uamqp` `cbs.c` / `amqp_management.c`, `iothubtransport_amqp_telemetry_messenger.c`,
//! `iothubtransport_amqp_twin_messenger.c`): a put-token has the application properties `operation`
//! (`put-token`), `type` (`servicebus.windows.net:sastoken`) and `name` (the audience `{hub}/devices/{id}`),
//! the token as an amqp-value string body and a ulong `message-id`; its answer carries the application
//! properties `status-code` (int) and `status-description` (string) with the request's `message-id` as its
//! `correlation-id`. Telemetry comes batched (message format `0x80013700`: each data section one encoded
//! message) or as one message. A twin request has the message annotations `operation` (`GET`, `PATCH`,
//! `PUT`, `DELETE`) and `resource` (`/properties/reported`, `/notifications/twin/properties/desired`) and a
//! string `correlation-id`; its answer the annotations `status` (int) and `version` (long), the same
//! `correlation-id`, the twin JSON as one data section.

use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::message::DecodeIntoMessage;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Data, Message, MessageAnnotations, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Value};
use hsm_core::sas::url_encode;
use zeroize::Zeroizing;

/// The message format of a batch: each data section is one encoded message.
pub(super) const BATCH_FORMAT: u32 = 0x8001_3700;
const SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";

/// A CBS put-token request.
pub(super) struct PutToken {
    /// The audience's hub host and device id (`{hub}/devices/{id}`).
    pub(super) host: String,
    pub(super) device_id: String,
    pub(super) token: Zeroizing<String>,
    pub(super) message_id: Option<MessageId>,
}

fn string(value: &SimpleValue) -> Option<String> {
    match value {
        SimpleValue::String(s) => Some(s.clone()),
        SimpleValue::Symbol(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn application_property(message: &Message<Body<Value>>, name: &str) -> Option<String> {
    message
        .application_properties
        .as_ref()
        .and_then(|p| p.0.get(name))
        .and_then(string)
}

/// `{hub}/devices/{id}` (with or without `amqps://`, percent-encoded or not): the hub and the device.
pub(super) fn audience(name: &str) -> Option<(String, String)> {
    let decoded = hsm_core::sas::url_decode(name).ok()?;
    let name = decoded.as_str();
    let name = name.split_once("://").map_or(name, |(_, rest)| rest);
    let (host, device) = name.split_once("/devices/")?;
    (!host.is_empty() && !host.contains('/') && !device.is_empty() && !device.contains('/'))
        .then(|| (host.to_string(), device.to_string()))
}

/// Read a put-token; the error says what is wrong with it (answered with status 400).
pub(super) fn put_token(message: &Message<Body<Value>>) -> Result<PutToken, String> {
    match application_property(message, "operation").as_deref() {
        Some("put-token") => {}
        other => return Err(format!("CBS operation {other:?} is not put-token")),
    }
    match application_property(message, "type").as_deref() {
        Some(SAS_TOKEN_TYPE) => {}
        other => return Err(format!("CBS token type {other:?} is not {SAS_TOKEN_TYPE}")),
    }
    let name = application_property(message, "name").ok_or("the put-token has no name (audience)")?;
    let (host, device_id) =
        audience(&name).ok_or_else(|| format!("the put-token audience {name:?} is not {{hub}}/devices/{{id}}"))?;
    let token = match &message.body {
        Body::Value(v) => match &v.0 {
            Value::String(s) => Zeroizing::new(s.clone()),
            _ => return Err("the put-token body is not a string".into()),
        },
        _ => return Err("the put-token body is not an amqp-value".into()),
    };
    Ok(PutToken {
        host,
        device_id,
        token,
        message_id: message.properties.as_ref().and_then(|p| p.message_id.clone()),
    })
}

/// The answer to a put-token: `status-code` and `status-description`, correlated by the request's message id.
pub(super) fn put_token_answer(message_id: Option<MessageId>, status: u16, description: &str) -> Message<Body<Value>> {
    let mut properties = Properties::builder();
    if let Some(id) = message_id {
        properties = properties.correlation_id(id);
    }
    Message::builder()
        .properties(properties.build())
        .application_properties(
            ApplicationProperties::builder()
                .insert("status-code", SimpleValue::Int(i32::from(status)))
                .insert("status-description", SimpleValue::String(description.to_string()))
                .build(),
        )
        .body(Body::Value(fe2o3_amqp::types::messaging::AmqpValue(Value::Null)))
        .build()
}

/// One telemetry message as the hub service takes it: the property bag (`name=value&...`, encoded) and body.
pub(super) struct Telemetry {
    pub(super) properties: String,
    pub(super) body: Vec<u8>,
}

/// The messages of a telemetry delivery: each data section of a batch, or the message itself.
pub(super) fn telemetry(format: Option<u32>, message: Message<Body<Value>>) -> Result<Vec<Telemetry>, String> {
    if format != Some(BATCH_FORMAT) {
        return Ok(vec![one_message(&message)]);
    }
    let Body::Data(batch) = &message.body else {
        return Err("a batched message without data sections".into());
    };
    batch
        .iter()
        .map(|section| {
            let reader = serde_amqp::read::SliceReader::new(&section.0);
            Body::<Value>::decode_message_from_reader(reader)
                .map(|m| one_message(&m))
                .map_err(|e| format!("a section of a batched message is not a message: {e}"))
        })
        .collect()
}

fn one_message(message: &Message<Body<Value>>) -> Telemetry {
    let mut bag: Vec<(String, String)> = Vec::new();
    if let Some(p) = &message.properties {
        let id = |m: &MessageId| match m {
            MessageId::String(s) => s.clone(),
            MessageId::Ulong(n) => n.to_string(),
            other => format!("{other:?}"),
        };
        if let Some(m) = &p.message_id {
            bag.push(("$.mid".into(), id(m)));
        }
        if let Some(m) = &p.correlation_id {
            bag.push(("$.cid".into(), id(m)));
        }
        if let Some(t) = &p.content_type {
            bag.push(("$.ct".into(), t.as_str().to_string()));
        }
        if let Some(e) = &p.content_encoding {
            bag.push(("$.ce".into(), e.as_str().to_string()));
        }
    }
    if let Some(a) = &message.application_properties {
        for (name, value) in a.0.iter() {
            let value = match value {
                SimpleValue::String(s) => s.clone(),
                SimpleValue::Symbol(s) => s.as_str().to_string(),
                other => format!("{other:?}"),
            };
            bag.push((name.clone(), value));
        }
    }
    let properties = bag
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Telemetry {
        properties,
        body: body_bytes(&message.body),
    }
}

/// A body's bytes: its data sections, or an amqp-value string or binary (Node sends `''` as the body
/// of a DPS status query). A DPS request's JSON and a hub message's payload alike.
pub(super) fn body_bytes(body: &Body<Value>) -> Vec<u8> {
    match body {
        Body::Data(batch) => batch.iter().flat_map(|d| d.0.iter().copied()).collect(),
        Body::Value(v) => match &v.0 {
            Value::String(s) => s.clone().into_bytes(),
            Value::Binary(b) => b.to_vec(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// What a twin request asks.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TwinOperation {
    Get,
    PatchReported,
    /// PUT / DELETE on the desired-properties notifications: (un)subscribing.
    Subscription,
}

fn annotation(message: &Message<Body<Value>>, name: &str) -> Option<String> {
    message
        .message_annotations
        .as_ref()
        .and_then(|a| a.0.get(&OwnedKey::Symbol(Symbol::from(name))))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Symbol(s) => Some(s.as_str().to_string()),
            _ => None,
        })
}

/// The operation of a twin request, or why it is none this hub serves.
pub(super) fn twin_operation(message: &Message<Body<Value>>) -> Result<TwinOperation, String> {
    let operation = annotation(message, "operation");
    let resource = annotation(message, "resource");
    match (operation.as_deref(), resource.as_deref()) {
        (Some("GET"), _) => Ok(TwinOperation::Get),
        (Some("PATCH"), Some("/properties/reported")) => Ok(TwinOperation::PatchReported),
        (Some("PUT" | "DELETE"), Some("/notifications/twin/properties/desired")) => Ok(TwinOperation::Subscription),
        (o, r) => Err(format!("twin operation {o:?} on resource {r:?} is not served")),
    }
}

/// The answer to a twin request: `status` and `version` annotations, the request's correlation id, the body.
pub(super) fn twin_answer(
    request: &Message<Body<Value>>,
    status: u16,
    version: Option<i64>,
    body: Vec<u8>,
) -> Message<Body<Value>> {
    let mut properties = Properties::builder();
    if let Some(id) = request
        .properties
        .as_ref()
        .and_then(|p| p.correlation_id.clone().or_else(|| p.message_id.clone()))
    {
        properties = properties.correlation_id(id);
    }
    let mut annotations = MessageAnnotations::builder().insert(Symbol::from("status"), Value::Int(i32::from(status)));
    if let Some(v) = version {
        annotations = annotations.insert(Symbol::from("version"), Value::Long(v));
    }
    // Always one data section, empty for a bodiless answer: the C SDK takes a data section or no body at
    // all, and fe2o3 encodes `Body::Empty` as an amqp-value (null), which it refuses.
    Message::builder()
        .properties(properties.build())
        .message_annotations(annotations.build())
        .body(Body::Data(vec![Data(Binary::from(body))].into()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences() {
        assert_eq!(
            audience("h.example/devices/d1"),
            Some(("h.example".into(), "d1".into()))
        );
        assert_eq!(audience("amqps://h/devices/d1"), Some(("h".into(), "d1".into())));
        // Node's azure-iot-device puts the token's sr as it stands: percent-encoded.
        assert_eq!(
            audience("localhost%2Fdevices%2Fnode-device"),
            Some(("localhost".into(), "node-device".into()))
        );
        assert_eq!(audience("h%2Fdevices%2Fd1"), Some(("h".into(), "d1".into())));
        assert_eq!(audience("h/devices/"), None);
        assert_eq!(audience("h/devices/d/modules/m"), None);
        assert_eq!(audience("/devices/d"), None);
    }

    #[test]
    fn a_batch_is_split_into_its_messages() {
        let inner = |seq: &str| {
            let m: Message<Data> = Message::builder()
                .application_properties(ApplicationProperties::builder().insert("seq", seq.to_string()).build())
                .data(Binary::from(format!("body {seq}").into_bytes()))
                .build();
            let bytes = serde_amqp::to_vec(&fe2o3_amqp::types::messaging::message::__private::Serializable(m)).unwrap();
            Data(Binary::from(bytes))
        };
        let outer: Message<Body<Value>> = Message::builder()
            .body(Body::Data(vec![inner("1"), inner("2")].into()))
            .build();
        let kept = telemetry(Some(BATCH_FORMAT), outer).unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].properties, "seq=2");
        assert_eq!(kept[1].body, b"body 2");
        let garbage: Message<Body<Value>> = Message::builder()
            .body(Body::Data(vec![Data(Binary::from(vec![0xff, 0]))].into()))
            .build();
        assert!(telemetry(Some(BATCH_FORMAT), garbage).is_err());
    }
}
