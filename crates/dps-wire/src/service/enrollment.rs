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
    /// The device is an IoT Edge device.
    pub iot_edge: bool,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ReprovisionPolicy`: what happens to a device's hub and data when it registers again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReprovisionPolicy {
    /// Reassign the device to a hub on reprovisioning.
    pub update_hub_assignment: bool,
    /// Move the device's data to the new hub on reprovisioning.
    pub migrate_device_data: bool,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `CustomAllocationDefinition`: the webhook that picks the hub (`allocationPolicy: custom`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomAllocationDefinition {
    /// The webhook URL the service calls.
    pub webhook_url: String,
    /// The api-version the service calls the webhook with.
    pub api_version: String,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Metadata` of a twin collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwinMetadata {
    /// When the collection last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    /// The version of the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_version: Option<i64>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `TwinCollection`: the user's properties (in `extra`) with the collection's `version`, `count`
/// and `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwinCollection {
    /// The version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// How many properties the collection holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// When the collection last changed, and its version.
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
    /// The desired properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<TwinCollection>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `InitialTwin`: the twin a device starts with on its hub.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitialTwin {
    /// The twin tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TwinCollection>,
    /// The twin properties (`desired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<InitialTwinProperties>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The fields individual enrollments and groups share (flattened into both on the wire).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentCommon {
    /// What the device is (`iotEdge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<DeviceCapabilities>,
    /// The hub to assign (a single hub; superseded by `iot_hubs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hub_host_name: Option<String>,
    /// The device twin the hub starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_twin: Option<InitialTwin>,
    /// Sent as `If-Match` by a client when set (optimistic concurrency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Whether the device may provision (`enabled`, `disabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_status: Option<ProvisioningStatus>,
    /// What happens when the device provisions again (hub update, data migration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprovision_policy: Option<ReprovisionPolicy>,
    /// How the service picks the hub among `iot_hubs` (`hashed`, `geoLatency`, `static`, `custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_policy: Option<AllocationPolicy>,
    /// The hubs the allocation policy chooses from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hubs: Option<Vec<String>>,
    /// The webhook of a `custom` allocation policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_allocation_definition: Option<CustomAllocationDefinition>,
    /// When the record was created (ISO 8601, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    /// When the record last changed (ISO 8601, UTC).
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
    /// The registration id of the device.
    pub registration_id: String,
    /// The IoT hub device id (the registration id when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// How the device proves its identity (TPM, x509 or symmetric key), with its keys or certificates.
    pub attestation: Attestation,
    /// The device's registration state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_state: Option<DeviceRegistrationState>,
    /// Device properties a TPM device reports, as a twin collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_device_information: Option<TwinCollection>,
    /// The fields individual enrollments and groups share (hub, allocation, status, twin, etag, times).
    #[serde(flatten)]
    pub common: EnrollmentCommon,
    /// Fields this version does not model, kept as they came (declared after `common`, which
    /// takes its own fields first).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl IndividualEnrollment {
    /// An enrollment of `registration_id` with `attestation`; every other field absent.
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
    /// The enrollment group the record belongs to.
    pub enrollment_group_id: String,
    /// How the device proves its identity (TPM, x509 or symmetric key), with its keys or certificates.
    pub attestation: Attestation,
    /// The fields individual enrollments and groups share (hub, allocation, status, twin, etag, times).
    #[serde(flatten)]
    pub common: EnrollmentCommon,
    /// Fields this version does not model, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EnrollmentGroup {
    /// A group `enrollment_group_id` with `attestation`; every other field absent.
    pub fn new(enrollment_group_id: impl Into<String>, attestation: Attestation) -> Self {
        EnrollmentGroup {
            enrollment_group_id: enrollment_group_id.into(),
            attestation,
            common: EnrollmentCommon::default(),
            extra: Map::new(),
        }
    }
}
