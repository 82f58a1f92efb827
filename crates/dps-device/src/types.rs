//! The crate's plain types, which every other module may use and which use none above them: how the
//! device attests ([`Attestation`]), the client's [`Options`], what a registration sends
//! ([`Registration`]) and gets ([`Assignment`]), a service answer whatever the transport (`Reply`),
//! the HTTP CONNECT proxy (`Proxy`), and the limits they share.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dps_wire::ApiVersion;
use dps_wire::device::{AssignedDeviceSubstatus, DeviceRegistrationResult, EnrollmentStatus};
use hsm_core::{SymmetricIdentity, TpmIdentity, X509Identity};
use serde_json::Value;
use tlsio_bridge::TlsVersions;

use crate::error::Error;

/// Largest response body (HTTPS) or message payload (MQTT) accepted from the service: DPS messages
/// may be up to 96 KB, so a little above that.
pub const MAX_BODY: usize = 128 * 1024;
/// Poll delay when the service sends no Retry-After (before the floor and ceiling apply).
pub(crate) const DEFAULT_RETRY: Duration = Duration::from_secs(2);

/// A TPM identity shared with the blocking pool (TPM commands run there).
pub type SharedTpm = Arc<Mutex<Box<dyn TpmIdentity>>>;

/// How the device proves its identity.
#[derive(Clone)]
pub enum Attestation {
    /// TLS client certificate chain; the registration id is the leaf's common name.
    X509(Arc<dyn X509Identity>),
    /// A SAS token signed with the identity's HMAC (the key itself is never read).
    SymmetricKey(Arc<dyn SymmetricIdentity>),
    /// TPM: endorsement and storage root keys, activation of the key the service sends, SAS signed in
    /// the TPM, and the hub key imported at assignment. Over HTTPS (a 401 challenge) and AMQP (the SASL
    /// `TPM` mechanism).
    Tpm(SharedTpm),
}

impl Attestation {
    /// x509 from what `hsm::open_x509` returns (a `Box<dyn X509Identity>`) or an `Arc` of one.
    pub fn x509(identity: impl Into<Arc<dyn X509Identity>>) -> Self {
        Attestation::X509(identity.into())
    }

    /// A symmetric key from what `hsm::open_symmetric` returns (a `Box`) or an `Arc` of one.
    pub fn symmetric_key(identity: impl Into<Arc<dyn SymmetricIdentity>>) -> Self {
        Attestation::SymmetricKey(identity.into())
    }

    /// TPM attestation from what `hsm::open_tpm_attestation` returns.
    pub fn tpm(identity: Box<dyn TpmIdentity>) -> Self {
        Attestation::Tpm(Arc::new(Mutex::new(identity)))
    }
}

impl fmt::Debug for Attestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Attestation::X509(_) => "Attestation::X509",
            Attestation::SymmetricKey(_) => "Attestation::SymmetricKey",
            Attestation::Tpm(_) => "Attestation::Tpm",
        })
    }
}

/// Behaviour knobs; `Options::default()` suits devices.
#[derive(Debug, Clone)]
pub struct Options {
    /// One deadline for the whole registration: connection, challenge, every poll.
    pub timeout: Duration,
    /// Shortest wait between polls, whatever Retry-After says (tests lower it).
    pub retry_floor: Duration,
    /// Longest wait between polls.
    pub retry_ceiling: Duration,
    /// Lifetime of the SAS tokens this client signs.
    pub sas_ttl: Duration,
    /// An absolute SAS expiry (seconds since the epoch) instead of `now + sas_ttl`.
    pub sas_expiry: Option<u64>,
    /// The `User-Agent` (HTTPS) and `ClientVersion` (MQTT username) sent to the service.
    pub user_agent: String,
    /// The TLS versions offered (1.2 and 1.3 by default).
    pub tls_versions: TlsVersions,
    /// An HTTP proxy, `http://[user:password@]host[:port]` (credentials percent-encoded; port 80 by
    /// default), reached with `CONNECT`. HTTPS and MQTT over WebSockets only, as in the C SDK.
    pub proxy: Option<url::Url>,
    /// The DPS device `api-version` (query parameter over HTTPS, in the username over MQTT). `None`:
    /// [`ApiVersion::DEVICE`] (`2021-10-01`, stable), or [`ApiVersion::DEVICE_CSR`] (`2026-04-01`, the
    /// first stable with `csr`) for a registration with a CSR. A version set here is used as it is;
    /// a registration with a CSR refuses one that does not know `csr`.
    pub api_version: Option<ApiVersion>,
}

