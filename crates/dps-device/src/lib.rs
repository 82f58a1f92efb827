//! The device side of the Azure IoT Device Provisioning Service (DPS): register with a hardware-backed
//! identity and get the IoT hub assignment.
//!
//! Attestations: x509 (the TLS client identity from `tlsio-bridge`, every signature made by the backend
//! key), symmetric key (a SAS token signed by the identity's HMAC, so a key that never leaves a PKCS#11
//! token works), and TPM (activation challenge, SAS signed in the TPM; HTTPS only, as DPS requires).
//!
//! ```no_run
//! # async fn f(identity: std::sync::Arc<dyn hsm_core::X509Identity>, roots: rustls::RootCertStore) -> Result<(), dps_device::Error> {
//! use dps_device::{Attestation, Options, ProvisioningClient, Transport};
//! let client = ProvisioningClient::new("global.azure-devices-provisioning.net", "0ne00000000", Transport::Https, roots, Options::default());
//! let assignment = client.register(&Attestation::X509(identity), None).await?;
//! println!("{} on {}", assignment.device_id, assignment.assigned_hub);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod blocking;
mod credentials;
mod error;
mod https;
mod issuance;
mod mqtt;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hsm_core::sas::Audience;
use hsm_core::{SymmetricIdentity, TpmIdentity, X509Identity};
use serde_json::{Value, json};
use tokio::time::Instant;

pub use credentials::{HUB_API_VERSION, RenewalOptions, renew_certificate};
pub use error::{Error, ServiceError};
pub use issuance::verify_issued_chain;
pub use tlsio_bridge::TlsVersions;

/// The DPS device API version of the C SDK (`PROV_API_VERSION`).
pub const API_VERSION: &str = "2021-06-01";
/// The DPS device API version this client speaks by default: the first that knows `csr` and
/// `issuedCertificateChain` (certificate issuance at registration).
pub const DEFAULT_API_VERSION: &str = "2025-07-01-preview";
/// Largest response body (HTTPS) or message (MQTT) accepted from the service.
pub const MAX_BODY: usize = 64 * 1024;
/// Poll delay when the service sends no Retry-After (before the floor and ceiling apply).
const DEFAULT_RETRY: Duration = Duration::from_secs(2);

/// How the device talks to DPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// HTTPS, port 443 by default.
    Https,
    /// MQTT 3.1.1 over TLS, port 8883 by default. No TPM attestation (DPS accepts it over HTTPS only).
    Mqtt,
    /// MQTT 3.1.1 over WebSockets over TLS (path `/$iothub/websocket`, subprotocol `mqtt`), port 443 by
    /// default. No TPM attestation.
    MqttWs,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Https => "HTTPS",
            Transport::Mqtt => "MQTT",
            Transport::MqttWs => "MQTT over WebSockets",
        })
    }
}

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
    /// The DPS device `api-version` (query parameter over HTTPS, in the username over MQTT). Default
    /// [`DEFAULT_API_VERSION`]; a registration with a CSR needs `2025-07-01-preview` or later.
    pub api_version: String,
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
            api_version: DEFAULT_API_VERSION.to_string(),
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
    /// The whole `registrationState` object.
    pub raw: Value,
}

/// A service answer, whatever the transport: status, body, Retry-After in seconds.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) retry_after: Option<u64>,
}

/// A DPS client for one endpoint and id scope.
#[derive(Debug)]
pub struct ProvisioningClient {
    endpoint: String,
    id_scope: String,
    transport: Transport,
    roots: rustls::RootCertStore,
    options: Options,
}

/// One connection's worth of requests.
enum Session {
    Https(https::Https),
    Mqtt(Box<mqtt::Mqtt>),
}

impl Session {
    async fn register(&mut self, body: &Value, auth: Option<&str>, deadline: Instant) -> Result<Reply, Error> {
        match self {
            Session::Https(h) => h.register(body, auth, deadline).await,
            // MQTT authenticates once, at CONNECT.
            Session::Mqtt(m) => m.register(body).await,
        }
    }

    async fn operation(&mut self, operation_id: &str, auth: Option<&str>, deadline: Instant) -> Result<Reply, Error> {
        match self {
            Session::Https(h) => h.operation(operation_id, auth, deadline).await,
            Session::Mqtt(m) => m.operation(operation_id).await,
        }
    }
}

