//! From an [`Assignment`] and the identity that earned it to a ready IoT Hub MQTT connection: rumqttc
//! options with the device's authentication, and the topic names. Messaging stays with rumqttc; the
//! connection, the authentication and the SAS renewal are ours.
//!
//! What IoT Hub expects (Azure IoT C SDK, `iothubtransport_mqtt_common.c`; Microsoft's "Communicate with an
//! IoT hub using the MQTT protocol"): client id = the assigned device id; username
//! `{hub}/{deviceId}/?api-version={v}&DeviceClientType={agent}`; for x509 the TLS client identity (the same
//! backend-signed one DPS saw, e.g. a PKCS#11 key through `tlsio-bridge`) and no password; for a symmetric
//! key the password `SharedAccessSignature sr={hub}/devices/{deviceId}&sig=...&se=...` (no `skn`), signed
//! by the identity (the device key, in software or on a token); for TPM attestation the same password,
//! signed inside the TPM with the hub key DPS's assignment sent (activated by the registration). Telemetry goes to
//! `devices/{deviceId}/messages/events/{property bag}`, twin requests to `$iothub/twin/GET/?$rid={rid}` and
//! `$iothub/twin/PATCH/properties/reported/?$rid={rid}`, answered on `$iothub/twin/res/{status}/?$rid={rid}`.
//! A certificate renewal can run over the same connection (x509): [`credentials_request`] published on
//! [`HubTopics::credentials_request`], its answers read by [`credentials_answer`] (the hub wants
//! [`crate::HUB_API_VERSION`] in the username for these topics: set [`HubOptions::api_version`]);
//! [`crate::renew_certificate`] is the same on a connection of its own, with retries.
//!
//! ```no_run
//! # async fn f(assignment: dps_device::Assignment, attestation: dps_device::Attestation,
//! #            roots: rustls::RootCertStore) -> Result<(), dps_device::Error> {
//! use dps_device::hub::{HubConnection, HubOptions};
//! let hub = HubConnection::new(&assignment, &attestation, HubOptions::new(roots)).await?;
//! let (client, mut events) = rumqttc::AsyncClient::new(hub.mqtt_options().await?, 10);
//! client.publish(hub.topics().telemetry(""), rumqttc::QoS::AtLeastOnce, false, "hello").await.ok();
//! // Poll `events`; before the token's renew_at() passes, reconnect with fresh options.
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hsm_core::sas::{Audience, url_encode};
use hsm_core::{SymmetricIdentity, X509Identity};
use rumqttc::MqttOptions;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use dps_wire::device::credentials::CredentialsRequest;

use crate::hub_renewal::{certificates, parse_response_topic, service_error};
use crate::mqtt::split_endpoint;
use crate::{
    Assignment, Attestation, Error, MAX_BODY, Reply, SharedTpm, TlsVersions, Transport, blocking_task, with_tpm,
};

/// The IoT Hub api-version of the device topics (the one the C SDK sends).
pub const DEVICE_API_VERSION: &str = "2020-09-30";

/// How the hub connection is made; [`HubOptions::new`] with the roots that verify the hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// What verifies the hub's server certificate.
    pub roots: rustls::RootCertStore,
    /// MQTT (8883) or MQTT over WebSockets (443, `/$iothub/websocket`); others are refused.
    pub transport: Transport,
    /// `host:port` to dial instead of the assigned hub (a local emulator); the hub name in the username
    /// and the SAS resource stays the assigned one.
    pub endpoint: Option<String>,
    pub api_version: String,
    pub user_agent: String,
    /// Lifetime of each SAS token. Default one hour.
    pub sas_lifetime: Duration,
    pub tls_versions: TlsVersions,
    pub keep_alive: Duration,
}

