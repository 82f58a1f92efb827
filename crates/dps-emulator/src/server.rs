//! The HTTPS listener: one thread accepting on 127.0.0.1, one thread per connection, at most
//! [`ServerOptions::max_connections`] of them over every listener (`limits.rs`); each request (TLS handshake
//! included for the first) must arrive whole within [`ServerOptions::request_timeout`].

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::config::EmulatorConfig;
use crate::http::{self, ReadError};
use crate::limits::{self, DeadlineStream, Limiter, Slot};
use crate::service::Service;
use crate::{Error, tls};

/// How long writing a response may block on a client that does not read.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Port of the AMQP (TLS) listener on 127.0.0.1; 0 (the default) picks a free one. (issue 23: AMQP)
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
            amqp_port: 0, // issue 23: AMQP
            state_dir: None,
            service_policies: Vec::new(),
            issuance: crate::issuance::IssuanceOptions::default(),
        }
    }
}

/// A running emulator. Dropping it (or [`Emulator::shutdown`]) closes the listener and every open
/// connection, and joins all threads.
pub struct Emulator {
    addr: SocketAddr,
    id_scope: String,
    server_ca_pem: String,
    issuing_ca_pem: String,
    stop: Arc<AtomicBool>,
    listener: Option<JoinHandle<()>>,
    service_policies: Vec<crate::ServicePolicy>,
    pub(crate) mqtt: crate::mqtt::MqttListener,
    pub(crate) amqp: crate::amqp::AmqpListener, // issue 23: AMQP
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
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
        let issuer = Arc::new(crate::issuance::CertificateIssuer::new(&options.issuance)?);
        let issuing_ca_pem = issuer.root_pem().to_string();
        let service = Arc::new(
            Service::new(&config, store, options.service_policies.clone(), options.retry_after)?.with_issuer(issuer),
        );
        let identity = tls::make_server_identity()?;
        let tls_config = tls::server_config(&identity, options.chacha20_only)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|source| Error::Socket {
            op: "binding",
            port,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Socket {
            op: "reading the address of",
            port,
            source,
        })?;
        // One bound over every listener's connections.
        let limiter = Limiter::new(options.max_connections);
        let mqtt = crate::mqtt::MqttListener::start(
            options.mqtt_port,
            tls_config.clone(),
            service.clone(),
            limiter.clone(),
            options.request_timeout,
        )?;
        // issue 23: AMQP (begin)
        let amqp = crate::amqp::AmqpListener::start(
            options.amqp_port,
            tls_config.clone(),
            service.clone(),
            limiter.clone(),
            options.request_timeout,
        )?;
        // issue 23: AMQP (end)
        let service_policies = options.service_policies.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let listener_thread = std::thread::Builder::new()
            .name("dps-emulator-listener".to_string())
            .spawn(move || {
                let request_timeout = options.request_timeout;
                limits::accept_loop(
                    listener,
                    limiter,
                    &thread_stop,
                    "dps-emulator-conn",
                    move |stream, slot| serve_connection(stream, tls_config.clone(), &service, request_timeout, slot),
                )
            })
            .map_err(|source| Error::Socket {
                op: "starting the listener thread for",
                port: addr.port(),
                source,
            })?;
        tracing::info!(%addr, id_scope = %config.id_scope, "DPS emulator listening");
        Ok(Emulator {
            addr,
            id_scope: config.id_scope,
            server_ca_pem: identity.ca_pem,
            issuing_ca_pem,
            stop,
            listener: Some(listener_thread),
            service_policies,
            mqtt,
            amqp, // issue 23: AMQP
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`: what a DPS client uses as its global endpoint (host:port).
    pub fn global_endpoint(&self) -> String {
        self.addr.to_string()
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

    pub fn id_scope(&self) -> &str {
        &self.id_scope
    }

    /// Stop serving: close the listener and every connection, join all threads.
    pub fn shutdown(self) {
        drop(self);
    }

    fn stop(&mut self) {
        let Some(handle) = self.listener.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; the listener thread sees the flag and ends.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
        if handle.join().is_err() {
            tracing::error!("the DPS emulator listener thread panicked");
        }
        tracing::info!(addr = %self.addr, "DPS emulator stopped");
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serve one connection; `idle(true)` when it starts waiting for a request, `idle(false)` while one is handled.
fn serve_connection(
    stream: TcpStream,
    tls_config: Arc<ServerConfig>,
    service: &Arc<Service>,
    request_timeout: Duration,
    slot: &Slot,
) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let stream = DeadlineStream::new(stream, Some(Instant::now() + request_timeout));
    let conn = match ServerConnection::new(tls_config) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create a TLS session");
            return;
        }
    };
    let mut tls = StreamOwned::new(conn, stream);
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            // Send the alert rustls queued, if any.
            let _ = tls.conn.write_tls(&mut tls.sock);
            return;
        }
    }
    let peer_chain = tls.conn.peer_certificates().map(<[_]>::to_vec);
    tracing::debug!(
        ?peer,
        version = ?tls.conn.protocol_version(),
        client_certificates = peer_chain.as_ref().map_or(0, Vec::len),
        "TLS handshake done"
    );
    let mut buf = Vec::new();
    loop {
        match http::read_request(&mut tls, &mut buf) {
            Ok(None) => break,
            Ok(Some(mut request)) => {
                slot.idle(false);
                tls.sock.set_deadline(None);
                if let Some(mut head) = request.upgrade_head.take() {
                    // MQTT over WebSockets: the connection is the session's until it ends.
                    head.append(&mut buf);
                    // issue 23: AMQP over WebSockets (subprotocol AMQPWSB10) takes the TLS session over.
                    if crate::amqp::ws::wants_amqp(&request) {
                        crate::amqp::ws::serve(tls, head, service.clone(), peer_chain, request_timeout, slot);
                        return;
                    }
                    let deadline = tls.sock.deadline.clone();
                    let session = crate::mqtt::Limits {
                        deadline,
                        request_timeout,
                        slot,
                    };
                    crate::websocket::serve(&mut tls, head, service, peer_chain.as_deref(), &session);
                    break;
                }
                let response = service.handle(&request, peer_chain.as_deref());
                if let Err(e) = response.write_to(&mut tls, request.keep_alive) {
                    tracing::debug!(?peer, error = %e, "writing a response failed");
                    return;
                }
                if !request.keep_alive {
                    break;
                }
                tls.sock.set_deadline(Some(Instant::now() + request_timeout));
                slot.idle(true);
            }
            Err(ReadError::Malformed { status, message }) => {
                let _ = crate::service::error(status, u32::from(status) * 1000, message).write_to(&mut tls, false);
                break;
            }
            Err(ReadError::Io(e)) => {
                tracing::debug!(?peer, error = %e, "connection ended");
                return;
            }
        }
    }
    tls.sock.set_deadline(Some(Instant::now() + Duration::from_secs(1)));
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.conn.complete_io(&mut tls.sock);
}
