//! The service API's records (DPS service API `2021-10-01`), as serde types.
//!
//! Read-only fields (`createdDateTimeUtc`, `registrationState`, ...) are read and sent back as they
//! came; absent optional fields are not sent.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

/// `provisioningStatus`: a disabled enrollment refuses registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProvisioningStatus {
    Enabled,
    Disabled,
}

/// How a device proves its identity. On the wire:
/// `{"type": "tpm|x509|symmetricKey|none", "tpm": {...} | "x509": {...} | "symmetricKey": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawAttestation", into = "RawAttestation")]
pub enum Attestation {
    Tpm(TpmAttestation),
    X509(Box<X509Attestation>),
    SymmetricKey(SymmetricKeyAttestation),
    None,
}

impl Attestation {
    /// The `type` string.
    pub fn kind(&self) -> &'static str {
        match self {
            Attestation::Tpm(_) => "tpm",
            Attestation::X509(_) => "x509",
            Attestation::SymmetricKey(_) => "symmetricKey",
            Attestation::None => "none",
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAttestation {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tpm: Option<TpmAttestation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x509: Option<X509Attestation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    symmetric_key: Option<SymmetricKeyAttestation>,
}

impl TryFrom<RawAttestation> for Attestation {
    type Error = String;
    fn try_from(r: RawAttestation) -> Result<Self, String> {
        let need = |what: &str| format!("attestation type {:?} needs its `{what}` object", r.kind);
        Ok(match r.kind.as_str() {
            "tpm" => Attestation::Tpm(r.tpm.ok_or_else(|| need("tpm"))?),
            "x509" => Attestation::X509(Box::new(r.x509.ok_or_else(|| need("x509"))?)),
            // The service omits generated keys from some answers: an empty object then.
            "symmetricKey" => Attestation::SymmetricKey(r.symmetric_key.unwrap_or_default()),
            "none" => Attestation::None,
            other => {
                return Err(format!(
                    "unknown attestation type {other:?} (expected tpm, x509, symmetricKey)"
                ));
            }
        })
    }
}

impl From<Attestation> for RawAttestation {
    fn from(a: Attestation) -> Self {
        let kind = a.kind().to_string();
        let mut raw = RawAttestation {
            kind,
            tpm: None,
            x509: None,
            symmetric_key: None,
        };
        match a {
            Attestation::Tpm(t) => raw.tpm = Some(t),
            Attestation::X509(x) => raw.x509 = Some(*x),
            Attestation::SymmetricKey(s) => raw.symmetric_key = Some(s),
            Attestation::None => {}
        }
        raw
    }
}

/// `tpm`: the EK (and optionally the SRK), base64 `TPM2B_PUBLIC`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TpmAttestation {
    pub endorsement_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_root_key: Option<String>,
}

/// `symmetricKey`: base64 keys; the service generates them when both are absent. Secrets: never in
/// `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymmetricKeyAttestation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_key: Option<Zeroizing<String>>,
}

impl fmt::Debug for SymmetricKeyAttestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |k: &Option<Zeroizing<String>>| k.as_ref().map(|_| "<redacted>");
        f.debug_struct("SymmetricKeyAttestation")
            .field("primary_key", &shown(&self.primary_key))
            .field("secondary_key", &shown(&self.secondary_key))
            .finish()
    }
}

/// `x509`: exactly one of the three is set: a device's own certificates (individual), the signing CA
/// certificates (group), or references to CAs uploaded to the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Attestation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificates: Option<X509Certificates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificates: Option<X509Certificates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_references: Option<X509CaReferences>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Certificates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<X509CertificateWithInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<X509CertificateWithInfo>,
}

/// `certificate`: the PEM (the API's "PEM-formatted certificate string"; base64 DER is also taken by
/// DPS); `info`: what the service read from it (answers only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509CertificateWithInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509CaReferences {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<String>,
}

impl X509Attestation {
    /// An individual enrollment's device certificate (PEM).
    pub fn client_certificate(pem: impl Into<String>) -> Self {
        X509Attestation {
            client_certificates: Some(X509Certificates::primary(pem)),
            ..Default::default()
        }
    }

    /// A group's signing CA (PEM).
    pub fn signing_certificate(pem: impl Into<String>) -> Self {
        X509Attestation {
            signing_certificates: Some(X509Certificates::primary(pem)),
            ..Default::default()
        }
    }
}

