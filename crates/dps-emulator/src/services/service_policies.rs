//! Service SAS authentication of the service API, as DPS does it: shared access policies (name, key, rights)
//! and `Authorization: SharedAccessSignature sr={url-encoded host}&sig=...&se={expiry}&skn={policy}`, where
//! `sig` is the base64 HMAC-SHA256, under the policy's (base64-decoded) key, of `sr + "\n" + se`.
//!
//! A missing, malformed, unknown-policy, wrong-host, expired or badly signed token is 401; a valid token of a
//! policy without the right the operation needs is 403.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hsm_core::sas::{SasToken, url_decode};
use zeroize::Zeroizing;

/// A right of a shared access policy (the DPS names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceRight {
    /// Read and query individual enrollments and enrollment groups (and their attestation mechanisms).
    EnrollmentRead,
    /// Create, replace and delete enrollments (and run bulk operations).
    EnrollmentWrite,
    /// Read registration states.
    RegistrationStatusRead,
    /// Delete registration states.
    RegistrationStatusWrite,
}

impl ServiceRight {
    /// Every right.
    pub const ALL: [ServiceRight; 4] = [
        ServiceRight::EnrollmentRead,
        ServiceRight::EnrollmentWrite,
        ServiceRight::RegistrationStatusRead,
        ServiceRight::RegistrationStatusWrite,
    ];

    /// The DPS name of the right, as a configuration's `rights` spells it.
    pub fn name(self) -> &'static str {
        match self {
            ServiceRight::EnrollmentRead => "EnrollmentRead",
            ServiceRight::EnrollmentWrite => "EnrollmentWrite",
            ServiceRight::RegistrationStatusRead => "RegistrationStatusRead",
            ServiceRight::RegistrationStatusWrite => "RegistrationStatusWrite",
        }
    }

    /// The right named `name` (the exact DPS spelling); `None` for another name.
    pub fn from_name(name: &str) -> Option<ServiceRight> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// A shared access policy of the service API: its name (`skn`), its key (base64) and its rights.
#[derive(Clone)]
pub struct ServicePolicy {
    /// The policy name (`SharedAccessKeyName`, `skn` in the token).
    pub name: String,
    /// The key (base64; a secret, never printed).
    pub key: Zeroizing<String>,
    /// What tokens signed with it may do.
    pub rights: Vec<ServiceRight>,
}

impl fmt::Debug for ServicePolicy {
    // The key is a secret: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServicePolicy")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .field("rights", &self.rights)
            .finish()
    }
}

impl ServicePolicy {
    /// A policy with every right.
    pub fn owner(name: impl Into<String>, key_b64: impl Into<String>) -> ServicePolicy {
        ServicePolicy {
            name: name.into(),
            key: Zeroizing::new(key_b64.into()),
            rights: ServiceRight::ALL.to_vec(),
        }
    }

    /// `HostName={host};SharedAccessKeyName={name};SharedAccessKey={key}`.
    pub fn connection_string(&self, host: &str) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "HostName={host};SharedAccessKeyName={};SharedAccessKey={}",
            self.name,
            self.key.as_str()
        ))
    }
}

/// Why a service request was refused: 401 or 403 with a message naming the check.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) status: u16,
    pub(crate) message: String,
}

fn unauthorized(message: impl Into<String>) -> Refused {
    Refused {
        status: 401,
        message: message.into(),
    }
}

/// Check the Authorization header of a service request against the policies: the token must be for `host`
/// (the request's Host header, with or without its port), unexpired, signed with the key of the policy it
/// names, and that policy must hold `needed`.
pub(crate) fn check(
    policies: &[ServicePolicy],
    authorization: Option<&str>,
    host: Option<&str>,
    needed: ServiceRight,
) -> Result<(), Refused> {
    let header = authorization.ok_or_else(|| unauthorized("no Authorization header: send a service SAS token"))?;
    let token = SasToken::parse(header).map_err(|e| unauthorized(format!("malformed SAS token: {e}")))?;
    let skn = token
        .key_name
        .as_deref()
        .ok_or_else(|| unauthorized("SAS token has no key name (skn): name a shared access policy"))?;
    let policy = policies
        .iter()
        .find(|p| p.name == skn)
        .ok_or_else(|| unauthorized(format!("no shared access policy named '{skn}'")))?;
    let resource = url_decode(&token.resource)
        .map_err(|e| unauthorized(format!("SAS token resource (sr) is not valid URL encoding: {e}")))?;
    if let Some(host) = host {
        let bare = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !resource.eq_ignore_ascii_case(host) && !resource.eq_ignore_ascii_case(bare) {
            return Err(unauthorized(format!(
                "SAS token resource (sr) '{resource}' is not this service's host '{host}'"
            )));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if token.expiry <= now {
        return Err(unauthorized(format!(
            "SAS token expired at {} (se={}, now {now})",
            crate::ids_and_times::rfc3339_from_unix(token.expiry),
            token.expiry
        )));
    }
    let key = hsm_core::sas::decode_key("policy key", &policy.key)
        .map_err(|e| unauthorized(format!("the key of policy '{skn}' is unusable: {e}")))?;
    if !token.verify(&key) {
        return Err(unauthorized(format!(
            "SAS signature does not match the key of shared access policy '{skn}'"
        )));
    }
    if !policy.rights.contains(&needed) {
        return Err(Refused {
            status: 403,
            message: format!(
                "shared access policy '{skn}' lacks the right {} this operation needs",
                needed.name()
            ),
        });
    }
    Ok(())
}
