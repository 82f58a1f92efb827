//! Enrollment records of the service API (DPS `2021-10-01` JSON): checking and completing what a client sends,
//! turning a stored record into the [`Enrollment`] devices are checked against, and turning the configuration
//! file's enrollments into records (the seed).

use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use serde_json::{Map, Value, json};

use crate::config::Enrollment;
use crate::store::Kind;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Fields the service sets; what a client sends for them is ignored.
const READ_ONLY: &[&str] = &[
    "registrationState",
    "createdDateTimeUtc",
    "lastUpdatedDateTimeUtc",
    "etag",
];

pub(crate) fn id_field(kind: Kind) -> &'static str {
    match kind {
        Kind::Enrollment => "registrationId",
        Kind::Group => "enrollmentGroupId",
    }
}

/// A registration id as DPS allows it: 1 to 128 of `a-z A-Z 0-9 - . _ :`, ending in a letter, digit or `-`.
pub(crate) fn check_id(kind: Kind, id: &str) -> Result<(), String> {
    let what = id_field(kind);
    if id.is_empty() || id.len() > 128 {
        return Err(format!("{what} must be 1 to 128 characters, found {}", id.len()));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':')))
    {
        return Err(format!(
            "{what} '{id}' contains {c:?}: only letters, digits, '-', '.', '_' and ':' are allowed"
        ));
    }
    if id.ends_with(['.', '_', ':']) {
        return Err(format!("{what} '{id}' must end with a letter, a digit or '-'"));
    }
    Ok(())
}

/// Check a record a client sent for `id` (`None`: take the id from the body, as bulk does) and complete it:
/// read-only fields replaced, `provisioningStatus` defaulted, symmetric keys generated when absent,
/// certificate info filled in, a new etag and timestamps (`created` kept from `previous`).
pub(crate) fn prepare(
    kind: Kind,
    path_id: Option<&str>,
    body: &Value,
    previous: Option<&Value>,
) -> Result<Value, String> {
    let Some(object) = body.as_object() else {
        return Err("the enrollment must be a JSON object".into());
    };
    let field = id_field(kind);
    let id = match (object.get(field), path_id) {
        (Some(Value::String(b)), Some(p)) if b != p => {
            return Err(format!("{field} '{b}' in the body does not match '{p}' in the path"));
        }
        (Some(Value::String(b)), _) => b.clone(),
        (None, Some(p)) => p.to_string(),
        (Some(_), _) => return Err(format!("{field} must be a string")),
        (None, None) => return Err(format!("{field} is missing")),
    };
    check_id(kind, &id)?;
    let mut record: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| !READ_ONLY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    record.insert(field.into(), Value::String(id.clone()));
    match record.get("provisioningStatus") {
        None | Some(Value::Null) => {
            record.insert("provisioningStatus".into(), json!("enabled"));
        }
        Some(Value::String(s)) if s == "enabled" || s == "disabled" => {}
        Some(other) => {
            return Err(format!(
                "provisioningStatus must be \"enabled\" or \"disabled\", found {other}"
            ));
        }
    }
    let attestation = record
        .get_mut("attestation")
        .ok_or_else(|| "attestation is missing".to_string())?;
    complete_attestation(kind, attestation)?;
    let now = crate::service::now_rfc3339();
    let created = previous
        .and_then(|p| p.get("createdDateTimeUtc"))
        .cloned()
        .unwrap_or_else(|| Value::String(now.clone()));
    record.insert("createdDateTimeUtc".into(), created);
    record.insert("lastUpdatedDateTimeUtc".into(), Value::String(now));
    record.insert("etag".into(), Value::String(new_etag()?));
    let record = Value::Object(record);
    // Everything a device will be checked against must convert now, not at its first registration.
    to_enrollment(kind, &record)?;
    Ok(record)
}

/// A fresh etag (a quoted random UUID).
pub(crate) fn new_etag() -> Result<String, String> {
    crate::service::random_uuid()
        .map(|u| format!("\"{u}\""))
        .ok_or_else(|| "the system random generator failed".to_string())
}

/// Whether an `If-Match` value (or a bulk record's etag) matches a stored etag: `*`, or equal with or
/// without the quotes.
pub(crate) fn etag_matches(wanted: &str, stored: Option<&str>) -> bool {
    let Some(stored) = stored else { return false };
    let bare = |s: &str| s.trim().trim_matches('"').to_string();
    wanted.trim() == "*" || bare(wanted) == bare(stored)
}

