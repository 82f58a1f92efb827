//! Individual enrollments and enrollment groups, and the objects they share.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Attestation, DeviceRegistrationState};

wire_enum! {
    /// `provisioningStatus`: a disabled enrollment refuses registrations.
    ProvisioningStatus {
        Enabled = "enabled",
        Disabled = "disabled",
    }
}

wire_enum! {
    /// `allocationPolicy`: how the service picks a hub among `iotHubs`.
    AllocationPolicy {
        Hashed = "hashed",
        GeoLatency = "geoLatency",
        Static = "static",
        Custom = "custom",
    }
}

/// `DeviceCapabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCapabilities {
    pub iot_edge: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ReprovisionPolicy`: what happens to a device's hub and data when it registers again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReprovisionPolicy {
    pub update_hub_assignment: bool,
    pub migrate_device_data: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `CustomAllocationDefinition`: the webhook that picks the hub (`allocationPolicy: custom`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomAllocationDefinition {
    pub webhook_url: String,
    pub api_version: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Metadata` of a twin collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwinMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_version: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `TwinCollection`: the user's properties (in `extra`) with the collection's `version`, `count`
/// and `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwinCollection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TwinMetadata>,
    /// The properties themselves.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `InitialTwinProperties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitialTwinProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<TwinCollection>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `InitialTwin`: the twin a device starts with on its hub.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitialTwin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TwinCollection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<InitialTwinProperties>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The fields individual enrollments and groups share (flattened into both on the wire).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentCommon {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<DeviceCapabilities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hub_host_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_twin: Option<InitialTwin>,
    /// Sent as `If-Match` by a client when set (optimistic concurrency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_status: Option<ProvisioningStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprovision_policy: Option<ReprovisionPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_policy: Option<AllocationPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hubs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_allocation_definition: Option<CustomAllocationDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time_utc: Option<String>,
    /// `2025-07-01-preview`, `2026-04-01`: the credential policy for issued certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_policy_name: Option<String>,
    /// `2026-07-01-preview`: the certificate policy's resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_policy_resource_id: Option<String>,
    /// `2026-11-01`: the namespace of the certificate authority that issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_name: Option<String>,
    /// `2026-11-01`: the certificate authority that issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_name: Option<String>,
    /// `2026-11-01`: the certificate policy of issued certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_policy_name: Option<String>,
}

/// `IndividualEnrollment` (`/enrollments/{registrationId}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualEnrollment {
    pub registration_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    pub attestation: Attestation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_state: Option<DeviceRegistrationState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_device_information: Option<TwinCollection>,
    #[serde(flatten)]
    pub common: EnrollmentCommon,
    /// Fields this version does not model, kept as they came (declared after `common`, which
    /// takes its own fields first).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl IndividualEnrollment {
    pub fn new(registration_id: impl Into<String>, attestation: Attestation) -> Self {
        IndividualEnrollment {
            registration_id: registration_id.into(),
            device_id: None,
            attestation,
            registration_state: None,
            optional_device_information: None,
            common: EnrollmentCommon::default(),
            extra: Map::new(),
        }
    }
}

/// `EnrollmentGroup` (`/enrollmentGroups/{enrollmentGroupId}`): x509 CA or symmetric key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentGroup {
    pub enrollment_group_id: String,
    pub attestation: Attestation,
    #[serde(flatten)]
    pub common: EnrollmentCommon,
    /// Fields this version does not model, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EnrollmentGroup {
    pub fn new(enrollment_group_id: impl Into<String>, attestation: Attestation) -> Self {
        EnrollmentGroup {
            enrollment_group_id: enrollment_group_id.into(),
            attestation,
            common: EnrollmentCommon::default(),
            extra: Map::new(),
        }
    }
}
