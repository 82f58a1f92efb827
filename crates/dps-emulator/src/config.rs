//! The emulator's configuration: the id scope, the hub devices are assigned to, and the enrollments.

use std::fmt;
use std::path::Path;

use rustls_pki_types::CertificateDer;
use toml::{Table, Value};

use crate::Error;

/// The hub reported to devices when the configuration names none.
pub const DEFAULT_ASSIGNED_HUB: &str = "emulated-hub.azure-devices.net";

/// What the emulator serves: one id scope, one hub, the enrollments devices are checked against.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The id scope devices must name (others get 404).
    pub id_scope: String,
    /// The hub host name every assignment reports.
    pub assigned_hub: String,
    /// The enrollments devices are checked against.
    pub enrollments: Vec<Enrollment>,
}

/// One enrollment, as a DPS instance holds them.
#[derive(Clone)]
pub enum Enrollment {
    /// Individual x509: the device's leaf certificate (PEM, DER stored) or the CA that issued it; the presented
    /// chain must verify to it, or the presented leaf must equal it.
    X509Individual {
        /// The registration id (the leaf's common name).
        registration_id: String,
        /// The enrolled certificates (DER): the leaf itself or its issuing CA.
        certificate: Vec<CertificateDer<'static>>,
    },
    /// Group x509: any device whose presented chain verifies to `ca`, with leaf CN == registration id.
    X509Group {
        /// The enrollment group's name.
        name: String,
        /// The group's CA certificates (DER).
        ca: Vec<CertificateDer<'static>>,
    },
    /// Individual symmetric key: the SAS token is signed with the primary or secondary key (base64).
    SymmetricIndividual {
        /// The registration id.
        registration_id: String,
        /// The primary key (base64).
        primary_key: String,
        /// The secondary key (base64), also accepted.
        secondary_key: Option<String>,
    },
    /// Group symmetric key: the SAS token is signed with HMAC-SHA256(group key, registration id).
    SymmetricGroup {
        /// The enrollment group's name.
        name: String,
        /// The group's primary key (base64): device keys are derived from it.
        primary_key: String,
        /// The group's secondary key (base64), also accepted.
        secondary_key: Option<String>,
    },
    /// Individual TPM: the device's EK (base64 `TPM2B_PUBLIC`, as `hsmctl tpm ek` prints it); the device
    /// proves it holds the EK by activating the key the emulator sends (see `tpm.rs`).
    TpmIndividual {
        /// The registration id.
        registration_id: String,
        /// The EK, base64 `TPM2B_PUBLIC`.
        endorsement_key: String,
    },
}

impl fmt::Debug for Enrollment {
    // Keys are secrets: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Enrollment::X509Individual {
                registration_id,
                certificate,
            } => f
                .debug_struct("X509Individual")
                .field("registration_id", registration_id)
                .field("certificates", &certificate.len())
                .finish(),
            Enrollment::X509Group { name, ca } => f
                .debug_struct("X509Group")
                .field("name", name)
                .field("ca_certificates", &ca.len())
                .finish(),
            Enrollment::SymmetricIndividual {
                registration_id,
                secondary_key,
                ..
            } => f
                .debug_struct("SymmetricIndividual")
                .field("registration_id", registration_id)
                .field("primary_key", &"<redacted>")
                .field("secondary_key", &secondary_key.as_ref().map(|_| "<redacted>"))
                .finish(),
            Enrollment::SymmetricGroup {
                name, secondary_key, ..
            } => f
                .debug_struct("SymmetricGroup")
                .field("name", name)
                .field("primary_key", &"<redacted>")
                .field("secondary_key", &secondary_key.as_ref().map(|_| "<redacted>"))
                .finish(),
            Enrollment::TpmIndividual { registration_id, .. } => f
                .debug_struct("TpmIndividual")
                .field("registration_id", registration_id)
                .finish_non_exhaustive(),
        }
    }
}