impl X509Certificates {
    fn primary(pem: impl Into<String>) -> Self {
        X509Certificates {
            primary: Some(X509CertificateWithInfo {
                certificate: Some(pem.into()),
                info: None,
            }),
            secondary: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCapabilities {
    pub iot_edge: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReprovisionPolicy {
    pub update_hub_assignment: bool,
    pub migrate_device_data: bool,
}

/// The fields individual enrollments and groups share.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentCommon {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<DeviceCapabilities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hub_host_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_twin: Option<Value>,
    /// Sent as `If-Match` by [`crate::ServiceClient`] when set (optimistic concurrency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_status: Option<ProvisioningStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprovision_policy: Option<ReprovisionPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hubs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_allocation_definition: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time_utc: Option<String>,
}

/// An individual enrollment (`/enrollments/{registrationId}`).
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
    pub optional_device_information: Option<Value>,
    #[serde(flatten)]
    pub common: EnrollmentCommon,
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
        }
    }
}

/// An enrollment group (`/enrollmentGroups/{enrollmentGroupId}`): x509 CA or symmetric key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentGroup {
    pub enrollment_group_id: String,
    pub attestation: Attestation,
    #[serde(flatten)]
    pub common: EnrollmentCommon,
}

impl EnrollmentGroup {
    pub fn new(enrollment_group_id: impl Into<String>, attestation: Attestation) -> Self {
        EnrollmentGroup {
            enrollment_group_id: enrollment_group_id.into(),
            attestation,
            common: EnrollmentCommon::default(),
        }
    }
}

/// A device's registration state (`/registrations/{registrationId}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRegistrationState {
    #[serde(default)]
    pub registration_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_hub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// `unassigned|assigning|assigned|failed|disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substatus: Option<String>,
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
}

/// `mode` of a bulk operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BulkMode {
    Create,
    Update,
    UpdateIfMatchETag,
    Delete,
}

/// One failed item of a bulk answer (`registrationId` or `enrollmentGroupId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkItemError {
    #[serde(alias = "enrollmentGroupId")]
    pub registration_id: String,
    pub error_code: i64,
    #[serde(default)]
    pub error_status: String,
}

/// The answer to a bulk call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkResult {
    pub is_successful: bool,
    #[serde(default)]
    pub errors: Vec<BulkItemError>,
}

/// The error body of the service (`ProvisioningServiceErrorDetails`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceErrorBody {
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub tracking_id: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn individual_round_trips_each_attestation() {
        for att in [
            json!({"type": "tpm", "tpm": {"endorsementKey": "AToAAQ=="}}),
            json!({"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": "LS0t"}}}}),
            json!({"type": "symmetricKey", "symmetricKey": {"primaryKey": "a2V5", "secondaryKey": "a2V5Mg=="}}),
        ] {
            let v = json!({
                "registrationId": "dev-1", "deviceId": "d1", "attestation": att,
                "provisioningStatus": "disabled", "etag": "\"3\"", "capabilities": {"iotEdge": true},
                "initialTwin": {"tags": {"a": 1}}, "iotHubHostName": "h"
            });
            let e: IndividualEnrollment = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(e.common.provisioning_status, Some(ProvisioningStatus::Disabled));
            assert_eq!(serde_json::to_value(&e).unwrap(), v);
        }
    }

    #[test]
    fn group_and_bulk_answers() {
        let g: EnrollmentGroup = serde_json::from_value(json!({
            "enrollmentGroupId": "fleet", "attestation": {"type": "symmetricKey"}
        }))
        .unwrap();
        assert_eq!(
            g.attestation,
            Attestation::SymmetricKey(SymmetricKeyAttestation::default())
        );
        let r: BulkResult = serde_json::from_value(json!({
            "isSuccessful": false,
            "errors": [{"enrollmentGroupId": "g", "errorCode": 409201, "errorStatus": "exists"}]
        }))
        .unwrap();
        assert_eq!(r.errors[0].registration_id, "g");
        assert_eq!(
            serde_json::to_value(BulkMode::UpdateIfMatchETag).unwrap(),
            json!("updateIfMatchETag")
        );
    }

    #[test]
    fn bad_attestations_are_named_and_keys_never_debug_printed() {
        let e = serde_json::from_value::<Attestation>(json!({"type": "tpm"})).unwrap_err();
        assert!(e.to_string().contains("needs its `tpm` object"), "{e}");
        let e = serde_json::from_value::<Attestation>(json!({"type": "dice"})).unwrap_err();
        assert!(e.to_string().contains("unknown attestation type \"dice\""), "{e}");
        let s = SymmetricKeyAttestation {
            primary_key: Some(Zeroizing::new("c2VjcmV0".into())),
            secondary_key: None,
        };
        assert!(!format!("{s:?}").contains("c2VjcmV0"));
    }
}
