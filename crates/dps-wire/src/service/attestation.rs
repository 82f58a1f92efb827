//! `AttestationMechanism` and what it holds: a TPM's keys, x509 certificates or CA references,
//! symmetric keys.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

wire_enum! {
    /// `type` of an attestation mechanism.
    AttestationType {
        None = "none",
        Tpm = "tpm",
        X509 = "x509",
        SymmetricKey = "symmetricKey",
    }
}

/// `AttestationMechanism`: how a device proves its identity. `type` says which of `tpm`, `x509`,
/// `symmetricKey` counts; the others are kept as they came (the service's examples send all of
/// them beside `"type": "none"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// Which mechanism (`tpm`, `x509`, `symmetricKey`, `none`).
    #[serde(rename = "type")]
    pub kind: AttestationType,
    /// TPM attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmAttestation>,
    /// X.509 attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509: Option<X509Attestation>,
    /// Symmetric key attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symmetric_key: Option<SymmetricKeyAttestation>,
    /// Fields this version does not model, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An attestation whose `type` lacks the object it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// The `type` names an object (`tpm`, `x509`, `symmetricKey`) the attestation lacks.
    #[error("attestation type {0:?} needs its `{0}` object")]
    Missing(&'static str),
}

impl Attestation {
    fn of(kind: AttestationType) -> Self {
        Attestation {
            kind,
            tpm: None,
            x509: None,
            symmetric_key: None,
            extra: Map::new(),
        }
    }

    /// `{"type": "tpm", "tpm": ...}`.
    pub fn tpm(tpm: TpmAttestation) -> Self {
        Attestation {
            tpm: Some(tpm),
            ..Self::of(AttestationType::Tpm)
        }
    }

    /// `{"type": "x509", "x509": ...}`.
    pub fn x509(x509: X509Attestation) -> Self {
        Attestation {
            x509: Some(x509),
            ..Self::of(AttestationType::X509)
        }
    }

    /// `{"type": "symmetricKey", "symmetricKey": ...}` (empty keys: the service generates them).
    pub fn symmetric_key(keys: SymmetricKeyAttestation) -> Self {
        Attestation {
            symmetric_key: Some(keys),
            ..Self::of(AttestationType::SymmetricKey)
        }
    }

    /// `{"type": "none"}`.
    pub fn none() -> Self {
        Self::of(AttestationType::None)
    }

    /// The `type` as sent.
    pub fn kind_str(&self) -> &str {
        self.kind.as_str()
    }

    /// A `tpm` or `x509` attestation carries its object (the service generates symmetric keys, so
    /// `symmetricKey` may be absent; an unknown type is the service's to judge).
    pub fn check(&self) -> Result<(), AttestationError> {
        match self.kind {
            AttestationType::Tpm if self.tpm.is_none() => Err(AttestationError::Missing("tpm")),
            AttestationType::X509 if self.x509.is_none() => Err(AttestationError::Missing("x509")),
            _ => Ok(()),
        }
    }
}

/// `TpmAttestation`: the EK (and optionally the SRK), base64 `TPM2B_PUBLIC`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TpmAttestation {
    /// Base64 `TPM2B_PUBLIC` of the TPM's endorsement key.
    pub endorsement_key: String,
    /// Base64 `TPM2B_PUBLIC` of the TPM's storage root key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_root_key: Option<String>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TpmAttestation {
    /// A TPM attestation of the base64 endorsement key and, optionally, storage root key.
    pub fn new(endorsement_key: impl Into<String>, storage_root_key: Option<String>) -> Self {
        TpmAttestation {
            endorsement_key: endorsement_key.into(),
            storage_root_key,
            extra: Map::new(),
        }
    }
}

/// `SymmetricKeyAttestation`: base64 keys; the service generates them when both are absent.
/// Secrets: zeroized on drop, never in `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymmetricKeyAttestation {
    /// The primary key, base64 (the service makes one when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Zeroizing<String>>,
    /// The secondary key, base64 (the service makes one when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_key: Option<Zeroizing<String>>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SymmetricKeyAttestation {
    /// A symmetric key attestation with these base64 keys; `None` lets the service make one.
    pub fn new(primary_key: Option<Zeroizing<String>>, secondary_key: Option<Zeroizing<String>>) -> Self {
        SymmetricKeyAttestation {
            primary_key,
            secondary_key,
            extra: Map::new(),
        }
    }
}

impl fmt::Debug for SymmetricKeyAttestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |k: &Option<Zeroizing<String>>| k.as_ref().map(|_| "<redacted>");
        f.debug_struct("SymmetricKeyAttestation")
            .field("primary_key", &shown(&self.primary_key))
            .field("secondary_key", &shown(&self.secondary_key))
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `X509Attestation`: a device's own certificates (individual), the signing CA certificates
/// (group), or references to CAs uploaded to the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Attestation {
    /// The device's own certificates (individual enrollments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificates: Option<X509Certificates>,
    /// The CA or intermediate certificates that sign the devices' certificates (groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificates: Option<X509Certificates>,
    /// Names of CA certificates registered with the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_references: Option<X509CaReferences>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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

/// `X509Certificates`: a primary and a secondary certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Certificates {
    /// The primary one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<X509CertificateWithInfo>,
    /// The secondary one (for rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<X509CertificateWithInfo>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl X509Certificates {
    /// Only a primary certificate (PEM).
    pub fn primary(pem: impl Into<String>) -> Self {
        X509Certificates {
            primary: Some(X509CertificateWithInfo {
                certificate: Some(pem.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// `X509CertificateWithInfo`: `certificate` is the PEM (the API's "PEM-formatted certificate
/// string"; base64 DER is also taken by DPS); `info` is what the service read from it (answers only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509CertificateWithInfo {
    /// The certificate: base64 DER or PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// What the service read from the certificate (subject, issuer, validity, thumbprints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<X509CertificateInfo>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `X509CertificateInfo`: what the service read from a certificate. The specification marks every
/// field required; they are optional here so a sparse answer still reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509CertificateInfo {
    /// The subject's distinguished name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_name: Option<String>,
    /// The certificate's SHA-1 thumbprint (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1_thumbprint: Option<String>,
    /// The certificate's SHA-256 thumbprint (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_thumbprint: Option<String>,
    /// The issuer's distinguished name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_name: Option<String>,
    /// Start of validity (ISO 8601, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_utc: Option<String>,
    /// End of validity (ISO 8601, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after_utc: Option<String>,
    /// The certificate's serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// The version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `X509CAReferences`: names of CA certificates uploaded to the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509CaReferences {
    /// The primary one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// The secondary one (for rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<String>,
    /// Fields this version does not model, kept as they came and sent back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
