//! Every object and enum the service specification defines, in every api-version it holds (those
//! without examples too: `2026-07-01-preview`, `2026-11-02-preview`), is modelled: a body with every
//! property the definition names decodes with nothing left in `extra`, encodes back equal, and every
//! enum value is a known variant (not `Other`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use dps_wire::ErrorDetails;
use dps_wire::service::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// A sample value of `schema`: every property present, enums their first value.
fn sample(defs: &Map<String, Value>, schema: &Value, depth: usize) -> Value {
    assert!(depth < 40, "recursive schema");
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap();
        return sample(defs, &defs[name], depth + 1);
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values[0].clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => json!("s"),
        Some("integer") => json!(7),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => json!([sample(defs, &schema["items"], depth + 1)]),
        _ => {
            let props = schema.get("properties").and_then(Value::as_object);
            let mut o: Map<String, Value> = props
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), sample(defs, v, depth + 1)))
                .collect();
            match schema.get("additionalProperties") {
                Some(ap) if ap.get("type").is_some() || ap.get("$ref").is_some() => {
                    o.insert("userProperty".into(), sample(defs, ap, depth + 1));
                }
                Some(_) => {
                    o.insert("userProperty".into(), json!({"any": 1}));
                }
                None => {}
            }
            Value::Object(o)
        }
    }
}

/// Decodes `v` as `T`, checks it encodes back equal, returns T's unmodelled top-level fields.
fn fields<T: DeserializeOwned + Serialize>(v: &Value, extra: fn(&T) -> &Map<String, Value>) -> Vec<String> {
    let t: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v} does not decode: {e}"));
    assert_eq!(&serde_json::to_value(&t).unwrap(), v);
    extra(&t).keys().cloned().collect()
}

/// The unmodelled top-level fields of a sample of definition `name`; None: no type for it.
fn unmodelled(name: &str, v: &Value) -> Option<Vec<String>> {
    Some(match name {
        "IndividualEnrollment" => fields::<IndividualEnrollment>(v, |t| &t.extra),
        "EnrollmentGroup" => fields::<EnrollmentGroup>(v, |t| &t.extra),
        "DeviceRegistrationState" => fields::<DeviceRegistrationState>(v, |t| &t.extra),
        "AttestationMechanism" => fields::<Attestation>(v, |t| &t.extra),
        "TpmAttestation" => fields::<TpmAttestation>(v, |t| &t.extra),
        "SymmetricKeyAttestation" => fields::<SymmetricKeyAttestation>(v, |t| &t.extra),
        "X509Attestation" => fields::<X509Attestation>(v, |t| &t.extra),
        "X509Certificates" => fields::<X509Certificates>(v, |t| &t.extra),
        "X509CertificateWithInfo" => fields::<X509CertificateWithInfo>(v, |t| &t.extra),
        "X509CertificateInfo" => fields::<X509CertificateInfo>(v, |t| &t.extra),
        "X509CAReferences" => fields::<X509CaReferences>(v, |t| &t.extra),
        "DeviceCapabilities" => fields::<DeviceCapabilities>(v, |t| &t.extra),
        "ReprovisionPolicy" => fields::<ReprovisionPolicy>(v, |t| &t.extra),
        "CustomAllocationDefinition" => fields::<CustomAllocationDefinition>(v, |t| &t.extra),
        "InitialTwin" => fields::<InitialTwin>(v, |t| &t.extra),
        "InitialTwinProperties" => fields::<InitialTwinProperties>(v, |t| &t.extra),
        // A twin collection's own fields are version, count and metadata; the rest are the user's.
        "TwinCollection" => fields::<TwinCollection>(v, |t| &t.extra)
            .into_iter()
            .filter(|k| k != "userProperty")
            .collect(),
        "Metadata" => fields::<TwinMetadata>(v, |t| &t.extra),
        "BulkEnrollmentOperation" => fields::<BulkEnrollmentOperation>(v, |t| &t.extra),
        "BulkEnrollmentGroupOperation" => fields::<BulkEnrollmentGroupOperation>(v, |t| &t.extra),
        "BulkEnrollmentOperationResult" | "BulkEnrollmentGroupOperationResult" => fields::<BulkResult>(v, |t| &t.extra),
        "BulkEnrollmentOperationError" | "BulkEnrollmentGroupOperationError" => {
            fields::<BulkItemError>(v, |t| &t.extra)
        }
        "QuerySpecification" => fields::<QuerySpecification>(v, |t| &t.extra),
        "ProvisioningServiceErrorDetails" => fields::<ErrorDetails>(v, |t| &t.extra),
        _ => return None,
    })
}

