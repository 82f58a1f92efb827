//! The listener: one thread accepting on 127.0.0.1, one thread per connection, at most
//! [`ServerOptions::max_connections`] of them; each request (TLS handshake included for the first) must arrive
//! whole within [`ServerOptions::request_timeout`].

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::auth::Trust;
use crate::config::EmulatorConfig;
use crate::http::{self, ReadError, Response};
use crate::service::Service;
use crate::{Error, tls};

/// How long writing a response may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the server treats clients: polling delay, connection bound, request deadline.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Sent as `Retry-After` (whole seconds) with every `assigning` answer. Default 2 s (DPS sends a few
    /// seconds; the SDKs poll no faster than every second anyway).
    pub retry_after: Duration,
    /// Connections served at once (one thread each). When all are taken, the connection that has waited
    /// longest for its next request is closed to make room; if every one is busy, the new one waits.
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
    pub(crate) mqtt: crate::mqtt::MqttListener,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field("id_scope", &self.id_scope)
            .finish_non_exhaustive()
    }
}

/// Open connections, so that shutdown can close them and a full server can close the longest idle one.
#[derive(Default)]
struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Connection>>,
    closed: Condvar,
}

struct Connection {
    stream: TcpStream,
    /// Since when it has been waiting for a request; `None` while one is handled or after it was closed.
    idle_since: Option<Instant>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Connection>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, stream: &TcpStream) -> Option<u64> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let stream = stream.try_clone().ok()?;
        self.lock().insert(
            id,
            Connection {
                stream,
                idle_since: Some(Instant::now()),
            },
        );
        Some(id)
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(c) = self.lock().get_mut(&id) {
            c.idle_since = idle.then(Instant::now);
        }
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.closed.notify_all();
    }

    /// Wait until fewer than `max` connections are open, closing the one idle the longest while none is free.
    fn make_room(&self, max: usize, stop: &AtomicBool) {
        let mut open = self.lock();
        while open.len() >= max.max(1) && !stop.load(Ordering::SeqCst) {
            let oldest = open
                .iter_mut()
                .filter(|(_, c)| c.idle_since.is_some())
                .min_by_key(|(_, c)| c.idle_since);
            if let Some((id, c)) = oldest {
                tracing::info!(
                    connection = id,
                    "connection limit reached: closing the longest idle connection"
                );
                let _ = c.stream.shutdown(Shutdown::Both);
                c.idle_since = None;
            }
            open = self
                .closed
                .wait_timeout(open, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn close_all(&self) {
        for (_, c) in self.lock().drain() {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
    }
}

/// The socket under TLS: each read waits no later than the current request's deadline.
struct DeadlineStream {
    stream: TcpStream,
    deadline: Option<Instant>,
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "request deadline passed"));
            }
            self.stream.set_read_timeout(Some(left))?;
        }
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
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
        let trust = Trust::new(&config)?;
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
        let issuer = Arc::new(crate::issuance::CertificateIssuer::new(&options.issuance)?);
        let issuing_ca_pem = issuer.root_pem().to_string();
        let service = Arc::new(
            Service::new(
                config.id_scope.clone(),
                config.assigned_hub.clone(),
                trust,
                options.retry_after,
            )
            .with_issuer(issuer),
        );
        let mqtt = crate::mqtt::MqttListener::start(options.mqtt_port, tls_config.clone(), service.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let listener_thread = std::thread::Builder::new()
            .name("dps-emulator-listener".to_string())
            .spawn(move || accept_loop(listener, tls_config, service, &options, &thread_stop))
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
            mqtt,
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

fn accept_loop(
    listener: TcpListener,
    tls_config: Arc<ServerConfig>,
    service: Arc<Service>,
    options: &ServerOptions,
    stop: &AtomicBool,
) {
    let connections = Arc::new(Connections::default());
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for incoming in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match incoming {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        workers.retain(|w| !w.is_finished());
        connections.make_room(options.max_connections, stop);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Some(id) = connections.add(&stream) else {
            tracing::warn!("cannot track a connection; closing it");
            continue;
        };
        let (tls_config, service, conns) = (tls_config.clone(), service.clone(), connections.clone());
        let request_timeout = options.request_timeout;
        let spawned = std::thread::Builder::new()
            .name(format!("dps-emulator-conn-{id}"))
            .spawn(move || {
                serve_connection(stream, tls_config, &service, request_timeout, &|idle| {
                    conns.set_idle(id, idle)
                });
                conns.remove(id);
            });
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a connection thread");
                connections.remove(id);
            }
        }
    }
    drop(listener);
    connections.close_all();
    for w in workers {
        let _ = w.join();
    }
}

/// Serve one connection; `idle(true)` when it starts waiting for a request, `idle(false)` while one is handled.
fn serve_connection(
    stream: TcpStream,
    tls_config: Arc<ServerConfig>,
    service: &Service,
    request_timeout: Duration,
    idle: &dyn Fn(bool),
) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let stream = DeadlineStream {
        stream,
        deadline: Some(Instant::now() + request_timeout),
    };
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
                idle(false);
                tls.sock.deadline = None;
                if let Some(mut head) = request.upgrade_head.take() {
                    // MQTT over WebSockets: the connection is the session's until it ends.
                    head.append(&mut buf);
                    let _ = tls.sock.stream.set_read_timeout(Some(crate::mqtt::IDLE_TIMEOUT));
                    crate::websocket::serve(&mut tls, head, service, peer_chain.as_deref());
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
                tls.sock.deadline = Some(Instant::now() + request_timeout);
                idle(true);
            }
            Err(ReadError::Malformed { status, message }) => {
                let body = serde_json::json!({"errorCode": u32::from(status) * 1000, "message": message});
                let _ = Response::json(status, &body).write_to(&mut tls, false);
                break;
            }
            Err(ReadError::Io(e)) => {
                tracing::debug!(?peer, error = %e, "connection ended");
                return;
            }
        }
    }
    tls.sock.deadline = Some(Instant::now() + Duration::from_secs(1));
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.conn.complete_io(&mut tls.sock);
}
