//! The listener: one thread accepting on 127.0.0.1, one thread per connection.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::auth::Trust;
use crate::config::EmulatorConfig;
use crate::http::{self, ReadError, Response};
use crate::service::Service;
use crate::{Error, tls};

/// How long a connection may sit idle (handshake or between requests) before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running emulator. Dropping it (or [`Emulator::shutdown`]) closes the listener and every open
/// connection, and joins all threads.
pub struct Emulator {
    addr: SocketAddr,
    id_scope: String,
    server_ca_pem: String,
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

/// Open connections, so that shutdown can close them.
#[derive(Default)]
struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, TcpStream>>,
}

impl Connections {
    fn add(&self, stream: &TcpStream) -> Option<u64> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let clone = stream.try_clone().ok()?;
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, clone);
        Some(id)
    }

    fn remove(&self, id: u64) {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    fn close_all(&self) {
        for (_, s) in self.open.lock().unwrap_or_else(PoisonError::into_inner).drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Emulator {
    /// Start on an ephemeral port of 127.0.0.1.
    pub fn start(config: EmulatorConfig) -> Result<Emulator, Error> {
        Self::start_on(config, 0)
    }

    /// Start on 127.0.0.1:`port` (0: any free port).
    pub fn start_on(config: EmulatorConfig, port: u16) -> Result<Emulator, Error> {
        let trust = Trust::new(&config)?;
        let identity = tls::make_server_identity()?;
        let tls_config = tls::server_config(&identity)?;
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
        let service = Arc::new(Service::new(
            config.id_scope.clone(),
            config.assigned_hub.clone(),
            trust,
        ));
        let mqtt = crate::mqtt::MqttListener::start(tls_config.clone(), service.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let listener_thread = std::thread::Builder::new()
            .name("dps-emulator-listener".to_string())
            .spawn(move || accept_loop(listener, tls_config, service, thread_stop))
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

fn accept_loop(listener: TcpListener, tls_config: Arc<ServerConfig>, service: Arc<Service>, stop: Arc<AtomicBool>) {
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
        let Some(id) = connections.add(&stream) else {
            tracing::warn!("cannot track a connection; closing it");
            continue;
        };
        let (tls_config, service, conns) = (tls_config.clone(), service.clone(), connections.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("dps-emulator-conn-{id}"))
            .spawn(move || {
                serve_connection(stream, tls_config, &service);
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

fn serve_connection(stream: TcpStream, tls_config: Arc<ServerConfig>, service: &Service) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
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
            Ok(Some(request)) => {
                let response = service.handle(&request, peer_chain.as_deref());
                if let Err(e) = response.write_to(&mut tls, request.keep_alive) {
                    tracing::debug!(?peer, error = %e, "writing a response failed");
                    return;
                }
                if !request.keep_alive {
                    break;
                }
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
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.conn.complete_io(&mut tls.sock);
}
