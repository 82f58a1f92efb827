//! What the emulator's IoT Hub keeps of its devices: the device-to-cloud messages they sent (bounded: the
//! oldest go first) and their twins (desired properties stay empty; reported properties take patches).
//!
//! - `POST /devices/{deviceId}/messages/events` (MQTT `devices/{deviceId}/messages/events/{properties}`):
//!   kept, no answer (IoT Hub answers a telemetry publish with its PUBACK only).
//! - `GET /devices/{deviceId}/twin` (`$iothub/twin/GET/?$rid=N`): `200 {"desired": {"$version"},
//!   "reported": {..., "$version"}}`.
//! - `PATCH /devices/{deviceId}/twin/properties/reported` (`$iothub/twin/PATCH/properties/reported/?$rid=N`):
//!   the JSON object merged into the reported properties (a `null` removes a property), `204` with the new
//!   `$version` (IoT Hub sends it as a topic property).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::enrollments::lock;
use crate::request::{Response, error};

/// Messages kept at most, all devices together; past it the oldest is dropped.
pub const MAX_HUB_MESSAGES: usize = 1000;

/// A device-to-cloud message as the emulator's IoT Hub received it.
/// A device twin as IoT Hub answers `$iothub/twin/GET`: desired and reported properties, each
/// with its `$version`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct TwinDocument {
    pub(crate) desired: Map<String, Value>,
    pub(crate) reported: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
/// A device-to-cloud message the emulated hub received (`devices/{id}/messages/events/...`).
pub struct HubMessage {
    /// The sending device.
    pub device_id: String,
    /// The application and system properties of the topic's property bag, decoded, in the order sent.
    pub properties: Vec<(String, String)>,
    /// The payload as sent.
    #[serde(serialize_with = "base64_body")]
    pub body: Vec<u8>,
}

fn base64_body<S: serde::Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(body))
}

/// A device twin: the version of each side and the reported properties.
#[derive(Default)]
struct Twin {
    reported: Map<String, Value>,
    reported_version: u64,
}

/// The hub's record of its devices, shared by the service and the emulator's accessors.
#[derive(Default)]
pub(crate) struct HubDevices {
    messages: Mutex<VecDeque<HubMessage>>,
    twins: Mutex<HashMap<String, Twin>>,
}

impl HubDevices {
    pub(crate) fn receive(&self, message: HubMessage) {
        let mut messages = lock(&self.messages);
        if messages.len() >= MAX_HUB_MESSAGES {
            messages.pop_front();
        }
        messages.push_back(message);
    }

    /// The kept messages of `device_id` (every device's with `None`), oldest first.
    pub(crate) fn messages(&self, device_id: Option<&str>) -> Vec<HubMessage> {
        lock(&self.messages)
            .iter()
            .filter(|m| device_id.is_none_or(|d| m.device_id == d))
            .cloned()
            .collect()
    }

    /// The device's twin document (IoT Hub's, not a DPS object): no desired properties here.
    pub(crate) fn twin(&self, device_id: &str) -> Response {
        let twins = lock(&self.twins);
        let (reported, version) = twins
            .get(device_id)
            .map_or((Map::new(), 1), |t| (t.reported.clone(), t.reported_version.max(1)));
        let mut reported = reported;
        reported.insert("$version".into(), Value::from(version));
        let mut desired = Map::new();
        desired.insert("$version".into(), Value::from(1));
        Response::json(200, &TwinDocument { desired, reported })
    }

    pub(crate) fn patch_reported(&self, device_id: &str, body: &[u8]) -> Response {
        let patch = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(p)) => p,
            Ok(_) => return error(400, 400004, "the reported-properties patch is not a JSON object"),
            Err(e) => return error(400, 400004, format!("the reported-properties patch is not JSON: {e}")),
        };
        let mut twins = lock(&self.twins);
        let twin = twins.entry(device_id.to_string()).or_default();
        merge(&mut twin.reported, patch);
        twin.reported_version = twin.reported_version.max(1) + 1;
        Response::empty(204).with_header("$version", twin.reported_version.to_string())
    }
}

/// JSON merge patch: objects merge, `null` removes, anything else replaces (`$`-names are the service's).
fn merge(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (name, value) in patch {
        if name.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target.remove(&name);
            }
            Value::Object(inner) => match target.get_mut(&name) {
                Some(Value::Object(existing)) => merge(existing, inner),
                _ => {
                    let mut fresh = Map::new();
                    merge(&mut fresh, inner);
                    target.insert(name, Value::Object(fresh));
                }
            },
            other => {
                target.insert(name, other);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_bounded_oldest_first_out() {
        let hub = HubDevices::default();
        for i in 0..MAX_HUB_MESSAGES + 3 {
            hub.receive(HubMessage {
                device_id: "d".into(),
                properties: Vec::new(),
                body: i.to_string().into_bytes(),
            });
        }
        let kept = hub.messages(Some("d"));
        assert_eq!(kept.len(), MAX_HUB_MESSAGES);
        assert_eq!(kept[0].body, b"3");
        assert!(hub.messages(Some("other")).is_empty());
    }

    #[test]
    fn reported_patches_merge_and_bump_the_version() {
        let hub = HubDevices::default();
        let r = hub.patch_reported("d", br#"{"a": 1, "nested": {"x": 1, "y": 2}}"#);
        assert_eq!((r.status, r.header("$version")), (204, Some("2")));
        let r = hub.patch_reported("d", br#"{"a": null, "nested": {"y": 3}}"#);
        assert_eq!(r.header("$version"), Some("3"));
        let twin: TwinDocument = serde_json::from_slice(&hub.twin("d").body).unwrap();
        let expected: Map<String, Value> =
            serde_json::from_str(r#"{"nested": {"x": 1, "y": 3}, "$version": 3}"#).unwrap();
        assert_eq!(twin.reported, expected);
        assert_eq!(hub.patch_reported("d", b"[1]").status, 400);
    }
}
