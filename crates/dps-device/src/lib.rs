//! The device side of the Azure IoT Device Provisioning Service (DPS): register with a hardware-backed
//! identity and get the IoT hub assignment.
//!
//! Attestations: x509 (the TLS client identity from `tlsio-bridge`, every signature made by the backend
//! key), symmetric key (a SAS token signed by the identity's HMAC, so a key that never leaves a PKCS#11
//! token works), and TPM (activation challenge, SAS signed in the TPM; HTTPS only, as DPS requires).
//!
//! ```no_run
//! # async fn f(identity: std::sync::Arc<dyn hsm_core::X509Identity>, roots: rustls::RootCertStore) -> Result<(), dps_device::Error> {
//! use dps_device::{Attestation, ProvisioningClient, Transport};
//! let client = ProvisioningClient::builder("0ne00000000").transport(Transport::Https).trust_roots(roots).build()?;
//! let assignment = client.register(&Attestation::X509(identity), None).await?;
//! println!("{} on {}", assignment.device_id, assignment.assigned_hub);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod amqp;
mod answer;
pub mod blocking;
mod builder;
mod client;
mod error;
mod flow;
mod https;
mod hub_renewal;
mod issuance;
mod mqtt;
mod session;
mod transport;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hsm_core::{SymmetricIdentity, TpmIdentity, X509Identity};
use serde_json::Value;

pub use builder::{ClientBuilder, GLOBAL_ENDPOINT};
pub use client::ProvisioningClient;
pub use dps_wire::ApiVersion;
pub use dps_wire::device::DeviceRegistrationResult;
pub use error::{Error, ServiceError, Source};
pub use hub_renewal::{HUB_API_VERSION, RenewalOptions, renew_certificate};
pub use issuance::verify_issued_chain;
/// The rustls of this crate's signatures (`RootCertStore` for the trusted roots).
pub use rustls;
pub use tlsio_bridge::TlsVersions;
pub use transport::{Transport, UnknownTransport};

/// Largest response body (HTTPS) or message payload (MQTT) accepted from the service: DPS messages
/// may be up to 96 KB, so a little above that.
pub const MAX_BODY: usize = 128 * 1024;
/// Poll delay when the service sends no Retry-After (before the floor and ceiling apply).
const DEFAULT_RETRY: Duration = Duration::from_secs(2);

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
    /// the TPM, and the hub key imported at assignment. HTTPS only.
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
    pub user_agent: String,
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

/// What a registration sends besides the attestation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registration {
    /// `None`: the id the attestation implies (x509: the leaf CN; symmetric key: the identity's id;
    /// TPM: derived from the endorsement key).
    pub registration_id: Option<String>,
    /// Data for a custom allocation policy: a JSON object.
    pub payload: Option<Value>,
    /// A DER PKCS#10 request (ECDSA P-384, CN = the registration id): DPS answers with an
    /// `issuedCertificateChain` (see [`ProvisioningClient::register_with_csr`]).
    pub csr: Option<Vec<u8>>,
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

/// The device's assignment, as DPS reports it in `registrationState`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub registration_id: String,
    pub assigned_hub: String,
    pub device_id: String,
    /// `assigned`.
    pub status: String,
    /// `initialAssignment`, `deviceDataMigrated`, `deviceDataReset`, `reprovisionedToInitialAssignment`.
    pub substatus: Option<String>,
    pub etag: Option<String>,
    /// The payload a custom allocation policy returned.
    pub payload: Option<Value>,
    pub created_date_time_utc: Option<String>,
    pub last_updated_date_time_utc: Option<String>,
    /// `issuedCertificateChain` (DER, leaf first, ending with the root) when the registration sent a
    /// CSR: check it with [`verify_issued_chain`] before using it.
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

/// The readers of service answers, for the fuzz target (`fuzzing` feature; not a stable API).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::{Assignment, Error, Reply, Transport};
    use dps_wire::device::EnrollmentStatus;

    /// What the client reads from one answer (an HTTP response, or an MQTT response's status and
    /// payload), through the wire types: the assignment when it says `assigned`, nothing for other
    /// statuses, or the error.
    pub fn read_answer(t: Transport, status: u16, body: &[u8]) -> Result<Option<Assignment>, Error> {
        let reply = Reply {
            status,
            body: body.to_vec(),
            retry_after: None,
        };
        let answer = crate::answer::read_operation(t, &reply)?;
        match answer.status {
            Some(EnrollmentStatus::Assigned) => crate::answer::assignment(t, answer.registration_state).map(Some),
            _ => Ok(None),
        }
    }

    /// A response topic read: (status, rid, retry-after).
    pub type ResponseTopic = (u16, Option<u64>, Option<u64>);

    /// `$dps/registrations/res/{status}/?$rid={rid}&retry-after={s}`; None for another topic.
    pub fn read_response_topic(topic: &str) -> Option<Result<ResponseTopic, Error>> {
        crate::mqtt::parse_response_topic(topic, Transport::Mqtt)
    }

    /// A credentials response topic read: (status, rid, retry-after).
    pub type CredentialsTopic = (u16, Option<String>, Option<u64>);

    /// An IoT Hub `$iothub/credentials` answer: the certificates of a 200, the service error otherwise.
    pub fn read_credentials_answer(status: u16, body: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        crate::hub_renewal::read_answer(status, body)
    }

    /// `$iothub/credentials/res/{status}/?$rid={rid}...`: (status, rid, retry-after); None for another topic.
    pub fn read_credentials_topic(topic: &str) -> Option<Result<CredentialsTopic, Error>> {
        crate::hub_renewal::parse_response_topic(topic)
    }
}

/// An HTTP CONNECT proxy, credentials decoded.
pub(crate) struct Proxy {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) credentials: Option<(String, String)>,
}

/// The proxy URL without its password, for messages.
fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// Run a blocking device or network operation on tokio's blocking pool.
pub(crate) async fn blocking_task<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a blocking task failed: {e}")))?
}

async fn with_tpm<T: Send + 'static>(
    tpm: &SharedTpm,
    f: impl FnOnce(&mut dyn TpmIdentity) -> hsm_core::Result<T> + Send + 'static,
) -> Result<T, Error> {
    let tpm = tpm.clone();
    blocking_task(move || {
        let mut guard = tpm
            .lock()
            .map_err(|_| Error::Internal("the TPM lock is poisoned".into()))?;
        f(guard.as_mut()).map_err(Error::from)
    })
    .await
}
