//! Registration states, bulk operations and query specifications.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{EnrollmentGroup, IndividualEnrollment};

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_hub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_profile: Option<ConnectionProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<EnrollmentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substatus: Option<AssignedDeviceSubstatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `mode` of a bulk operation. Only ever sent by a client: an unknown mode is refused when read,
/// not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BulkMode {
    Create,
    Update,
    UpdateIfMatchETag,
    Delete,
}

/// `BulkEnrollmentOperation`: the body of `POST /enrollments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkEnrollmentOperation {
    pub enrollments: Vec<IndividualEnrollment>,
    pub mode: BulkMode,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `BulkEnrollmentGroupOperation`: the body of `POST /enrollmentGroups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkEnrollmentGroupOperation {
    pub enrollment_groups: Vec<EnrollmentGroup>,
    pub mode: BulkMode,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One failed item of a bulk answer: `BulkEnrollmentOperationError` (`registrationId`) or
/// `BulkEnrollmentGroupOperationError` (`enrollmentGroupId`); [`BulkItemError::id`] is either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkItemError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_group_id: Option<String>,
    pub error_code: i64,
    #[serde(default)]
    pub error_status: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BulkItemError {
    /// The record's id: `registrationId` or `enrollmentGroupId`.
    pub fn id(&self) -> &str {
        self.registration_id
            .as_deref()
            .or(self.enrollment_group_id.as_deref())
            .unwrap_or_default()
    }
}

/// `BulkEnrollmentOperationResult` / `BulkEnrollmentGroupOperationResult`: the answer to a bulk call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkResult {
    pub is_successful: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<BulkItemError>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `QuerySpecification`: the body of `POST /enrollments/query` and `/enrollmentGroups/query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuerySpecification {
    pub query: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl QuerySpecification {
    pub fn new(query: impl Into<String>) -> Self {
        QuerySpecification {
            query: query.into(),
            extra: Map::new(),
        }
    }
}
