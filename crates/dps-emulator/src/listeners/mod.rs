//! The listeners: adapters from a wire to the request handler (`services`), and the one way a listener is
//! started ([`Listener::start`]): its own accepting thread on 127.0.0.1, one thread per connection, within the
//! connection bound that every listener shares (`limits.rs`).
//!
//! - `https.rs`: HTTPS (HTTP/1.1 read by `http_codec.rs`); an `Upgrade: websocket` goes to `websocket.rs`.
//! - `mqtt.rs`: MQTT 3.1.1 over TLS on its own port, and the MQTT session that `websocket.rs` runs too.
//! - `amqp/`: AMQP 1.0 over TLS on its own port, and over WebSockets (`amqp/websocket.rs`, an entry of
//!   `websocket.rs`'s `SESSIONS` that takes the connection over: its session is async).
//!
//! A new listener is a module here (a `serve` function turning its connections into [`crate::request::Request`]s)
//! and one `Listener::start` line in `Emulator::start_with`.

pub(crate) mod amqp;
pub(crate) mod http_codec;
pub(crate) mod https;
pub(crate) mod limits;
pub(crate) mod mqtt;
pub(crate) mod websocket;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::CertificateDer;

use crate::Error;
use crate::listeners::limits::{DeadlineStream, Limiter, Slot};

/// The path DPS serves MQTT and AMQP over WebSockets on (`websocket.rs`, `amqp/websocket.rs`).
pub(crate) const WEBSOCKET_PATH: &str = "/$iothub/websocket";

/// How long writing an answer may block on a client that does not read.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How a listener names itself: its threads, and the operations in its socket errors.
pub(crate) struct Names {
    /// The accepting thread.
    pub(crate) thread: &'static str,
    /// The connection threads (`NAME-N`), also in logs.
    pub(crate) connections: &'static str,
    pub(crate) binding: &'static str,
    pub(crate) address: &'static str,
    pub(crate) spawning: &'static str,
}

/// A running listener; dropping it closes its socket and its connections and joins its threads.
pub(crate) struct Listener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listen on 127.0.0.1:`port` (0: any free port) and serve each connection with `serve` on a thread of its
    /// own, within the bound of `limiter`.
    pub(crate) fn start<F>(names: &Names, port: u16, limiter: Arc<Limiter>, serve: F) -> Result<Listener, Error>
    where
        F: Fn(TcpStream, &Slot) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|source| Error::Socket {
            op: names.binding,
            port,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Socket {
            op: names.address,
            port,
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let connections = names.connections;
        let thread = std::thread::Builder::new()
            .name(names.thread.to_string())
            .spawn(move || limits::accept_loop(listener, limiter, &thread_stop, connections, serve))
            .map_err(|source| Error::Socket {
                op: names.spawning,
                port: addr.port(),
                source,
            })?;
        Ok(Listener {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; the thread sees the flag and ends.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
        if thread.join().is_err() {
            tracing::error!(addr = %self.addr, "a DPS emulator listener thread panicked");
        }
    }
}

/// A byte stream a session runs over (TLS, or the binary messages of a WebSocket).
pub(crate) trait ByteStream: std::io::Read + std::io::Write {}

impl<S: std::io::Read + std::io::Write> ByteStream for S {}

/// A TLS connection whose reads wait no later than its deadline.
pub(crate) type TlsStream = StreamOwned<ServerConnection, DeadlineStream>;

/// The TLS handshake of a new connection, within `request_timeout`: the stream and the client's certificate
/// chain, if it presented one (its possession proven in the handshake). `None` when the handshake failed.
pub(crate) fn accept_tls(
    stream: TcpStream,
    tls_config: Arc<ServerConfig>,
    request_timeout: Duration,
) -> Option<(TlsStream, Option<Arc<[CertificateDer<'static>]>>)> {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let stream = DeadlineStream::new(stream, Some(Instant::now() + request_timeout));
    let conn = match ServerConnection::new(tls_config) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create a TLS session");
            return None;
        }
    };
    let mut tls = StreamOwned::new(conn, stream);
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            // Send the alert rustls queued, if any.
            let _ = tls.conn.write_tls(&mut tls.sock);
            return None;
        }
    }
    let chain: Option<Arc<[CertificateDer<'static>]>> = tls.conn.peer_certificates().map(Arc::from);
    tracing::debug!(
        ?peer,
        version = ?tls.conn.protocol_version(),
        client_certificates = chain.as_ref().map_or(0, |c| c.len()),
        "TLS handshake done"
    );
    Some((tls, chain))
}