impl HubOptions {
    pub fn new(roots: rustls::RootCertStore) -> Self {
        HubOptions {
            roots,
            transport: Transport::Mqtt,
            endpoint: None,
            api_version: DEVICE_API_VERSION.to_string(),
            user_agent: concat!("dps-device/", env!("CARGO_PKG_VERSION")).to_string(),
            sas_lifetime: Duration::from_secs(3600),
            tls_versions: TlsVersions::Both,
            keep_alive: Duration::from_secs(60),
        }
    }
}

/// The topics of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubTopics {
    device_id: String,
}

impl HubTopics {
    /// `devices/{deviceId}/messages/events/{properties}`; `properties` is a URL-encoded property bag
    /// (`a=1&%24.ct=application%2Fjson`) or empty.
    pub fn telemetry(&self, properties: &str) -> String {
        format!("devices/{}/messages/events/{properties}", self.device_id)
    }

    /// Where the twin answers arrive: subscribe to it before the first twin request.
    pub fn twin_responses(&self) -> &'static str {
        "$iothub/twin/res/#"
    }

    pub fn twin_get(&self, rid: &str) -> String {
        format!("$iothub/twin/GET/?$rid={rid}")
    }

    pub fn twin_patch_reported(&self, rid: &str) -> String {
        format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}")
    }

    /// The status and `$rid` of a twin answer's topic (`$iothub/twin/res/{status}/?$rid={rid}&...`).
    /// Where the `$iothub/credentials` answers arrive: subscribe to it before the first certificate request
    /// (see [`credentials_request`]).
    pub fn credentials_responses(&self) -> &'static str {
        crate::hub_renewal::SUBSCRIBE_TOPIC
    }

    /// `$iothub/credentials/POST/issueCertificate/?$rid={rid}`: publish a [`credentials_request`] here at
    /// QoS 1.
    pub fn credentials_request(&self, rid: &str) -> String {
        crate::hub_renewal::request_topic(rid)
    }

    pub fn twin_answer(topic: &str) -> Option<(u16, String)> {
        let rest = topic.strip_prefix("$iothub/twin/res/")?;
        let (status, query) = rest.split_once("/?")?;
        let rid = query.split('&').find_map(|p| p.strip_prefix("$rid="))?;
        Some((status.parse().ok()?, rid.to_string()))
    }
}

/// How the device proves itself to the hub.
#[derive(Clone)]
enum Credential {
    X509(Arc<dyn X509Identity>),
    Sas(Arc<dyn SymmetricIdentity>),
    /// SAS tokens signed in the TPM with its identity key (the hub key the assignment activated).
    Tpm(SharedTpm),
}