impl Enrollment {
    /// How the enrollment is named in messages: `x509-group 'name'`, `symmetric-individual 'reg'`, ...
    pub fn describe(&self) -> String {
        match self {
            Enrollment::X509Individual { registration_id, .. } => format!("x509-individual '{registration_id}'"),
            Enrollment::X509Group { name, .. } => format!("x509-group '{name}'"),
            Enrollment::SymmetricIndividual { registration_id, .. } => {
                format!("symmetric-individual '{registration_id}'")
            }
            Enrollment::SymmetricGroup { name, .. } => format!("symmetric-group '{name}'"),
            Enrollment::TpmIndividual { registration_id, .. } => format!("tpm-individual '{registration_id}'"),
        }
    }
}

const TOP_KEYS: &[&str] = &["id_scope", "assigned_hub", "enrollment", "state_dir", "service_policy"];

impl EmulatorConfig {
    /// Read a TOML configuration file; certificate paths in it are relative to the file's directory.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let op = "reading the emulator configuration";
        let text = hsm_core::fs::read_bounded_string(op, path, hsm_core::fs::CONFIG_MAX).map_err(|e| match e {
            io @ hsm_core::Error::Io { .. } => Error::Core(io),
            other => Error::Core(hsm_core::Error::Io {
                op,
                path: path.to_path_buf(),
                source: std::io::Error::other(other.to_string()),
            }),
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        parse(&text, base, &path.display().to_string())
    }

    /// Parse a TOML configuration; certificate paths are relative to `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Self, Error> {
        parse(text, base_dir, "(TOML text)")
    }
}

fn parse(text: &str, base_dir: &Path, source: &str) -> Result<EmulatorConfig, Error> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        // Issue 21 (item 6): the parser's message quotes the line, a key included.
        let e = hsm_core::redact::toml_error(text, &e);
        Error::config(source, "(document)", format!("not valid TOML: {e}"))
    })?;
    for key in table.keys() {
        if !TOP_KEYS.contains(&key.as_str()) {
            return Err(Error::config(
                source,
                key,
                format!("unknown key (expected one of: {})", TOP_KEYS.join(", ")),
            ));
        }
    }
    let id_scope = required_str(&table, source, "", "id_scope")?;
    if id_scope.contains('/') || id_scope.chars().any(char::is_whitespace) {
        return Err(Error::config(
            source,
            "id_scope",
            format!("{id_scope:?} must not contain '/' or spaces"),
        ));
    }
    let assigned_hub = match optional_str(&table, source, "", "assigned_hub")? {
        Some(hub) => hub,
        None => DEFAULT_ASSIGNED_HUB.to_string(),
    };
    let mut enrollments = Vec::new();
    match table.get("enrollment") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let prefix = format!("enrollment[{i}]");
                let Value::Table(t) = item else {
                    return Err(Error::config(
                        source,
                        prefix,
                        "expected a table ([[enrollment]] section)",
                    ));
                };
                enrollments.push(parse_enrollment(t, base_dir, source, &prefix)?);
            }
        }
        Some(other) => {
            return Err(Error::config(
                source,
                "enrollment",
                format!("expected [[enrollment]] sections, found a {}", other.type_str()),
            ));
        }
    }
    let config = EmulatorConfig {
        id_scope,
        assigned_hub,
        enrollments,
    };
    config.validate(source)?;
    Ok(config)
}

