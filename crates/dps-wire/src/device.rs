//! The DPS device API (`device.json` of every api-version the specs hold: `2021-10-01`,
//! `2025-07-01-preview`, `2026-04-01`, `2026-11-01`, `2026-11-02-preview`, `2026-11-15-preview`):
//! the registration request, the operation status, the registration state, the TPM challenge, and
//! (in [`credentials`]) the IoT Hub `$iothub/credentials` renewal messages the device also speaks.
//!
//! Fields a version added are optional here (`csr`, `issuedCertificateChain` from
//! `2025-07-01-preview`, `connectionProfile` from `2026-11-02-preview`); a field no version models
//! is kept in `extra`, so an answer read and written again loses nothing. Status enums keep a value
//! they do not know ([`EnrollmentStatus::Other`]).

pub mod credentials;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// The objects both APIs share (the same definitions in `device.json` and `service.json`): one type each.
pub use crate::service::{
    AssignedDeviceSubstatus, ConnectionProfile, EnrollmentStatus, TpmAttestation, X509CertificateInfo,
};

/// `DeviceRegistration`: the body of a register request and of a status lookup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRegistration {
    /// The registration id of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    /// TPM attestation: the endorsement and storage root keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmAttestation>,
    /// Base64 of a DER PKCS#10 request (`2025-07-01-preview` and later): DPS answers with an
    /// `issuedCertificateChain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    /// Custom data for a custom allocation policy (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `RegistrationOperationStatus`: the answer to a register request and to an operation status
/// lookup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationOperationStatus {
    /// Required by every version.
    pub operation_id: String,
    /// The registration status (`assigned`, `failed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<EnrollmentStatus>,
    /// The device's registration state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_state: Option<DeviceRegistrationResult>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `DeviceRegistrationResult`: the registration state (in an operation status, or the answer of a
/// status lookup).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRegistrationResult {
    /// TPM attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmRegistrationResult>,
    /// X.509 attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509: Option<X509RegistrationResult>,
    /// Symmetric key attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symmetric_key: Option<SymmetricKeyRegistrationResult>,
    /// The registration id of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    /// When the record was created (ISO 8601, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    /// The IoT hub the device was assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_hub: Option<String>,
    /// `2026-11-02-preview`.
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
    /// Base64 DER, leaf first, ending with the root (`2025-07-01-preview` and later, for a `csr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_certificate_chain: Option<Vec<String>>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl From<crate::service::DeviceRegistrationState> for DeviceRegistrationResult {
    /// The service API's record of a registration as the device API sends it (the same fields; the
    /// attestation results, `payload` and `issuedCertificateChain` are the device answer's to add).
    fn from(s: crate::service::DeviceRegistrationState) -> Self {
        DeviceRegistrationResult {
            tpm: None,
            x509: None,
            symmetric_key: None,
            registration_id: s.registration_id,
            created_date_time_utc: s.created_date_time_utc,
            assigned_hub: s.assigned_hub,
            connection_profile: s.connection_profile.map(|p| ConnectionProfile::from(p.as_str())),
            device_id: s.device_id,
            status: s.status.map(|v| EnrollmentStatus::from(v.as_str())),
            substatus: s.substatus.map(|v| AssignedDeviceSubstatus::from(v.as_str())),
            error_code: s.error_code,
            error_message: s.error_message,
            last_updated_date_time_utc: s.last_updated_date_time_utc,
            etag: s.etag,
            payload: s.payload,
            issued_certificate_chain: None,
            extra: s.extra,
        }
    }
}

/// `TpmRegistrationResult`: the hub key, encrypted to the TPM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TpmRegistrationResult {
    /// Base64 of the hub key encrypted to the TPM (the activation blob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_key: Option<String>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `X509RegistrationResult`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509RegistrationResult {
    /// The certificate the device authenticated with, as the service read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_info: Option<X509CertificateInfo>,
    /// The enrollment group the record belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_group_id: Option<String>,
    /// The certificate that signed the device's, as the service read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificate_info: Option<X509CertificateInfo>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `SymmetricKeyRegistrationResult`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymmetricKeyRegistrationResult {
    /// The enrollment group the record belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_group_id: Option<String>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of the `401` that answers a TPM registration without a token: the identity key,
/// encrypted to the TPM's endorsement key (base64 of the activation blob).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TpmChallenge {
    /// Base64 of the hub key encrypted to the TPM (the activation blob).
    pub authentication_key: String,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_status_values_and_fields_are_kept() -> Result<(), serde_json::Error> {
        let text = r#"{"operationId":"o","status":"quarantined","registrationState":{"substatus":"moved","newField":[1],"status":"assigned"},"later":true}"#;
        let s: RegistrationOperationStatus = serde_json::from_str(text)?;
        assert_eq!(s.status, Some(EnrollmentStatus::Other("quarantined".into())));
        let state = s.registration_state.as_ref().map(|r| (&r.status, &r.substatus));
        assert_eq!(
            state,
            Some((
                &Some(EnrollmentStatus::Assigned),
                &Some(AssignedDeviceSubstatus::Other("moved".into()))
            ))
        );
        assert_eq!(serde_json::to_value(&s)?, serde_json::from_str::<Value>(text)?);
        Ok(())
    }

    #[test]
    fn a_service_registration_state_reads_the_same_as_a_device_result() -> Result<(), serde_json::Error> {
        let text = r#"{"registrationId":"r","createdDateTimeUtc":"c","assignedHub":"h","connectionProfile":"mqttV5","deviceId":"d","status":"assigned","substatus":"deviceDataReset","errorCode":1,"errorMessage":"m","lastUpdatedDateTimeUtc":"l","etag":"e","payload":{"p":1},"future":2}"#;
        let state: crate::service::DeviceRegistrationState = serde_json::from_str(text)?;
        let result = DeviceRegistrationResult::from(state);
        assert_eq!(serde_json::to_value(&result)?, serde_json::from_str::<Value>(text)?);
        Ok(())
    }

    #[test]
    fn a_request_without_options_is_only_the_registration_id() -> Result<(), serde_json::Error> {
        let r = DeviceRegistration {
            registration_id: Some("d".into()),
            ..DeviceRegistration::default()
        };
        assert_eq!(serde_json::to_string(&r)?, r#"{"registrationId":"d"}"#);
        Ok(())
    }
}