/// A device's connection to its assigned hub: build [`MqttOptions`] with [`Self::mqtt_options`] (again for
/// each reconnection, which signs a fresh SAS token).
#[derive(Clone)]
pub struct HubConnection {
    hub: String,
    device_id: String,
    credential: Credential,
    options: HubOptions,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for HubConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnection")
            .field("hub", &self.hub)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl HubConnection {
    /// The connection of the device `assignment` names, authenticated by the identity of `attestation`
    /// (x509: the TLS client identity; symmetric key: SAS tokens it signs; TPM: SAS tokens signed in the
    /// TPM with the hub key the registration activated from `assignment`, so the same TPM handle that
    /// registered, with no other activation since).
    pub async fn new(assignment: &Assignment, attestation: &Attestation, options: HubOptions) -> Result<Self, Error> {
        Self::for_device(&assignment.assigned_hub, &assignment.device_id, attestation, options).await
    }

    /// As [`Self::new`], for a device whose assignment is known only by its hub and device id (a tool
    /// run after provisioning).
    pub async fn for_device(
        hub: &str,
        device_id: &str,
        attestation: &Attestation,
        options: HubOptions,
    ) -> Result<Self, Error> {
        if hub.is_empty() || device_id.is_empty() || device_id.chars().any(|c| c.is_control() || c == '/') {
            return Err(Error::InvalidRequest(format!(
                "hub {hub:?} or device id {device_id:?} is empty, or the device id has '/' or control characters"
            )));
        }
        if options.transport.websocket().is_none() && options.transport != Transport::Mqtt {
            return Err(Error::InvalidRequest(format!(
                "IoT Hub devices connect over MQTT or MQTT over WebSockets here, not {}",
                options.transport
            )));
        }
        let credential = match attestation {
            Attestation::X509(x) => Credential::X509(x.clone()),
            Attestation::SymmetricKey(s) => Credential::Sas(s.clone()),
            Attestation::Tpm(tpm) => Credential::Tpm(tpm.clone()),
        };
        let identity = match &credential {
            Credential::X509(x) => Some(x.clone()),
            Credential::Sas(_) | Credential::Tpm(_) => None,
        };
        let (roots, versions) = (options.roots.clone(), options.tls_versions);
        let tls = blocking_task(move || {
            tlsio_bridge::client_config(roots, identity.as_deref(), versions).map_err(Error::from)
        })
        .await?;
        Ok(HubConnection {
            hub: hub.to_string(),
            device_id: device_id.to_string(),
            credential,
            options,
            tls: Arc::new(tls),
        })
    }

    pub fn topics(&self) -> HubTopics {
        HubTopics {
            device_id: self.device_id.clone(),
        }
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The MQTT username: `{hub}/{deviceId}/?api-version={v}&DeviceClientType={agent}`.
    pub fn username(&self) -> String {
        format!(
            "{}/{}/?api-version={}&DeviceClientType={}",
            self.hub,
            self.device_id,
            url_encode(&self.options.api_version),
            url_encode(&self.options.user_agent)
        )
    }

    /// A fresh password: a SAS token valid for [`HubOptions::sas_lifetime`], signed by the identity (in the
    /// TPM for TPM attestation); empty for x509. With its expiry (seconds since the epoch) for SAS.
    pub async fn password(&self) -> Result<(String, Option<u64>), Error> {
        if matches!(self.credential, Credential::X509(_)) {
            return Ok((String::new(), None));
        }
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_add(self.options.sas_lifetime.as_secs().max(1));
        let audience = Audience::Hub {
            host: self.hub.clone(),
            device_id: self.device_id.clone(),
        };
        let to_sign = audience.string_to_sign(expiry);
        let signature = match &self.credential {
            Credential::Sas(identity) => {
                let identity = identity.clone();
                blocking_task(move || {
                    identity
                        .hmac_sha256(to_sign.as_bytes())
                        .map(Vec::from)
                        .map_err(Error::from)
                })
                .await?
            }
            Credential::Tpm(tpm) => with_tpm(tpm, move |t| t.sign_with_identity(to_sign.as_bytes())).await?,
            Credential::X509(_) => return Ok((String::new(), None)),
        };
        Ok((audience.token(&signature, expiry), Some(expiry)))
    }

    /// How long after [`Self::mqtt_options`] to reconnect with a fresh token (`None` for x509): four
    /// fifths into the lifetime, less the second a whole-second expiry may lose. IoT Hub (and the emulator)
    /// close a session when its token expires; MQTT 3.1.1 re-authenticates by reconnecting.
    pub fn renew_after(&self) -> Option<Duration> {
        match self.credential {
            Credential::X509(_) => None,
            Credential::Sas(_) | Credential::Tpm(_) => Some(
                self.options
                    .sas_lifetime
                    .mul_f64(0.8)
                    .saturating_sub(Duration::from_secs(1))
                    .max(Duration::from_millis(100)),
            ),
        }
    }

    /// rumqttc options for a connection now: transport, TLS identity, client id, username and a fresh
    /// password. Call again for each reconnection (IoT Hub drops a session whose token expired).
    pub async fn mqtt_options(&self) -> Result<MqttOptions, Error> {
        let t = self.options.transport;
        let endpoint = self.options.endpoint.clone().unwrap_or_else(|| self.hub.clone());
        let (host, port) = split_endpoint(&endpoint, t.default_port())?;
        let mut options = match t.websocket() {
            Some(_) => {
                // `wss://{host}:{port}/$iothub/websocket`, subprotocol `mqtt` (rumqttc's Transport::Wss).
                let host = if host.contains(':') { format!("[{host}]") } else { host };
                let url = format!("{}://{host}:{port}{}", t.scheme(), t.path().unwrap_or("/"));
                let mut options = MqttOptions::new(&self.device_id, url, port);
                options.set_transport(rumqttc::Transport::wss_with_config(rumqttc::TlsConfiguration::Rustls(
                    self.tls.clone(),
                )));
                options
            }
            None => {
                let mut options = MqttOptions::new(&self.device_id, host, port);
                options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
                    self.tls.clone(),
                )));
                options
            }
        };
        let (password, _) = self.password().await?;
        options
            .set_keep_alive(self.options.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(MAX_BODY + 1024, MAX_BODY + 1024)
            .set_credentials(self.username(), password);
        Ok(options)
    }
}

