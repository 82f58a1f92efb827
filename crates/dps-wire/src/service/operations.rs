//! Bulk operations and query specifications.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{EnrollmentGroup, IndividualEnrollment};

/// `mode` of a bulk operation. Only ever sent by a client: an unknown mode is refused when read,
/// not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BulkMode {
    /// Create each record; one that exists is an error of that record.
    Create,
    /// Create or replace each record.
    Update,
    /// Replace each record only if its etag is the stored one.
    UpdateIfMatchETag,
    /// Delete each record (with its etag, only if it is the stored one).
    Delete,
}

/// `BulkEnrollmentOperation`: the body of `POST /enrollments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkEnrollmentOperation {
    /// The enrollments of the operation (at most `MAX_BULK`).
    pub enrollments: Vec<IndividualEnrollment>,
    /// What the operation does (`create`, `update`, `updateIfMatchETag`, `delete`).
    pub mode: BulkMode,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `BulkEnrollmentGroupOperation`: the body of `POST /enrollmentGroups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkEnrollmentGroupOperation {
    /// The groups of the operation (at most `MAX_BULK`).
    pub enrollment_groups: Vec<EnrollmentGroup>,
    /// What the operation does (`create`, `update`, `updateIfMatchETag`, `delete`).
    pub mode: BulkMode,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One failed item of a bulk answer: `BulkEnrollmentOperationError` (`registrationId`) or
/// `BulkEnrollmentGroupOperationError` (`enrollmentGroupId`); [`BulkItemError::id`] is either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkItemError {
    /// The registration id of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    /// The enrollment group the record belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_group_id: Option<String>,
    /// The service's error code (six digits: the HTTP status and a detail).
    pub error_code: i64,
    /// The error status, in words.
    #[serde(default)]
    pub error_status: String,
    /// Fields this version does not model, kept as they came and sent back.
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
    /// Whether every record of the operation was applied.
    pub is_successful: bool,
    /// One entry per record the operation did not apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<BulkItemError>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `QuerySpecification`: the body of `POST /enrollments/query` and `/enrollmentGroups/query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuerySpecification {
    /// The query, e.g. `SELECT * FROM enrollments`.
    pub query: String,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl QuerySpecification {
    /// The specification of `query`.
    pub fn new(query: impl Into<String>) -> Self {
        QuerySpecification {
            query: query.into(),
            extra: Map::new(),
        }
    }
}
