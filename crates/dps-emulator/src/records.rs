//! Enrollment records of the service API (DPS `2021-10-01` JSON): checking and completing what a client sends,
//! turning a stored record into the [`Enrollment`] devices are checked against, and turning the configuration
//! file's enrollments into records (the seed).
//! The key and certificate material a record is completed with is in `record_material.rs`.

use dps_wire::service::{
    Attestation, AttestationType, EnrollmentCommon, EnrollmentGroup, IndividualEnrollment, ProvisioningStatus,
    SymmetricKeyAttestation, TpmAttestation, X509Attestation, X509Certificates,
};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use serde_json::Value;

use crate::config::Enrollment;
use crate::record_material::{certificate_info, parse_certificates, random_key};

/// Which collection a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `/enrollments/{registrationId}`
    Enrollment,
    /// `/enrollmentGroups/{enrollmentGroupId}`
    Group,
}

impl Kind {
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Kind::Enrollment => "enrollment",
            Kind::Group => "group",
        }
    }
}

/// A stored record of the service API: an individual enrollment or an enrollment group, as the wire types
/// read it (every field the emulator does not model is kept in their `extra`, so a PUT then GET returns it).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum Record {
    Enrollment(Box<IndividualEnrollment>),
    Group(Box<EnrollmentGroup>),
}