/// Whether `value` is a known variant of the enum named `name` (a definition or a property).
fn known(name: &str, value: &str) -> Option<bool> {
    fn of<T: DeserializeOwned + Serialize>(value: &str, other: fn(&T) -> bool) -> bool {
        let t: T = serde_json::from_value(json!(value)).unwrap();
        assert_eq!(serde_json::to_value(&t).unwrap(), json!(value));
        !other(&t)
    }
    Some(match name {
        "AttestationType" | "type" => of::<AttestationType>(value, |t| matches!(t, AttestationType::Other(_))),
        "AllocationPolicy" | "allocationPolicy" => {
            of::<AllocationPolicy>(value, |t| matches!(t, AllocationPolicy::Other(_)))
        }
        "ProvisioningStatus" | "provisioningStatus" => {
            of::<ProvisioningStatus>(value, |t| matches!(t, ProvisioningStatus::Other(_)))
        }
        "EnrollmentStatus" | "status" => of::<EnrollmentStatus>(value, |t| matches!(t, EnrollmentStatus::Other(_))),
        "AssignedDeviceSubstatus" | "substatus" => {
            of::<AssignedDeviceSubstatus>(value, |t| matches!(t, AssignedDeviceSubstatus::Other(_)))
        }
        "ConnectionProfile" | "connectionProfile" => {
            of::<ConnectionProfile>(value, |t| matches!(t, ConnectionProfile::Other(_)))
        }
        // BulkMode has no Other: an unknown one fails to decode.
        "OperationMode" | "BulkEnrollmentMode" | "mode" => of::<BulkMode>(value, |_| false),
        _ => return None,
    })
}

fn check_enum(version: &str, name: &str, schema: &Value) {
    let Some(values) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    for v in values {
        let v = v.as_str().unwrap();
        let k = known(name, v).unwrap_or_else(|| panic!("{version}: no type for enum {name}"));
        assert!(k, "{version}: {name} value {v:?} is not a known variant");
    }
}

/// Definitions with no wire type of their own, and why.
const NOT_TYPED: &[(&str, &str)] = &[(
    "EnrollmentGroupQueryResponse",
    "TypeSpec's envelope of the query answer; the wire answer is the bare array",
)];

#[test]
fn every_definition_of_every_version_is_modelled() {
    let Some(root) = common::specs() else { return };
    let mut checked = 0;
    for side in ["stable", "preview"] {
        for v in std::fs::read_dir(root.join(side)).unwrap() {
            let file = v.unwrap().path().join("service.json");
            if !file.is_file() {
                continue;
            }
            let version = file
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            let spec: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let defs = spec["definitions"].as_object().unwrap();
            for (name, schema) in defs {
                check_enum(&version, name, schema);
                for (prop, p) in schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    check_enum(&version, prop, p);
                }
                if schema.get("properties").is_none() || NOT_TYPED.iter().any(|(n, _)| n == name) {
                    continue;
                }
                let body = sample(defs, schema, 0);
                let left = unmodelled(name, &body).unwrap_or_else(|| panic!("{version}: no type for {name}"));
                assert!(left.is_empty(), "{version}: {name} does not model {left:?}");
                checked += 1;
            }
        }
    }
    eprintln!("{checked} definitions checked");
    assert!(checked >= 120, "only {checked} definitions checked");
}