impl ProvisioningClient {
    /// `endpoint` is `host[:port]` (the global device endpoint); `roots` verify the service.
    pub fn new(
        endpoint: &str,
        id_scope: &str,
        transport: Transport,
        roots: rustls::RootCertStore,
        options: Options,
    ) -> Self {
        ProvisioningClient {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            id_scope: id_scope.to_string(),
            transport,
            roots,
            options,
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Register with the registration id the attestation implies (x509: the leaf CN; symmetric key: the
    /// identity's id; TPM: derived from the endorsement key) and wait for the assignment.
    pub async fn register(&self, attestation: &Attestation, payload: Option<Value>) -> Result<Assignment, Error> {
        self.register_as(attestation, None, payload).await
    }

    /// Like [`ProvisioningClient::register`], with an explicit registration id.
    pub async fn register_as(
        &self,
        attestation: &Attestation,
        registration_id: Option<&str>,
        payload: Option<Value>,
    ) -> Result<Assignment, Error> {
        self.register_inner(attestation, registration_id, payload, None).await
    }

    /// Register and ask DPS for an operational certificate: `csr` is a DER PKCS#10 request (EC P-384,
    /// CN = the registration id) sent as the body's `csr`; the assignment carries the
    /// `issuedCertificateChain` (an assignment without one is an error). Needs an
    /// [`Options::api_version`] of `2025-07-01-preview` or later. The chain is not checked here: call
    /// [`verify_issued_chain`] before storing or using it.
    pub async fn register_with_csr(
        &self,
        attestation: &Attestation,
        registration_id: Option<&str>,
        payload: Option<Value>,
        csr: &[u8],
    ) -> Result<Assignment, Error> {
        if csr.is_empty() {
            return Err(Error::InvalidRequest("the CSR is empty".into()));
        }
        if !issuance::api_version_knows_csr(&self.options.api_version) {
            return Err(Error::InvalidRequest(format!(
                "api-version {:?} does not know csr: use {DEFAULT_API_VERSION} or later",
                self.options.api_version
            )));
        }
        let assignment = self
            .register_inner(attestation, registration_id, payload, Some(csr))
            .await?;
        if assignment.issued_certificate_chain.is_none() {
            return Err(protocol(
                self.transport,
                "the service assigned the device without an issuedCertificateChain for the CSR",
            ));
        }
        Ok(assignment)
    }

    async fn register_inner(
        &self,
        attestation: &Attestation,
        registration_id: Option<&str>,
        payload: Option<Value>,
        csr: Option<&[u8]>,
    ) -> Result<Assignment, Error> {
        if let Some(p) = &payload {
            if !p.is_object() {
                return Err(Error::InvalidRequest("the payload must be a JSON object".into()));
            }
        }
        if let (Attestation::Tpm(_), Transport::Mqtt | Transport::MqttWs) = (attestation, self.transport) {
            return Err(Error::InvalidRequest(format!(
                "TPM attestation is not supported over {}: DPS accepts it over HTTPS only",
                self.transport
            )));
        }
        let proxy = self.proxy()?;
        let started = Instant::now();
        let deadline = started + self.options.timeout;
        // What the last answer said, for the timeout message when a request is cut short.
        let progress = Mutex::new(String::new());
        // The optional fields of the register body.
        let mut extra = serde_json::Map::new();
        if let Some(p) = payload {
            extra.insert("payload".into(), p);
        }
        if let Some(csr) = csr {
            extra.insert("csr".into(), Value::String(B64.encode(csr)));
        }
        let run = self.run(attestation, registration_id, extra, proxy.as_ref(), deadline, &progress);
        match tokio::time::timeout_at(deadline, run).await {
            Ok(result) => result,
            Err(_) => {
                let last = progress.lock().map(|p| p.clone()).unwrap_or_default();
                Err(Error::Timeout {
                    after: started.elapsed(),
                    detail: match last.is_empty() {
                        true => format!("the service did not answer over {} in time", self.transport),
                        false => format!("{last}; the next answer did not come in time"),
                    },
                })
            }
        }
    }

    async fn run(
        &self,
        attestation: &Attestation,
        registration_id: Option<&str>,
        extra: serde_json::Map<String, Value>,
        proxy: Option<&Proxy>,
        deadline: Instant,
        progress: &Mutex<String>,
    ) -> Result<Assignment, Error> {
        let registration_id = match registration_id {
            Some(r) => r.to_string(),
            None => self.registration_id(attestation).await?,
        };
        if registration_id.is_empty() || registration_id.chars().any(char::is_control) {
            return Err(Error::InvalidRequest(format!(
                "registration id {registration_id:?} is empty or has control characters"
            )));
        }
        let mut body = json!({ "registrationId": registration_id });
        if let Some(object) = body.as_object_mut() {
            object.extend(extra);
        }
        let identity = match attestation {
            Attestation::X509(x) => Some(x.clone()),
            _ => None,
        };
        let (roots, versions) = (self.roots.clone(), self.options.tls_versions);
        let tls = blocking_task(move || {
            tlsio_bridge::client_config(roots, identity.as_deref(), versions).map_err(Error::from)
        })
        .await?;
        let tls = Arc::new(tls);
        let token = match attestation {
            Attestation::SymmetricKey(identity) => Some(self.sas_token(&registration_id, identity.clone()).await?),
            _ => None,
        };
        let mut session = match self.transport {
            Transport::Https => Session::Https(https::Https::new(
                &self.endpoint,
                &self.id_scope,
                &registration_id,
                tls,
                &self.options.user_agent,
                proxy,
                &self.options.api_version,
            )?),
            Transport::Mqtt | Transport::MqttWs => Session::Mqtt(Box::new(
                mqtt::Mqtt::connect(mqtt::Connect {
                    transport: self.transport,
                    proxy,
                    endpoint: &self.endpoint,
                    id_scope: &self.id_scope,
                    registration_id: &registration_id,
                    tls,
                    password: token.as_deref(),
                    user_agent: &self.options.user_agent,
                    api_version: &self.options.api_version,
                })
                .await?,
            )),
        };
        match attestation {
            Attestation::X509(_) | Attestation::SymmetricKey(_) => {
                let reply = session.register(&body, token.as_deref(), deadline).await?;
                self.poll(&mut session, reply, token.as_deref(), deadline, progress)
                    .await
            }
            Attestation::Tpm(tpm) => {
                self.register_tpm(&mut session, &registration_id, tpm, body, deadline, progress)
                    .await
            }
        }
    }

    /// The proxy of the options, checked before any connection.
    fn proxy(&self) -> Result<Option<Proxy>, Error> {
        let Some(url) = &self.options.proxy else {
            return Ok(None);
        };
        if self.transport == Transport::Mqtt {
            return Err(Error::InvalidRequest(format!(
                "a proxy is supported over HTTPS and MQTT over WebSockets, not over {}",
                self.transport
            )));
        }
        let bad = |why: &str| Error::InvalidRequest(format!("proxy {}: {why}", redacted(url)));
        if url.scheme() != "http" {
            return Err(bad("only http:// proxies are supported (CONNECT)"));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(bad("no host")),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("the credentials are not UTF-8 once decoded"))
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, password) => Some((decode(user)?, decode(password.unwrap_or_default())?)),
        };
        Ok(Some(Proxy {
            host,
            port: url.port_or_known_default().unwrap_or(80),
            credentials,
        }))
    }

    async fn registration_id(&self, attestation: &Attestation) -> Result<String, Error> {
        match attestation {
            Attestation::X509(x) => {
                let x = x.clone();
                blocking_task(move || x.common_name().map_err(Error::from)).await
            }
            Attestation::SymmetricKey(s) => {
                let s = s.clone();
                blocking_task(move || s.registration_id().map_err(Error::from)).await
            }
            Attestation::Tpm(tpm) => {
                let ek = with_tpm(tpm, |t| t.endorsement_key()).await?;
                Ok(hsm_tpm::registration_id(&ek))
            }
        }
    }

    fn sas_expiry(&self) -> u64 {
        self.options
            .sas_expiry
            .unwrap_or_else(|| hsm_core::sas::expiry_in(self.options.sas_ttl))
    }

    fn audience(&self, registration_id: &str) -> Audience {
        Audience::Dps {
            id_scope: self.id_scope.clone(),
            registration_id: registration_id.to_string(),
        }
    }

    async fn sas_token(&self, registration_id: &str, identity: Arc<dyn SymmetricIdentity>) -> Result<String, Error> {
        let (aud, expiry) = (self.audience(registration_id), self.sas_expiry());
        let to_sign = aud.string_to_sign(expiry);
        let mac = blocking_task(move || identity.hmac_sha256(to_sign.as_bytes()).map_err(Error::from)).await?;
        Ok(aud.token(&mac, expiry))
    }

    /// The SDK's TPM sequence: EK and SRK sent, the 401 challenge's key activated, the registration sent
    /// again with a SAS token signed inside the TPM, polled, and the hub key of the assignment activated.
    async fn register_tpm(
        &self,
        session: &mut Session,
        registration_id: &str,
        tpm: &SharedTpm,
        mut body: Value,
        deadline: Instant,
        progress: &Mutex<String>,
    ) -> Result<Assignment, Error> {
        let ek = with_tpm(tpm, |t| t.endorsement_key()).await?;
        let srk = with_tpm(tpm, |t| t.storage_root_key()).await?;
        body["tpm"] = json!({ "endorsementKey": B64.encode(ek), "storageRootKey": B64.encode(srk) });
        let challenge = session.register(&body, None, deadline).await?;
        if challenge.status != 401 {
            read_json(self.transport, &challenge)?;
            return Err(protocol(
                self.transport,
                "the service registered a TPM device without the activation challenge",
            ));
        }
        let key = serde_json::from_slice::<Value>(&challenge.body)
            .ok()
            .and_then(|v| v["authenticationKey"].as_str().map(str::to_string))
            .ok_or_else(|| service_error(self.transport, &challenge))?;
        let blob = B64
            .decode(key)
            .map_err(|e| protocol(self.transport, format!("authenticationKey is not base64: {e}")))?;
        with_tpm(tpm, move |t| t.activate_identity_key(&blob)).await?;
        let (aud, expiry) = (self.audience(registration_id), self.sas_expiry());
        let to_sign = aud.string_to_sign(expiry);
        let mac = with_tpm(tpm, move |t| t.sign_with_identity(to_sign.as_bytes())).await?;
        let token = aud.token(&mac, expiry);
        let reply = session.register(&body, Some(&token), deadline).await?;
        let assignment = self.poll(session, reply, Some(&token), deadline, progress).await?;
        if let Some(key) = assignment.raw["tpm"]["authenticationKey"].as_str() {
            let blob = B64.decode(key).map_err(|e| {
                protocol(
                    self.transport,
                    format!("the assigned authenticationKey is not base64: {e}"),
                )
            })?;
            with_tpm(tpm, move |t| t.activate_identity_key(&blob)).await?;
        }
        Ok(assignment)
    }

    async fn poll(
        &self,
        session: &mut Session,
        mut reply: Reply,
        auth: Option<&str>,
        deadline: Instant,
        progress: &Mutex<String>,
    ) -> Result<Assignment, Error> {
        let mut operation_id = String::new();
        loop {
            let value = read_json(self.transport, &reply)?;
            let status = value["status"].as_str().unwrap_or_default().to_string();
            match status.as_str() {
                "assigning" | "unassigned" => {}
                "assigned" => return assignment(self.transport, &value),
                "failed" | "disabled" => {
                    let state = &value["registrationState"];
                    return Err(Error::NotAssigned {
                        status,
                        error_code: state["errorCode"].as_i64(),
                        message: error::sanitize(state["errorMessage"].as_str().unwrap_or("(no message)")),
                    });
                }
                other => {
                    return Err(protocol(
                        self.transport,
                        format!("unexpected registration status {:?}", error::sanitize(other)),
                    ));
                }
            }
            if let Some(op) = value["operationId"].as_str() {
                operation_id = op.to_string();
            }
            if operation_id.is_empty() {
                return Err(protocol(
                    self.transport,
                    format!("no operationId in a {status:?} answer"),
                ));
            }
            let still = format!(
                "registration still {status:?} (operation {})",
                error::sanitize(&operation_id)
            );
            let wait = self.retry(reply.retry_after);
            let now = Instant::now();
            if now + wait >= deadline {
                return Err(Error::Timeout {
                    after: self
                        .options
                        .timeout
                        .saturating_sub(deadline.saturating_duration_since(now)),
                    detail: format!("{still}; the next poll in {}s would pass the deadline", wait.as_secs()),
                });
            }
            if let Ok(mut p) = progress.lock() {
                *p = still;
            }
            tokio::time::sleep(wait).await;
            reply = session.operation(&operation_id, auth, deadline).await?;
        }
    }

    fn retry(&self, retry_after: Option<u64>) -> Duration {
        let wanted = retry_after.map_or(DEFAULT_RETRY, Duration::from_secs);
        wanted.min(self.options.retry_ceiling).max(self.options.retry_floor)
    }
}

/// The JSON object of a 2xx answer, or the service's error.
fn read_json(t: Transport, reply: &Reply) -> Result<Value, Error> {
    if !(200..300).contains(&reply.status) {
        return Err(service_error(t, reply));
    }
    match serde_json::from_slice::<Value>(&reply.body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(protocol(
            t,
            format!(
                "the {} answer is not a JSON object: {:?}",
                reply.status,
                error::sanitize(&String::from_utf8_lossy(&reply.body))
            ),
        )),
    }
}

fn service_error(t: Transport, reply: &Reply) -> Error {
    let json = serde_json::from_slice::<Value>(&reply.body).unwrap_or(Value::Null);
    let message = match json["message"].as_str() {
        Some(m) => error::sanitize(m),
        None if reply.body.is_empty() => "(no message)".to_string(),
        None => error::sanitize(&String::from_utf8_lossy(&reply.body)),
    };
    Error::Service(ServiceError {
        transport: t,
        status: reply.status,
        error_code: json["errorCode"].as_i64(),
        tracking_id: json["trackingId"].as_str().map(error::sanitize),
        message,
    })
}

fn protocol(t: Transport, message: impl Into<String>) -> Error {
    Error::Protocol {
        transport: t,
        message: message.into(),
    }
}

fn assignment(t: Transport, value: &Value) -> Result<Assignment, Error> {
    let state = &value["registrationState"];
    if !state.is_object() {
        return Err(protocol(t, "an assigned answer without registrationState"));
    }
    let text = |k: &str| state[k].as_str().map(str::to_string);
    let required = |k: &str| text(k).ok_or_else(|| protocol(t, format!("registrationState has no {k}")));
    Ok(Assignment {
        registration_id: required("registrationId")?,
        assigned_hub: required("assignedHub")?,
        device_id: required("deviceId")?,
        status: text("status").unwrap_or_else(|| "assigned".to_string()),
        substatus: text("substatus"),
        etag: text("etag"),
        payload: state.get("payload").filter(|p| !p.is_null()).cloned(),
        created_date_time_utc: text("createdDateTimeUtc"),
        last_updated_date_time_utc: text("lastUpdatedDateTimeUtc"),
        issued_certificate_chain: issuance::read_chain(t, state.get("issuedCertificateChain"))?,
        raw: state.clone(),
    })
}

/// The readers of service answers, for the fuzz target (`fuzzing` feature; not a stable API).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::{Assignment, Error, Reply, Transport};

    /// What the client reads from one answer (an HTTP response, or an MQTT response's status and
    /// payload): the assignment when it says `assigned`, nothing for other statuses, or the error.
    pub fn read_answer(t: Transport, status: u16, body: &[u8]) -> Result<Option<Assignment>, Error> {
        let reply = Reply {
            status,
            body: body.to_vec(),
            retry_after: None,
        };
        let value = super::read_json(t, &reply)?;
        match value["status"].as_str() {
            Some("assigned") => super::assignment(t, &value).map(Some),
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
        crate::credentials::read_answer(status, body)
    }

    /// `$iothub/credentials/res/{status}/?$rid={rid}...`: (status, rid, retry-after); None for another topic.
    pub fn read_credentials_topic(topic: &str) -> Option<Result<CredentialsTopic, Error>> {
        crate::credentials::parse_response_topic(topic)
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