fn complete_attestation(kind: Kind, attestation: &mut Value) -> Result<(), String> {
    let Some(a) = attestation.as_object_mut() else {
        return Err("attestation must be an object".into());
    };
    let kind_name = a.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    match kind_name.as_str() {
        "tpm" => {
            if kind == Kind::Group {
                return Err(
                    "enrollment groups cannot use TPM attestation (DPS allows it for individual enrollments only)"
                        .into(),
                );
            }
            let ek = a
                .get("tpm")
                .and_then(|t| t.get("endorsementKey"))
                .and_then(Value::as_str)
                .ok_or_else(|| "attestation.tpm.endorsementKey is missing".to_string())?;
            crate::tpm::decode_key("attestation.tpm.endorsementKey", ek)?;
        }
        "x509" => {
            let x509 = a
                .get_mut("x509")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| "attestation.x509 is missing".to_string())?;
            if x509.get("caReferences").is_some_and(|v| !v.is_null()) {
                return Err(
                    "attestation.x509.caReferences is not supported by the emulator (it keeps no verified \
                            CA certificates): send signingCertificates"
                        .into(),
                );
            }
            let (wanted, other) = match kind {
                Kind::Enrollment => ("clientCertificates", "signingCertificates"),
                Kind::Group => ("signingCertificates", "clientCertificates"),
            };
            if x509.get(other).is_some_and(|v| !v.is_null()) {
                return Err(format!(
                    "attestation.x509.{other} is not for this enrollment type: send {wanted}"
                ));
            }
            let certs = x509
                .get_mut(wanted)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| format!("attestation.x509.{wanted} is missing"))?;
            for slot in ["primary", "secondary"] {
                let Some(entry) = certs.get_mut(slot).filter(|v| !v.is_null()) else {
                    if slot == "primary" {
                        return Err(format!("attestation.x509.{wanted}.primary is missing"));
                    }
                    continue;
                };
                let what = format!("attestation.x509.{wanted}.{slot}.certificate");
                let text = entry
                    .get("certificate")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{what} is missing"))?;
                let chain = parse_certificates(&what, text)?;
                let info = chain
                    .first()
                    .map(|c| certificate_info(&what, c))
                    .transpose()?
                    .unwrap_or(Value::Null);
                if let Some(e) = entry.as_object_mut() {
                    e.insert("info".into(), info);
                }
            }
        }
        "symmetricKey" => {
            let keys = a.entry("symmetricKey").or_insert_with(|| json!({}));
            if keys.is_null() {
                *keys = json!({});
            }
            let keys = keys
                .as_object_mut()
                .ok_or_else(|| "attestation.symmetricKey must be an object".to_string())?;
            for slot in ["primaryKey", "secondaryKey"] {
                match keys.get(slot) {
                    None | Some(Value::Null) => {
                        keys.insert(slot.into(), Value::String(random_key()?));
                    }
                    Some(Value::String(k)) => {
                        hsm_core::sas::decode_key(slot, k)
                            .map_err(|e| format!("attestation.symmetricKey.{slot}: {e}"))?;
                    }
                    Some(_) => return Err(format!("attestation.symmetricKey.{slot} must be a string")),
                }
            }
        }
        "" => return Err("attestation.type is missing".into()),
        other => {
            return Err(format!(
                "attestation.type {other:?} is not supported (expected tpm, x509 or symmetricKey)"
            ));
        }
    }
    Ok(())
}

/// A 64-byte random key, base64 (what DPS generates when a symmetric-key enrollment names none).
fn random_key() -> Result<String, String> {
    use ring::rand::SecureRandom as _;
    let mut key = zeroize::Zeroizing::new([0u8; 64]);
    ring::rand::SystemRandom::new()
        .fill(key.as_mut())
        .map_err(|_| "the system random generator failed".to_string())?;
    Ok(B64.encode(key.as_ref()))
}

/// PEM (one or more certificates), the base64 of PEM, or the base64 of one DER certificate (the service
/// SDKs send each of these).
fn parse_certificates(what: &str, text: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = |bytes: &[u8]| hsm_core::pem::parse_certificates(what, bytes).map_err(|e| e.to_string());
    let chain = if text.contains("-----BEGIN") {
        pem(text.as_bytes())?
    } else {
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| format!("{what} is neither PEM nor base64 DER: {e}"))?;
        if bytes.starts_with(b"-----BEGIN") {
            pem(&bytes)?
        } else {
            vec![CertificateDer::from(bytes)]
        }
    };
    if chain.is_empty() {
        return Err(format!("{what} holds no certificate"));
    }
    for c in &chain {
        x509_parser::parse_x509_certificate(c).map_err(|e| format!("{what} is not an X.509 certificate: {e}"))?;
    }
    Ok(chain)
}

fn certificate_info(what: &str, der: &CertificateDer<'_>) -> Result<Value, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("{what} is not an X.509 certificate: {e}"))?;
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02X}")).collect::<String>();
    let time =
        |t: x509_parser::time::ASN1Time| crate::service::rfc3339_from_unix(u64::try_from(t.timestamp()).unwrap_or(0));
    Ok(json!({
        "subjectName": cert.subject().to_string(),
        "sha1Thumbprint": hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref()),
        "sha256Thumbprint": hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref()),
        "issuerName": cert.issuer().to_string(),
        "notBeforeUtc": time(cert.validity().not_before),
        "notAfterUtc": time(cert.validity().not_after),
        "serialNumber": hex(cert.raw_serial()),
        "version": cert.version().0 + 1,
    }))
}

