//! IoT Hub certificate renewal over MQTT (`$iothub/credentials`), as the device library speaks it:
//! the request published on `$iothub/credentials/POST/issueCertificate/?$rid={rid}`, the `202`
//! acceptance, the `200` certificates, and the error body (the DPS error shape, whose `info` values
//! the hub sends as strings, read here whatever their type).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The renewal request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRequest {
    /// The device id the connection authenticated.
    pub id: String,
    /// Base64 of a DER PKCS#10 request for a new key.
    pub csr: String,
    /// `*` (or a request id): cancel an operation in progress and take its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<String>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `202` (accepted: the certificates follow) or `200` (issued) answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsResponse {
    /// Matches the answer to the request (`$rid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// `202`: when the operation expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_expires: Option<String>,
    /// `200`: base64 DER (or PEM), leaf first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<String>>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The error body of a hub answer (status >= 400): `info` is any object (`retryAfter`,
/// `requestId`, `credentialMessage`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsError {
    /// The service's error code (six digits: the HTTP status and a detail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// What went wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The service's tracking id for this request (quote it to support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
    /// When the service answered (ISO 8601, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_utc: Option<String>,
    /// More about the error (e.g. `retryAfter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Map<String, Value>>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CredentialsError {
    /// `info.retryAfter` in whole seconds (a string or a number).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self.info.as_ref()?.get("retryAfter")? {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// `info` as `key=value` text pairs, sorted by key (strings unquoted).
    pub fn info_pairs(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .info
            .iter()
            .flatten()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect();
        pairs.sort();
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_from_a_string_or_a_number() -> Result<(), serde_json::Error> {
        let e: CredentialsError = serde_json::from_str(r#"{"errorCode":429002,"info":{"retryAfter":"7"}}"#)?;
        assert_eq!(e.retry_after_secs(), Some(7));
        let e: CredentialsError = serde_json::from_str(r#"{"info":{"retryAfter":3,"requestId":"r"}}"#)?;
        assert_eq!(e.retry_after_secs(), Some(3));
        assert_eq!(
            e.info_pairs(),
            vec![("requestId".into(), "r".into()), ("retryAfter".into(), "3".into())]
        );
        let e: CredentialsError = serde_json::from_str(r#"{"info":null}"#)?;
        assert_eq!(e.retry_after_secs(), None);
        Ok(())
    }
}
