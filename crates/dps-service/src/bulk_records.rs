//! The records the bulk API takes (individual enrollments and enrollment groups): their ids, the bulk call
//! of each, and the check a record passes before it is sent (keys and certificates must be base64).

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::Result;
use crate::bulk::BulkRecord;
use crate::client::ServiceClient;
use crate::models::{Attestation, BulkMode, BulkResult, EnrollmentGroup, IndividualEnrollment};

impl BulkRecord for IndividualEnrollment {
    fn id(&self) -> &str {
        &self.registration_id
    }
    fn check(&self) -> std::result::Result<(), String> {
        check_attestation(&self.attestation)
    }
    fn call(client: &ServiceClient, mode: BulkMode, items: &[Self]) -> Result<BulkResult> {
        client.bulk_enrollments(mode, items)
    }
}

impl BulkRecord for EnrollmentGroup {
    fn id(&self) -> &str {
        &self.enrollment_group_id
    }
    fn check(&self) -> std::result::Result<(), String> {
        check_attestation(&self.attestation)
    }
    fn call(client: &ServiceClient, mode: BulkMode, items: &[Self]) -> Result<BulkResult> {
        client.bulk_groups(mode, items)
    }
}

/// Keys, endorsement keys and certificates that are not base64 (a certificate may also be PEM).
fn check_attestation(a: &Attestation) -> std::result::Result<(), String> {
    let b64 = |what: &str, text: &str| {
        if text.trim().is_empty() {
            return Err(format!("{what} is empty"));
        }
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Zeroizing::new)
            .map(drop)
            .map_err(|e| format!("{what} is not base64 ({e}); not sent"))
    };
    // Every object present is checked, whatever `type` says: the service would read them too.
    if let Some(k) = &a.symmetric_key {
        for (slot, key) in [("primaryKey", &k.primary_key), ("secondaryKey", &k.secondary_key)] {
            if let Some(key) = key {
                b64(&format!("attestation.symmetricKey.{slot}"), key)?;
            }
        }
    }
    if let Some(t) = &a.tpm {
        b64("attestation.tpm.endorsementKey", &t.endorsement_key)?;
        if let Some(srk) = &t.storage_root_key {
            b64("attestation.tpm.storageRootKey", srk)?;
        }
    }
    if let Some(x) = &a.x509 {
        {
            for (set, certs) in [
                ("clientCertificates", &x.client_certificates),
                ("signingCertificates", &x.signing_certificates),
            ] {
                let Some(certs) = certs else { continue };
                for (slot, c) in [("primary", &certs.primary), ("secondary", &certs.secondary)] {
                    match c.as_ref().and_then(|c| c.certificate.as_deref()) {
                        Some(pem) if pem.contains("-----BEGIN") => {}
                        Some(text) => b64(&format!("attestation.x509.{set}.{slot}.certificate"), text)?,
                        None => {}
                    }
                }
            }
        }
    }
    Ok(())
}
