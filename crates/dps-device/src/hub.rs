//! From an [`Assignment`] and the identity that earned it to a ready IoT Hub MQTT connection: rumqttc
//! options with the device's authentication, and the topic names. Messaging stays with rumqttc; the
//! connection, the authentication and the SAS renewal are ours.
//!
//! What IoT Hub expects (Azure IoT C SDK, `iothubtransport_mqtt_common.c`; Microsoft's "Communicate with an
//! IoT hub using the MQTT protocol"): client id = the assigned device id; username
//! `{hub}/{deviceId}/?api-version={v}&DeviceClientType={agent}`; for x509 the TLS client identity (the same
//! backend-signed one DPS saw, e.g. a PKCS#11 key through `tlsio-bridge`) and no password; for a symmetric
//! key the password `SharedAccessSignature sr={hub}/devices/{deviceId}&sig=...&se=...` (no `skn`), signed
//! by the identity (the device key, in software or on a token). Telemetry goes to
//! `devices/{deviceId}/messages/events/{property bag}`, twin requests to `$iothub/twin/GET/?$rid={rid}` and
//! `$iothub/twin/PATCH/properties/reported/?$rid={rid}`, answered on `$iothub/twin/res/{status}/?$rid={rid}`.
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

use crate::mqtt::split_endpoint;
use crate::{Assignment, Attestation, Error, MAX_BODY, TlsVersions, Transport, blocking_task};

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
    /// The IoT Hub api-version of the MQTT username.
    pub api_version: String,
    /// Sent as `DeviceClientType` in the MQTT username.
    pub user_agent: String,
    /// Lifetime of each SAS token. Default one hour.
    pub sas_lifetime: Duration,
    /// The TLS versions offered.
    pub tls_versions: TlsVersions,
    /// The MQTT keep-alive (IoT Hub closes a connection idle longer than its own limit).
    pub keep_alive: Duration,
}

impl HubOptions {
    /// MQTT to the assigned hub, verified by `roots`; the other fields at their defaults.
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

    /// The twin GET request (answered on [`HubTopics::twin_responses`] with the same `rid`).
    pub fn twin_get(&self, rid: &str) -> String {
        format!("$iothub/twin/GET/?$rid={rid}")
    }

    /// The reported properties PATCH request (the body is the JSON patch).
    pub fn twin_patch_reported(&self, rid: &str) -> String {
        format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}")
    }

    /// The status and `$rid` of a twin answer's topic (`$iothub/twin/res/{status}/?$rid={rid}&...`).
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
    /// (x509: the TLS client identity; symmetric key: SAS tokens it signs). TPM attestation is refused
    /// (`Error::InvalidRequest`): its hub key is not wired here yet.
    pub async fn new(assignment: &Assignment, attestation: &Attestation, options: HubOptions) -> Result<Self, Error> {
        if options.transport.websocket().is_none() && options.transport != Transport::Mqtt {
            return Err(Error::InvalidRequest(format!(
                "IoT Hub devices connect over MQTT or MQTT over WebSockets here, not {}",
                options.transport
            )));
        }
        let credential = match attestation {
            Attestation::X509(x) => Credential::X509(x.clone()),
            Attestation::SymmetricKey(s) => Credential::Sas(s.clone()),
            Attestation::Tpm(_) => {
                return Err(Error::InvalidRequest(
                    "a hub connection with TPM attestation is not supported yet".into(),
                ));
            }
        };
        let identity = match &credential {
            Credential::X509(x) => Some(x.clone()),
            Credential::Sas(_) => None,
        };
        let (roots, versions) = (options.roots.clone(), options.tls_versions);
        let tls = blocking_task(move || {
            tlsio_bridge::client_config(roots, identity.as_deref(), versions).map_err(Error::from)
        })
        .await?;
        Ok(HubConnection {
            hub: assignment.assigned_hub.clone(),
            device_id: assignment.device_id.clone(),
            credential,
            options,
            tls: Arc::new(tls),
        })
    }

    /// The topics of this device.
    pub fn topics(&self) -> HubTopics {
        HubTopics {
            device_id: self.device_id.clone(),
        }
    }

    /// The device id of the assignment (the MQTT client id).
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

    /// A fresh password: a SAS token valid for [`HubOptions::sas_lifetime`], signed by the identity; empty
    /// for x509. With its expiry (seconds since the epoch) for SAS.
    pub async fn password(&self) -> Result<(String, Option<u64>), Error> {
        let Credential::Sas(identity) = &self.credential else {
            return Ok((String::new(), None));
        };
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_add(self.options.sas_lifetime.as_secs().max(1));
        let audience = Audience::Hub {
            host: self.hub.clone(),
            device_id: self.device_id.clone(),
        };
        let identity = identity.clone();
        let token = blocking_task(move || {
            let signature = identity.hmac_sha256(audience.string_to_sign(expiry).as_bytes())?;
            Ok(audience.token(&signature, expiry))
        })
        .await?;
        Ok((token, Some(expiry)))
    }

    /// How long after [`Self::mqtt_options`] to reconnect with a fresh token (`None` for x509): four
    /// fifths into the lifetime, less the second a whole-second expiry may lose. IoT Hub (and the emulator)
    /// close a session when its token expires; MQTT 3.1.1 re-authenticates by reconnecting.
    pub fn renew_after(&self) -> Option<Duration> {
        match self.credential {
            Credential::X509(_) => None,
            Credential::Sas(_) => Some(
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
