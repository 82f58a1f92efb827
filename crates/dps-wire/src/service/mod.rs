//! The DPS service API (`/enrollments`, `/enrollmentGroups`, `/registrations`) of `2021-10-01` and
//! every later version the specification holds, as serde types.
//!
//! Every object keeps the fields it does not model in `extra`, so a GET then PUT sends back what a
//! newer service set; every enum the specification has keeps an unknown value (`Other`), except
//! [`BulkMode`], which is only ever sent (an unknown mode is refused, not kept). Read-only fields
//! (`createdDateTimeUtc`, `registrationState`, ...) are read and sent back as they came; absent
//! fields are not sent.
//!
//! Fields by version: `credentialPolicyName` (`2025-07-01-preview`, `2026-04-01`);
//! `certificatePolicyResourceId` (`2026-07-01-preview`); `namespaceName`, `certificateAuthorityName`,
//! `certificatePolicyName` (`2026-11-01`, `2026-11-02-preview`); a registration state's
//! `connectionProfile` (`2026-11-02-preview`).

mod attestation;
mod enrollment;
mod operations;
mod registration;

pub use attestation::{
    Attestation, AttestationError, AttestationType, SymmetricKeyAttestation, TpmAttestation, X509Attestation,
    X509CaReferences, X509CertificateInfo, X509CertificateWithInfo, X509Certificates,
};
pub use enrollment::{
    AllocationPolicy, CustomAllocationDefinition, DeviceCapabilities, EnrollmentCommon, EnrollmentGroup,
    IndividualEnrollment, InitialTwin, InitialTwinProperties, ProvisioningStatus, ReprovisionPolicy, TwinCollection,
    TwinMetadata,
};
pub use operations::{
    BulkEnrollmentGroupOperation, BulkEnrollmentOperation, BulkItemError, BulkMode, BulkResult, QuerySpecification,
};
pub use registration::{AssignedDeviceSubstatus, ConnectionProfile, DeviceRegistrationState, EnrollmentStatus};

/// Header: the page size of a query (`x-ms-max-item-count`).
pub const MAX_ITEM_COUNT_HEADER: &str = "x-ms-max-item-count";
/// Header: the continuation token of a query, in the request and in the answer (`x-ms-continuation`).
pub const CONTINUATION_HEADER: &str = "x-ms-continuation";
/// At most this many records per bulk call (the service's limit).
pub const MAX_BULK: usize = 10;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn unknown_fields_and_values_survive_a_round_trip() {
        let v = json!({
            "registrationId": "dev-1",
            "attestation": {"type": "dice", "dice": {"alias": "x"}, "future": 1},
            "provisioningStatus": "suspended",
            "allocationPolicy": "nearest",
            "capabilities": {"iotEdge": false, "iotGateway": true},
            "credentialPolicyName": "p",
            "registrationState": {"status": "quarantined", "connectionProfile": "mqttV7", "newField": [1]},
            "serviceSideSetting": {"keep": true}
        });
        let e: IndividualEnrollment = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(e.attestation.kind, AttestationType::Other("dice".into()));
        assert_eq!(
            e.common.provisioning_status,
            Some(ProvisioningStatus::Other("suspended".into()))
        );
        assert_eq!(e.common.credential_policy_name.as_deref(), Some("p"));
        assert_eq!(e.extra.get("serviceSideSetting"), Some(&json!({"keep": true})));
        assert!(!e.common.capabilities.as_ref().unwrap().extra.is_empty());
        assert_eq!(serde_json::to_value(&e).unwrap(), v);
    }

    #[test]
    fn checks_and_secrets() {
        let a: Attestation = serde_json::from_value(json!({"type": "tpm"})).unwrap();
        assert_eq!(
            a.check().unwrap_err().to_string(),
            "attestation type \"tpm\" needs its `tpm` object"
        );
        assert!(
            Attestation::symmetric_key(SymmetricKeyAttestation::default())
                .check()
                .is_ok()
        );
        let k: SymmetricKeyAttestation = serde_json::from_value(json!({"primaryKey": "c2VjcmV0"})).unwrap();
        assert!(!format!("{k:?}").contains("c2VjcmV0"));
        assert!(!format!("{:?}", Attestation::symmetric_key(k)).contains("c2VjcmV0"));
        assert!(serde_json::from_value::<BulkMode>(json!("merge")).is_err());
        let r: BulkResult = serde_json::from_value(
            json!({"isSuccessful": false, "errors": [{"enrollmentGroupId": "g", "errorCode": 409201, "errorStatus": "x"}]}),
        )
        .unwrap();
        assert_eq!(r.errors[0].id(), "g");
        assert_eq!(
            serde_json::to_value(BulkMode::UpdateIfMatchETag).unwrap(),
            Value::from("updateIfMatchETag")
        );
    }
}