impl Options {
    /// The api-version of a request: the one set, else the default for it (see
    /// [`Options::api_version`]); with a CSR, an error for a version that does not know `csr`.
    pub fn api_version_for(&self, csr: bool) -> Result<ApiVersion, Error> {
        match (&self.api_version, csr) {
            (Some(v), true) if !v.knows_csr() => Err(Error::InvalidRequest(format!(
                "api-version {v} does not know csr (certificate issuance): use {} (the default for a \
                 registration with a CSR) or a later version",
                ApiVersion::DEVICE_CSR
            ))),
            (Some(v), _) => Ok(v.clone()),
            (None, true) => Ok(ApiVersion::DEVICE_CSR),
            (None, false) => Ok(ApiVersion::DEVICE),
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(90),
            retry_floor: Duration::from_secs(1),
            retry_ceiling: Duration::from_secs(60),
            sas_ttl: Duration::from_secs(3600),
            sas_expiry: None,
            user_agent: concat!("dps-device/", env!("CARGO_PKG_VERSION")).to_string(),
            tls_versions: TlsVersions::Both,
            proxy: None,
            api_version: None,
        }
    }
}

/// What a registration sends besides the attestation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registration {
    /// `None`: the id the attestation implies (x509: the leaf CN; symmetric key: the identity's id;
    /// TPM: derived from the endorsement key).
    pub registration_id: Option<String>,
    /// Data for a custom allocation policy: a JSON object.
    pub payload: Option<Value>,
    /// A DER PKCS#10 request (ECDSA P-384, CN = the registration id): DPS answers with an
    /// `issuedCertificateChain` (see [`crate::ProvisioningClient::register_with_csr`]).
    pub csr: Option<Vec<u8>>,
}

/// The device's assignment, as DPS reports it in `registrationState`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The registration id DPS registered (the one sent, or the one the attestation implies).
    pub registration_id: String,
    /// The IoT hub host name to connect to (`hub.azure-devices.net`).
    pub assigned_hub: String,
    /// The device id on that hub (often the registration id; an enrollment may set another).
    pub device_id: String,
    /// [`EnrollmentStatus::Assigned`] (an assignment is only made from an `assigned` answer; a
    /// `registrationState` without a status reads as assigned).
    pub status: EnrollmentStatus,
    /// How the device was assigned: first time, or moved to another hub with its data migrated or
    /// reset, or back to its first hub. A value this version does not know is
    /// [`AssignedDeviceSubstatus::Other`], as it came.
    pub substatus: Option<AssignedDeviceSubstatus>,
    /// The registration record's version.
    pub etag: Option<String>,
    /// The payload a custom allocation policy returned.
    pub payload: Option<Value>,
    /// When DPS first registered the device (ISO 8601, UTC, as the service wrote it).
    pub created_date_time_utc: Option<String>,
    /// When DPS last updated the registration (ISO 8601, UTC, as the service wrote it).
    pub last_updated_date_time_utc: Option<String>,
    /// `issuedCertificateChain` (DER, leaf first, ending with the root) when the registration sent a
    /// CSR: check it with [`crate::verify_issued_chain`] before using it.
    pub issued_certificate_chain: Option<Vec<Vec<u8>>>,
    /// The whole `registrationState`, typed (fields this version does not model are in `extra`).
    pub state: DeviceRegistrationResult,
}

/// A service answer, whatever the transport: status, body, Retry-After in seconds.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) retry_after: Option<u64>,
}

/// An HTTP CONNECT proxy, credentials decoded.
pub(crate) struct Proxy {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) credentials: Option<(String, String)>,
}