impl Record {
    /// Read a record of `kind` from its JSON.
    pub(crate) fn from_value(kind: Kind, value: Value) -> Result<Record, serde_json::Error> {
        Ok(match kind {
            Kind::Enrollment => Record::Enrollment(Box::new(serde_json::from_value(value)?)),
            Kind::Group => Record::Group(Box::new(serde_json::from_value(value)?)),
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Record::Enrollment(_) => Kind::Enrollment,
            Record::Group(_) => Kind::Group,
        }
    }

    /// `registrationId` or `enrollmentGroupId`.
    pub(crate) fn id(&self) -> &str {
        match self {
            Record::Enrollment(e) => &e.registration_id,
            Record::Group(g) => &g.enrollment_group_id,
        }
    }

    pub(crate) fn attestation(&self) -> &Attestation {
        match self {
            Record::Enrollment(e) => &e.attestation,
            Record::Group(g) => &g.attestation,
        }
    }

    fn attestation_mut(&mut self) -> &mut Attestation {
        match self {
            Record::Enrollment(e) => &mut e.attestation,
            Record::Group(g) => &mut g.attestation,
        }
    }

    pub(crate) fn common(&self) -> &EnrollmentCommon {
        match self {
            Record::Enrollment(e) => &e.common,
            Record::Group(g) => &g.common,
        }
    }

    fn common_mut(&mut self) -> &mut EnrollmentCommon {
        match self {
            Record::Enrollment(e) => &mut e.common,
            Record::Group(g) => &mut g.common,
        }
    }

    /// The stored etag.
    pub(crate) fn etag(&self) -> Option<&str> {
        self.common().etag.as_deref()
    }
}

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

/// A wire type's refusal, in the words of the emulator's other messages (`missing field `x`` becomes
/// `x is missing`).
pub(crate) fn wire_error(what: &str, e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
    {
        Some((field, _)) => format!("{field} is missing ({what}: {text})"),
        None => format!("{what} is not valid: {text}"),
    }
}

/// Check a record a client sent for `id` (`None`: take the id from the body, as bulk does) and complete it:
/// read-only fields replaced, `provisioningStatus` defaulted, symmetric keys generated when absent,
/// certificate info filled in, a new etag and timestamps (`created` kept from `previous`).
pub(crate) fn prepare(
    kind: Kind,
    path_id: Option<&str>,
    body: Value,
    previous: Option<&Record>,
) -> Result<Record, String> {
    let Value::Object(mut object) = body else {
        return Err("the enrollment must be a JSON object".into());
    };
    let field = id_field(kind);
    match (object.get(field), path_id) {
        (Some(Value::String(b)), Some(p)) if b != p => {
            return Err(format!("{field} '{b}' in the body does not match '{p}' in the path"));
        }
        (Some(Value::String(_)), _) => {}
        // A PUT may leave the id to the path.
        (None, Some(p)) => {
            object.insert(field.into(), Value::String(p.to_string()));
        }
        (Some(_), _) => return Err(format!("{field} must be a string")),
        (None, None) => return Err(format!("{field} is missing")),
    }
    let what = match kind {
        Kind::Enrollment => "the individual enrollment",
        Kind::Group => "the enrollment group",
    };
    let record = Record::from_value(kind, Value::Object(object)).map_err(|e| wire_error(what, &e))?;
    complete(record, previous)
}

/// Check and complete a record (as [`prepare`] does after reading it): the configuration file's
/// enrollments come here directly.
pub(crate) fn complete(mut record: Record, previous: Option<&Record>) -> Result<Record, String> {
    let kind = record.kind();
    check_id(kind, record.id())?;
    if let Record::Enrollment(e) = &mut record {
        // Read-only: the service's own registration state is joined in at a GET.
        e.registration_state = None;
    }
    let common = record.common_mut();
    match &common.provisioning_status {
        None => common.provisioning_status = Some(ProvisioningStatus::Enabled),
        Some(ProvisioningStatus::Enabled | ProvisioningStatus::Disabled) => {}
        Some(ProvisioningStatus::Other(other)) => {
            return Err(format!(
                "provisioningStatus must be \"enabled\" or \"disabled\", found \"{other}\""
            ));
        }
    }
    complete_attestation(kind, record.attestation_mut())?;
    let now = crate::ids_and_times::now_rfc3339();
    let created = previous
        .and_then(|p| p.common().created_date_time_utc.clone())
        .unwrap_or_else(|| now.clone());
    let etag = new_etag()?;
    let common = record.common_mut();
    common.created_date_time_utc = Some(created);
    common.last_updated_date_time_utc = Some(now);
    common.etag = Some(etag);
    // Everything a device will be checked against must convert now, not at its first registration.
    to_enrollment(&record)?;
    Ok(record)
}

/// A fresh etag (a quoted random UUID).
pub(crate) fn new_etag() -> Result<String, String> {
    crate::ids_and_times::random_uuid()
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

fn complete_attestation(kind: Kind, a: &mut Attestation) -> Result<(), String> {
    match &a.kind {
        AttestationType::Tpm => {
            if kind == Kind::Group {
                return Err(
                    "enrollment groups cannot use TPM attestation (DPS allows it for individual enrollments only)"
                        .into(),
                );
            }
            let ek = a
                .tpm
                .as_ref()
                .map(|t| t.endorsement_key.as_str())
                .ok_or_else(|| "attestation.tpm.endorsementKey is missing".to_string())?;
            crate::config::decode_tpm_public("attestation.tpm.endorsementKey", ek)?;
        }
        AttestationType::X509 => {
            let x509 = a
                .x509
                .as_mut()
                .ok_or_else(|| "attestation.x509 is missing".to_string())?;
            if x509.ca_references.is_some() {
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
            let (certs, other_certs) = match kind {
                Kind::Enrollment => (&mut x509.client_certificates, &x509.signing_certificates),
                Kind::Group => (&mut x509.signing_certificates, &x509.client_certificates),
            };
            if other_certs.is_some() {
                return Err(format!(
                    "attestation.x509.{other} is not for this enrollment type: send {wanted}"
                ));
            }
            let certs = certs
                .as_mut()
                .ok_or_else(|| format!("attestation.x509.{wanted} is missing"))?;
            if certs.primary.is_none() {
                return Err(format!("attestation.x509.{wanted}.primary is missing"));
            }
            for (slot, entry) in [("primary", &mut certs.primary), ("secondary", &mut certs.secondary)] {
                let Some(entry) = entry else { continue };
                let what = format!("attestation.x509.{wanted}.{slot}.certificate");
                let text = entry
                    .certificate
                    .as_deref()
                    .ok_or_else(|| format!("{what} is missing"))?;
                let chain = parse_certificates(&what, text)?;
                entry.info = chain.first().map(|c| certificate_info(&what, c)).transpose()?;
            }
        }
        AttestationType::SymmetricKey => {
            let keys = a.symmetric_key.get_or_insert_with(SymmetricKeyAttestation::default);
            for (slot, key) in [
                ("primaryKey", &mut keys.primary_key),
                ("secondaryKey", &mut keys.secondary_key),
            ] {
                match key {
                    None => *key = Some(zeroize::Zeroizing::new(random_key()?)),
                    Some(k) => {
                        hsm_core::sas::decode_key(slot, k)
                            .map_err(|e| format!("attestation.symmetricKey.{slot}: {e}"))?;
                    }
                }
            }
        }
        other => {
            return Err(format!(
                "attestation.type {:?} is not supported (expected tpm, x509 or symmetricKey)",
                other.as_str()
            ));
        }
    }
    Ok(())
}

/// Whether a stored record has `provisioningStatus: disabled`.
pub(crate) fn is_disabled(record: &Record) -> bool {
    record.common().provisioning_status == Some(ProvisioningStatus::Disabled)
}

/// The enrollment devices are checked against, from a stored (or prepared) record.
pub(crate) fn to_enrollment(record: &Record) -> Result<Enrollment, String> {
    let kind = record.kind();
    let id = record.id().to_string();
    let a = record.attestation();
    let chain = |wanted: &str, certs: Option<&X509Certificates>| -> Result<Vec<CertificateDer<'static>>, String> {
        let mut all = Vec::new();
        for (slot, entry) in [
            ("primary", certs.and_then(|c| c.primary.as_ref())),
            ("secondary", certs.and_then(|c| c.secondary.as_ref())),
        ] {
            if let Some(text) = entry.and_then(|e| e.certificate.as_deref()) {
                all.extend(parse_certificates(&format!("attestation.x509.{wanted}.{slot}"), text)?);
            }
        }
        Ok(all)
    };
    let x509 = a.x509.as_ref();
    let keys = || -> (String, Option<String>) {
        let k = a.symmetric_key.as_ref();
        (
            k.and_then(|k| k.primary_key.as_deref()).cloned().unwrap_or_default(),
            k.and_then(|k| k.secondary_key.as_deref()).cloned(),
        )
    };
    Ok(match (kind, &a.kind) {
        (Kind::Enrollment, AttestationType::Tpm) => Enrollment::TpmIndividual {
            registration_id: id,
            endorsement_key: a.tpm.as_ref().map(|t| t.endorsement_key.clone()).unwrap_or_default(),
        },
        (Kind::Enrollment, AttestationType::X509) => Enrollment::X509Individual {
            registration_id: id,
            certificate: chain("clientCertificates", x509.and_then(|x| x.client_certificates.as_ref()))?,
        },
        (Kind::Group, AttestationType::X509) => Enrollment::X509Group {
            name: id,
            ca: chain(
                "signingCertificates",
                x509.and_then(|x| x.signing_certificates.as_ref()),
            )?,
        },
        (Kind::Enrollment, AttestationType::SymmetricKey) => {
            let (primary_key, secondary_key) = keys();
            Enrollment::SymmetricIndividual {
                registration_id: id,
                primary_key,
                secondary_key,
            }
        }
        (Kind::Group, AttestationType::SymmetricKey) => {
            let (primary_key, secondary_key) = keys();
            Enrollment::SymmetricGroup {
                name: id,
                primary_key,
                secondary_key,
            }
        }
        (_, other) => {
            return Err(format!(
                "attestation type {:?} cannot be used for a {} record",
                other.as_str(),
                id_field(kind)
            ));
        }
    })
}

/// A digest of a seed record (from [`from_enrollment`]; serde_json objects serialise in key order), to
/// notice a configuration file enrollment that changed since it was copied into the store.
///
/// The text digested is the one earlier versions digested (they wrote an absent secondary key as
/// `"secondaryKey": null`), so a store they seeded is not seeded again over changes made through the API.
pub(crate) fn seed_digest(record: &Record) -> String {
    let mut record = record.clone();
    if let Some(keys) = record.attestation_mut().symmetric_key.as_mut() {
        if keys.secondary_key.is_none() {
            keys.extra.insert("secondaryKey".into(), Value::Null);
        }
    }
    let text = serde_json::to_value(&record).map(|v| v.to_string()).unwrap_or_default();
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The record a configuration file enrollment becomes in the store (before [`prepare`]).
pub(crate) fn from_enrollment(e: &Enrollment) -> Record {
    let pem = hsm_core::pem::certificates_to_pem;
    let keys = |primary: &str, secondary: &Option<String>| {
        Attestation::symmetric_key(SymmetricKeyAttestation::new(
            Some(zeroize::Zeroizing::new(primary.to_string())),
            secondary.clone().map(zeroize::Zeroizing::new),
        ))
    };
    let individual = |id: &str, a: Attestation| Record::Enrollment(Box::new(IndividualEnrollment::new(id, a)));
    let group = |id: &str, a: Attestation| Record::Group(Box::new(EnrollmentGroup::new(id, a)));
    match e {
        Enrollment::X509Individual {
            registration_id,
            certificate,
        } => individual(
            registration_id,
            Attestation::x509(X509Attestation::client_certificate(pem(certificate))),
        ),
        Enrollment::X509Group { name, ca } => {
            group(name, Attestation::x509(X509Attestation::signing_certificate(pem(ca))))
        }
        Enrollment::SymmetricIndividual {
            registration_id,
            primary_key,
            secondary_key,
        } => individual(registration_id, keys(primary_key, secondary_key)),
        Enrollment::SymmetricGroup {
            name,
            primary_key,
            secondary_key,
        } => group(name, keys(primary_key, secondary_key)),
        Enrollment::TpmIndividual {
            registration_id,
            endorsement_key,
        } => individual(
            registration_id,
            Attestation::tpm(TpmAttestation::new(endorsement_key.clone(), None)),
        ),
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