/// The body of a `$iothub/credentials` certificate request, `{"id", "csr", "replace"?}`: `csr` is the DER
/// PKCS#10 request of a NEW key (ECDSA P-384, CN = `device_id`), checked before anything is sent; with
/// `replace` it replaces an operation left in progress.
pub fn credentials_request(device_id: &str, csr: &[u8], replace: bool) -> Result<Vec<u8>, Error> {
    crate::issuance::check_csr(csr)?;
    let body = CredentialsRequest {
        id: device_id.to_string(),
        csr: B64.encode(csr),
        replace: replace.then(|| "*".to_string()),
        extra: serde_json::Map::new(),
    };
    serde_json::to_vec(&body).map_err(|e| Error::Internal(format!("encoding the request: {e}")))
}

/// What a `$iothub/credentials` answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsAnswer {
    /// `202`: accepted, the certificate comes in a later answer with the same `$rid`.
    Accepted,
    /// `200`: the issued chain, DER, leaf first; check it with [`crate::verify_issued_chain`] before use.
    Issued(Vec<Vec<u8>>),
}

/// Read a message received on the hub connection: `None` when it is not a credentials answer to request
/// `rid`; the service's refusal (status, `errorCode`, `info`) or a malformed answer is the error.
pub fn credentials_answer(topic: &str, payload: &[u8], rid: &str) -> Option<Result<CredentialsAnswer, Error>> {
    let (status, answer_rid, retry_after) = match parse_response_topic(topic)? {
        Ok(parsed) => parsed,
        Err(e) => return Some(Err(e)),
    };
    if answer_rid.as_deref() != Some(rid) {
        return None;
    }
    let reply = Reply {
        status,
        body: payload.to_vec(),
        retry_after,
    };
    Some(match status {
        202 => Ok(CredentialsAnswer::Accepted),
        200 => certificates(&reply).map(CredentialsAnswer::Issued),
        _ => Err(service_error(&reply)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_answers_on_the_hub_connection() {
        let topic = |s: u16| format!("$iothub/credentials/res/{s}/?$rid=7");
        assert_eq!(
            credentials_answer(&topic(202), b"{}", "7").unwrap().unwrap(),
            CredentialsAnswer::Accepted
        );
        assert_eq!(
            credentials_answer(&topic(200), br#"{"certificates":["AAEC"]}"#, "7")
                .unwrap()
                .unwrap(),
            CredentialsAnswer::Issued(vec![vec![0, 1, 2]])
        );
        match credentials_answer(&topic(400), br#"{"errorCode":400040,"message":"bad csr"}"#, "7") {
            Some(Err(Error::Service(e))) => assert_eq!((e.status, e.error_code), (400, Some(400040))),
            other => panic!("{other:?}"),
        }
        assert!(
            credentials_answer(&topic(200), b"{}", "8").is_none(),
            "another request's answer"
        );
        assert!(credentials_answer("$iothub/twin/res/200/?$rid=7", b"{}", "7").is_none());
        assert!(
            credentials_request("d", b"", false).is_err(),
            "an empty CSR is refused locally"
        );
    }
}