fn parse_enrollment(t: &Table, base_dir: &Path, source: &str, prefix: &str) -> Result<Enrollment, Error> {
    let kind = required_str(t, source, prefix, "type")?;
    let allowed: &[&str] = match kind.as_str() {
        "x509-individual" => &["type", "registration_id", "certificate"],
        "x509-group" => &["type", "name", "ca"],
        "symmetric-individual" => &["type", "registration_id", "primary_key", "secondary_key"],
        "symmetric-group" => &["type", "name", "primary_key", "secondary_key"],
        "tpm-individual" => &["type", "registration_id", "endorsement_key"],
        other => {
            return Err(Error::config(
                source,
                format!("{prefix}.type"),
                format!(
                    "unknown enrollment type {other:?} (expected x509-individual, x509-group, \
                     symmetric-individual, symmetric-group or tpm-individual)"
                ),
            ));
        }
    };
    for key in t.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(Error::config(
                source,
                format!("{prefix}.{key}"),
                format!(
                    "unknown key for a {kind} enrollment (expected one of: {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    let certs = |key: &str| -> Result<Vec<CertificateDer<'static>>, Error> {
        let rel = required_str(t, source, prefix, key)?;
        let path = base_dir.join(&rel);
        let pem = hsm_core::pem::read_file("read certificates", &path)
            .map_err(|e| Error::config(source, format!("{prefix}.{key}"), format!("cannot read {rel:?}: {e}")))?;
        hsm_core::pem::parse_certificates(&rel, &pem)
            .map_err(|e| Error::config(source, format!("{prefix}.{key}"), e.to_string()))
    };
    let key = |name: &str, required: bool| -> Result<Option<String>, Error> {
        let value = if required {
            Some(required_str(t, source, prefix, name)?)
        } else {
            optional_str(t, source, prefix, name)?
        };
        if let Some(v) = &value {
            hsm_core::sas::decode_key(name, v)
                .map_err(|e| Error::config(source, format!("{prefix}.{name}"), e.to_string()))?;
        }
        Ok(value)
    };
    Ok(match kind.as_str() {
        "x509-individual" => Enrollment::X509Individual {
            registration_id: required_str(t, source, prefix, "registration_id")?,
            certificate: certs("certificate")?,
        },
        "x509-group" => Enrollment::X509Group {
            name: required_str(t, source, prefix, "name")?,
            ca: certs("ca")?,
        },
        "symmetric-individual" => Enrollment::SymmetricIndividual {
            registration_id: required_str(t, source, prefix, "registration_id")?,
            primary_key: key("primary_key", true)?.unwrap_or_default(),
            secondary_key: key("secondary_key", false)?,
        },
        "tpm-individual" => Enrollment::TpmIndividual {
            registration_id: required_str(t, source, prefix, "registration_id")?,
            endorsement_key: required_str(t, source, prefix, "endorsement_key")?,
        },
        _ => Enrollment::SymmetricGroup {
            name: required_str(t, source, prefix, "name")?,
            primary_key: key("primary_key", true)?.unwrap_or_default(),
            secondary_key: key("secondary_key", false)?,
        },
    })
}

fn full_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn optional_str(t: &Table, source: &str, prefix: &str, key: &str) -> Result<Option<String>, Error> {
    match t.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(Error::config(source, full_key(prefix, key), "must not be empty"))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::config(
            source,
            full_key(prefix, key),
            format!("expected a string, found a {}", other.type_str()),
        )),
    }
}

fn required_str(t: &Table, source: &str, prefix: &str, key: &str) -> Result<String, Error> {
    optional_str(t, source, prefix, key)?
        .ok_or_else(|| Error::config(source, full_key(prefix, key), "missing (required)"))
}

impl EmulatorConfig {
    /// Checks that hold for a configuration from a file and one built in code alike.
    pub(crate) fn validate(&self, source: &str) -> Result<(), Error> {
        if self.id_scope.is_empty() {
            return Err(Error::config(source, "id_scope", "must not be empty"));
        }
        if self.assigned_hub.is_empty() {
            return Err(Error::config(source, "assigned_hub", "must not be empty"));
        }
        let mut seen: Vec<(u8, &str)> = Vec::new();
        for (i, e) in self.enrollments.iter().enumerate() {
            let prefix = format!("enrollment[{i}]");
            let (class, id, id_key) = match e {
                Enrollment::X509Individual {
                    registration_id,
                    certificate,
                } => {
                    if certificate.is_empty() {
                        return Err(Error::config(source, format!("{prefix}.certificate"), "no certificate"));
                    }
                    (0, registration_id, "registration_id")
                }
                Enrollment::X509Group { name, ca } => {
                    if ca.is_empty() {
                        return Err(Error::config(source, format!("{prefix}.ca"), "no CA certificate"));
                    }
                    (1, name, "name")
                }
                Enrollment::SymmetricIndividual { registration_id, .. } => (2, registration_id, "registration_id"),
                Enrollment::SymmetricGroup { name, .. } => (3, name, "name"),
                Enrollment::TpmIndividual {
                    registration_id,
                    endorsement_key,
                } => {
                    decode_tpm_public("endorsement key", endorsement_key)
                        .map_err(|m| Error::config(source, format!("{prefix}.endorsement_key"), m))?;
                    (4, registration_id, "registration_id")
                }
            };
            if id.is_empty() {
                return Err(Error::config(source, format!("{prefix}.{id_key}"), "must not be empty"));
            }
            if seen.contains(&(class, id.as_str())) {
                return Err(Error::config(
                    source,
                    format!("{prefix}.{id_key}"),
                    format!("a second {} enrollment", e.describe()),
                ));
            }
            seen.push((class, id.as_str()));
        }
        Ok(())
    }
}

