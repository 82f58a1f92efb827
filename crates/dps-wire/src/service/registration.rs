//! Registration states (`/registrations/{registrationId}`) and the enums they hold.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

wire_enum! {
    /// `status` of a device registration.
    EnrollmentStatus {
        Unassigned = "unassigned",
        Assigning = "assigning",
        Assigned = "assigned",
        Failed = "failed",
        Disabled = "disabled",
    }
}

wire_enum! {
    /// `substatus` of an assigned device.
    AssignedDeviceSubstatus {
        InitialAssignment = "initialAssignment",
        DeviceDataMigrated = "deviceDataMigrated",
        DeviceDataReset = "deviceDataReset",
        ReprovisionedToInitialAssignment = "reprovisionedToInitialAssignment",
    }
}

wire_enum! {
    /// `connectionProfile` (`2026-11-02-preview`): the MQTT version the assigned hub speaks; absent
    /// means `classic`.
    ConnectionProfile {
        Classic = "classic",
        MqttV5 = "mqttV5",
    }
}

/// `DeviceRegistrationState` (`/registrations/{registrationId}`), every field read-only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRegistrationState {
    /// The registration id of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    /// When the record was created (ISO 8601, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    /// The IoT hub the device was assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_hub: Option<String>,
    /// How the device connects to its hub (`2026-11-02-preview` and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_profile: Option<ConnectionProfile>,
    /// The IoT hub device id (the registration id when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The registration status (`assigned`, `failed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<EnrollmentStatus>,
    /// How the device was assigned (initial, reprovisioned with or without data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substatus: Option<AssignedDeviceSubstatus>,
    /// The service's error code (six digits: the HTTP status and a detail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// The service's error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// When the record last changed (ISO 8601, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time_utc: Option<String>,
    /// The record's version: send it back (`If-Match`) to update only what was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// What a custom allocation policy returned (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
