//! The running emulator: its options, the services over one request handler, and the listeners (HTTPS, MQTT,
//! AMQP; MQTT and AMQP over WebSockets on the HTTPS port) that every connection bound and request deadline
//! apply to.

use std::sync::Arc;
use std::time::Duration;

use crate::config::EmulatorConfig;
use crate::enrollments::Enrollments;
use crate::issuance::CertificateIssuer;
use crate::listeners::limits::Limiter;
use crate::listeners::{Listener, amqp, https, mqtt};
use crate::services::RequestHandler;
use crate::services::device_api::DeviceApi;
use crate::services::hub_devices::{HubDevices, HubMessage};
use crate::services::iot_hub::IotHub;
use crate::services::service_api::ServiceApi;
use crate::{Error, tls};

/// How the server treats clients: polling delay, connection bound, request deadline.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Sent as `Retry-After` (whole seconds) with every `assigning` answer. Default 2 s (DPS sends a few
    /// seconds; the SDKs poll no faster than every second anyway).
    pub retry_after: Duration,
    /// Connections served at once over every listener (HTTPS, MQTT and AMQP together, one thread each). When all
    /// are taken, the connection that has waited longest for its client is closed to make room; if every
    /// one is busy, the new one waits.
    pub max_connections: usize,
    /// A request (the TLS handshake and its first request, or the wait for the next request on a kept-alive
    /// connection and that request) must arrive whole within this time: a total deadline, not a per-read
    /// timeout, so a client sending a byte now and then cannot hold a connection. Default 30 s.
    pub request_timeout: Duration,
    /// Offer only the ChaCha20-Poly1305 cipher suites. For clients run under valgrind: it cannot
    /// follow ring's AES-GCM assembly and reports its records as uninitialised. Default off.
    pub chacha20_only: bool,
    /// Port of the MQTT listener on 127.0.0.1; 0 (the default) picks a free one.
    pub mqtt_port: u16,
    /// Port of the AMQP (TLS) listener on 127.0.0.1; 0 (the default) picks a free one.
    pub amqp_port: u16,
    /// Where enrollments, groups and registration states are kept (SQLite file [`crate::STATE_FILE`]);
    /// `None` (the default): in memory, lost at shutdown.
    pub state_dir: Option<std::path::PathBuf>,
    /// Shared access policies of the service API; none (the default): every service request is refused.
    pub service_policies: Vec<crate::ServicePolicy>,
    /// Certificate issuance: the CA, the validity, the IoT Hub credentials delay.
    pub issuance: crate::issuance::IssuanceOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            retry_after: Duration::from_secs(2),
            max_connections: 64,
            request_timeout: Duration::from_secs(30),
            chacha20_only: false,
            mqtt_port: 0,
            amqp_port: 0,
            state_dir: None,
            service_policies: Vec::new(),
            issuance: crate::issuance::IssuanceOptions::default(),
        }
    }
}