/// Whether a stored record has `provisioningStatus: disabled`.
pub(crate) fn is_disabled(record: &Value) -> bool {
    record.get("provisioningStatus").and_then(Value::as_str) == Some("disabled")
}

/// The enrollment devices are checked against, from a stored (or prepared) record.
pub(crate) fn to_enrollment(kind: Kind, record: &Value) -> Result<Enrollment, String> {
    let field = id_field(kind);
    let id = record
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{field} is missing"))?
        .to_string();
    let a = &record["attestation"];
    let chain = |wanted: &str| -> Result<Vec<CertificateDer<'static>>, String> {
        let mut all = Vec::new();
        for slot in ["primary", "secondary"] {
            if let Some(text) = a["x509"][wanted][slot]["certificate"].as_str() {
                all.extend(parse_certificates(&format!("attestation.x509.{wanted}.{slot}"), text)?);
            }
        }
        Ok(all)
    };
    let keys = || -> (String, Option<String>) {
        let k = &a["symmetricKey"];
        (
            k["primaryKey"].as_str().unwrap_or_default().to_string(),
            k["secondaryKey"].as_str().map(str::to_string),
        )
    };
    Ok(match (kind, a["type"].as_str().unwrap_or_default()) {
        (Kind::Enrollment, "tpm") => Enrollment::TpmIndividual {
            registration_id: id,
            endorsement_key: a["tpm"]["endorsementKey"].as_str().unwrap_or_default().to_string(),
        },
        (Kind::Enrollment, "x509") => Enrollment::X509Individual {
            registration_id: id,
            certificate: chain("clientCertificates")?,
        },
        (Kind::Group, "x509") => Enrollment::X509Group {
            name: id,
            ca: chain("signingCertificates")?,
        },
        (Kind::Enrollment, "symmetricKey") => {
            let (primary_key, secondary_key) = keys();
            Enrollment::SymmetricIndividual {
                registration_id: id,
                primary_key,
                secondary_key,
            }
        }
        (Kind::Group, "symmetricKey") => {
            let (primary_key, secondary_key) = keys();
            Enrollment::SymmetricGroup {
                name: id,
                primary_key,
                secondary_key,
            }
        }
        (_, other) => {
            return Err(format!(
                "attestation type {other:?} cannot be used for a {field} record"
            ));
        }
    })
}

/// A digest of a seed record (from [`from_enrollment`]; serde_json objects serialise in key order), to
/// notice a configuration file enrollment that changed since it was copied into the store.
pub(crate) fn seed_digest(body: &Value) -> String {
    ring::digest::digest(&ring::digest::SHA256, body.to_string().as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The record a configuration file enrollment becomes in the store (before [`prepare`]).
pub(crate) fn from_enrollment(e: &Enrollment) -> (Kind, String, Value) {
    let pem = hsm_core::pem::certificates_to_pem;
    match e {
        Enrollment::X509Individual {
            registration_id,
            certificate,
        } => (
            Kind::Enrollment,
            registration_id.clone(),
            json!({"registrationId": registration_id, "attestation": {"type": "x509",
                "x509": {"clientCertificates": {"primary": {"certificate": pem(certificate)}}}}}),
        ),
        Enrollment::X509Group { name, ca } => (
            Kind::Group,
            name.clone(),
            json!({"enrollmentGroupId": name, "attestation": {"type": "x509",
                "x509": {"signingCertificates": {"primary": {"certificate": pem(ca)}}}}}),
        ),
        Enrollment::SymmetricIndividual {
            registration_id,
            primary_key,
            secondary_key,
        } => (
            Kind::Enrollment,
            registration_id.clone(),
            json!({"registrationId": registration_id, "attestation": {"type": "symmetricKey",
                "symmetricKey": {"primaryKey": primary_key, "secondaryKey": secondary_key}}}),
        ),
        Enrollment::SymmetricGroup {
            name,
            primary_key,
            secondary_key,
        } => (
            Kind::Group,
            name.clone(),
            json!({"enrollmentGroupId": name, "attestation": {"type": "symmetricKey",
                "symmetricKey": {"primaryKey": primary_key, "secondaryKey": secondary_key}}}),
        ),
        Enrollment::TpmIndividual {
            registration_id,
            endorsement_key,
        } => (
            Kind::Enrollment,
            registration_id.clone(),
            json!({"registrationId": registration_id, "attestation": {"type": "tpm",
                "tpm": {"endorsementKey": endorsement_key}}}),
        ),
    }
}
