//! The error body of a DPS answer with status >= 400 (`ProvisioningServiceErrorDetails`, the same
//! in every api-version), and the header that repeats its code.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The header that carries the error code as text (`x-ms-error-code`).
pub const ERROR_CODE_HEADER: &str = "x-ms-error-code";

/// `ProvisioningServiceErrorDetails`. DPS error codes are six digits: the HTTP status and a
/// three-digit detail (401002: unauthorized, 429001: throttled, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetails {
    /// The service's error code (six digits: the HTTP status and a detail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// The service's tracking id for this request (quote it to support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
    /// What went wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Extra facts, as strings (`retryAfter` among them, in seconds, on throttling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<BTreeMap<String, String>>,
    /// RFC 3339 time of the error (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_utc: Option<String>,
    /// Fields this version does not model, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ErrorDetails {
    /// `info.retryAfter` in whole seconds, when present and a number.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.info.as_ref()?.get("retryAfter")?.trim().parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_unknown_fields() -> Result<(), serde_json::Error> {
        let text = r#"{"errorCode":429001,"trackingId":"t","message":"m","info":{"retryAfter":"3"},"timestampUtc":"2026-01-01T00:00:00Z","future":1}"#;
        let e: ErrorDetails = serde_json::from_str(text)?;
        assert_eq!(e.retry_after_secs(), Some(3));
        assert_eq!(serde_json::to_value(&e)?, serde_json::from_str::<Value>(text)?);
        Ok(())
    }
}