/// A running emulator. Dropping it (or [`Emulator::shutdown`]) closes the listeners and every open
/// connection, and joins all threads.
pub struct Emulator {
    id_scope: String,
    server_ca_pem: String,
    issuing_ca_pem: String,
    service_policies: Vec<crate::ServicePolicy>,
    https: Listener,
    mqtt: Listener,
    hub: Arc<HubDevices>,
    amqp: Listener,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.https.addr())
            .field("id_scope", &self.id_scope)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Start on an ephemeral port of 127.0.0.1.
    pub fn start(config: EmulatorConfig) -> Result<Emulator, Error> {
        Self::start_on(config, 0)
    }

    /// Start on 127.0.0.1:`port` (0: any free port).
    pub fn start_on(config: EmulatorConfig, port: u16) -> Result<Emulator, Error> {
        Self::start_with(config, port, ServerOptions::default())
    }

    /// Start on 127.0.0.1:`port` (0: any free port) with the given polling delay and limits.
    pub fn start_with(config: EmulatorConfig, port: u16, options: ServerOptions) -> Result<Emulator, Error> {
        let store = crate::store::Store::open(options.state_dir.as_deref())?;
        let enrollments = Arc::new(Enrollments::new(&config, store)?);
        let issuer = Arc::new(CertificateIssuer::new(&options.issuance)?);
        let issuing_ca_pem = issuer.root_pem().to_string();
        let hub = Arc::new(HubDevices::default());
        let handler = Arc::new(request_handler(enrollments, issuer, hub.clone(), &options));
        let identity = tls::make_server_identity()?;
        let tls_config = tls::server_config(&identity, options.chacha20_only)?;
        // One bound over every listener's connections.
        let limiter = Limiter::new(options.max_connections);
        let request_timeout = options.request_timeout;
        // The listeners: each an adapter from its wire to the handler.
        let (tls, served) = (tls_config.clone(), handler.clone());
        let https = Listener::start(&https::NAMES, port, limiter.clone(), move |stream, slot| {
            https::serve(stream, tls.clone(), &served, request_timeout, slot)
        })?;
        let (tls, served) = (tls_config.clone(), handler.clone());
        let mqtt = Listener::start(&mqtt::NAMES, options.mqtt_port, limiter.clone(), move |stream, slot| {
            mqtt::serve(stream, tls.clone(), &served, request_timeout, slot)
        })?;
        let amqp = Listener::start(&amqp::NAMES, options.amqp_port, limiter, move |stream, slot| {
            amqp::serve(stream, tls_config.clone(), &handler, request_timeout, slot)
        })?;
        tracing::info!(
            addr = %https.addr(),
            mqtt = %mqtt.addr(),
            amqp = %amqp.addr(),
            id_scope = %config.id_scope,
            "DPS emulator listening"
        );
        Ok(Emulator {
            id_scope: config.id_scope,
            server_ca_pem: identity.ca_pem,
            issuing_ca_pem,
            service_policies: options.service_policies,
            https,
            mqtt,
            hub,
            amqp,
        })
    }

    /// The HTTPS port (on 127.0.0.1): the device and service APIs, and the WebSocket transports.
    pub fn port(&self) -> u16 {
        self.https.addr().port()
    }

    /// `127.0.0.1:PORT`: what a DPS client uses as its global endpoint (host:port).
    pub fn global_endpoint(&self) -> String {
        self.https.addr().to_string()
    }

    /// `127.0.0.1:PORT` of the MQTT listener (same server certificate and enrollments as HTTPS).
    pub fn mqtt_endpoint(&self) -> String {
        self.mqtt.addr().to_string()
    }

    /// `127.0.0.1:PORT` of the AMQP listener (same server certificate and enrollments as HTTPS).
    pub fn amqp_endpoint(&self) -> String {
        self.amqp.addr().to_string()
    }

    /// PEM of the CA that signed the server certificate (SAN: IP 127.0.0.1 and DNS localhost).
    pub fn server_ca_pem(&self) -> String {
        self.server_ca_pem.clone()
    }

    /// The service connection string of the shared access policy `name`, or of the first policy when `name`
    /// is `None`: `HostName=127.0.0.1:PORT;SharedAccessKeyName=..;SharedAccessKey=..`. It holds the policy's
    /// key: keep it out of logs.
    pub fn service_connection_string(&self, name: Option<&str>) -> Option<zeroize::Zeroizing<String>> {
        self.service_policies
            .iter()
            .find(|p| name.is_none_or(|n| p.name == n))
            .map(|p| p.connection_string(&self.global_endpoint()))
    }

    /// PEM of the root that signs issued device certificates (the last certificate of every
    /// `issuedCertificateChain`).
    pub fn issuing_ca_pem(&self) -> String {
        self.issuing_ca_pem.clone()
    }

    /// The device-to-cloud messages the emulator's IoT Hub kept from `device_id` (every device's with
    /// `None`), oldest first; at most [`crate::MAX_HUB_MESSAGES`] are kept, all devices together.
    pub fn hub_messages(&self, device_id: Option<&str>) -> Vec<HubMessage> {
        self.hub.messages(device_id)
    }

    /// The id scope the emulator serves.
    pub fn id_scope(&self) -> &str {
        &self.id_scope
    }

    /// Stop serving: close the listeners and every connection, join all threads.
    pub fn shutdown(self) {
        drop(self);
    }
}

/// The request handler over the emulator's services, in the order they are asked whether a path is theirs:
/// a new service is one line here.
pub(crate) fn request_handler(
    enrollments: Arc<Enrollments>,
    issuer: Arc<CertificateIssuer>,
    hub: Arc<HubDevices>,
    options: &ServerOptions,
) -> RequestHandler {
    RequestHandler::new(vec![
        Box::new(ServiceApi::new(enrollments.clone(), options.service_policies.clone())),
        Box::new(IotHub::new(
            enrollments.clone(),
            issuer.clone(),
            &options.issuance,
            hub,
            options.service_policies.clone(),
        )),
        Box::new(DeviceApi::new(enrollments, options.retry_after, issuer)),
    ])
}

impl Drop for Emulator {
    fn drop(&mut self) {
        tracing::info!(addr = %self.https.addr(), "DPS emulator stopping");
    }
}