/// The service API settings of a configuration file: `state_dir` (relative to the file's directory) and
/// `[[service_policy]]` sections (`name`, `primary_key` base64, `rights` from EnrollmentRead, EnrollmentWrite,
/// RegistrationStatusRead, RegistrationStatusWrite).
#[derive(Debug, Clone, Default)]
pub struct ServiceSettings {
    /// Where enrollments and registrations are kept across restarts; `None`: in memory only.
    pub state_dir: Option<std::path::PathBuf>,
    /// The shared access policies the service API accepts.
    pub policies: Vec<crate::ServicePolicy>,
}

impl ServiceSettings {
    /// The settings of the configuration file `path` (`state_dir` relative to its directory).
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let op = "reading the emulator configuration";
        let text = hsm_core::fs::read_bounded_string(op, path, hsm_core::fs::CONFIG_MAX)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::from_toml(&text, base, &path.display().to_string())
    }

    /// Parse the settings from TOML text; `state_dir` is relative to `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path, source: &str) -> Result<Self, Error> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            // Issue 21 (item 6): the parser's message quotes the line, a key included.
            let e = hsm_core::redact::toml_error(text, &e);
            Error::config(source, "(document)", format!("not valid TOML: {e}"))
        })?;
        let state_dir = optional_str(&table, source, "", "state_dir")?.map(|d| base_dir.join(d));
        let mut policies: Vec<crate::ServicePolicy> = Vec::new();
        let items = match table.get("service_policy") {
            None => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(other) => {
                return Err(Error::config(
                    source,
                    "service_policy",
                    format!("expected [[service_policy]] sections, found a {}", other.type_str()),
                ));
            }
        };
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("service_policy[{i}]");
            let Value::Table(t) = item else {
                return Err(Error::config(
                    source,
                    prefix,
                    "expected a table ([[service_policy]] section)",
                ));
            };
            for key in t.keys() {
                if !["name", "primary_key", "rights"].contains(&key.as_str()) {
                    return Err(Error::config(
                        source,
                        format!("{prefix}.{key}"),
                        "unknown key (expected one of: name, primary_key, rights)",
                    ));
                }
            }
            let name = required_str(t, source, &prefix, "name")?;
            if policies.iter().any(|p| p.name == name) {
                return Err(Error::config(
                    source,
                    format!("{prefix}.name"),
                    format!("a second policy '{name}'"),
                ));
            }
            let key = required_str(t, source, &prefix, "primary_key")?;
            hsm_core::sas::decode_key("primary_key", &key)
                .map_err(|e| Error::config(source, format!("{prefix}.primary_key"), e.to_string()))?;
            let rights_key = format!("{prefix}.rights");
            let Some(Value::Array(names)) = t.get("rights") else {
                return Err(Error::config(
                    source,
                    rights_key,
                    "missing (required): an array of right names",
                ));
            };
            let mut rights = Vec::new();
            for n in names {
                let right = n.as_str().and_then(crate::ServiceRight::from_name).ok_or_else(|| {
                    Error::config(
                        source,
                        rights_key.clone(),
                        format!(
                            "{n} is not a right (expected EnrollmentRead, EnrollmentWrite, RegistrationStatusRead \
                             or RegistrationStatusWrite)"
                        ),
                    )
                })?;
                rights.push(right);
            }
            policies.push(crate::ServicePolicy {
                name,
                key: zeroize::Zeroizing::new(key),
                rights,
            });
        }
        Ok(ServiceSettings { state_dir, policies })
    }
}

/// Decode and check a base64 `TPM2B_PUBLIC` of an RSA-2048 storage key (an EK or an SRK): the configuration,
/// the service API and TPM registrations all read endorsement keys this way.
pub(crate) fn decode_tpm_public(what: &str, b64: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("{what} is not base64: {e}"))?;
    hsm_tpm::service::RsaStorageKey::parse(what, &bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}
