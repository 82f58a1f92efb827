//! The C SDK's TLS IO on rustls, as a safe, non-blocking state machine.
//!
//! A [`TlsIo`] is what the SDK's `IO_INTERFACE_DESCRIPTION` drives: created with a host name
//! and a port, given options ([`options`]), opened, then pumped by [`TlsIo::dowork`]. It never
//! blocks: bytes move through a [`Transport`] (the bridge's own non-blocking TCP socket,
//! [`TcpTransport`], or an underlying IO supplied by the caller), and results come back as
//! [`Event`]s, in the order the SDK's callbacks must see them, through [`TlsIo::next_event`].
//! The C layer (`hsm-abi`) turns each event into one callback call.
//!
//! Order kept (that of the SDK's own TLS layers):
//! - open: exactly one [`Event::OpenComplete`] per successful [`TlsIo::open`]: `Ok` only after
//!   the client's Finished message was written to the transport; `Error` when connecting,
//!   resolving the key or the handshake fails; `Cancelled` when closed while opening;
//! - after a successful open: [`Event::BytesReceived`], [`Event::SendComplete`] (one per
//!   [`TlsIo::send`], once its last byte was written to the transport), and at most one
//!   [`Event::Error`] (a TLS alert such as a TLS 1.3 client-certificate rejection, which arrives
//!   after the handshake, a reset or the peer closing);
//! - close: pending sends complete with `Cancelled`, then [`Event::CloseComplete`].
//!
//! This file holds the state machine and its public calls; the byte pump behind
//! [`TlsIo::dowork`] (and failing, shutting, the client configuration) is in `io/engine.rs`.

mod cache;
mod drain;
mod engine;
mod errors;
mod events;
pub mod options;
mod tcp;
mod transport;

pub use events::{Event, OpenResult, Phase, SendResult};
pub use tcp::TcpTransport;
pub use transport::Transport;

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

use hsm_core::{Error, Result, SigningKey};
use rustls::ClientConnection;
use rustls::pki_types::ServerName;

use drain::drain_tls;
use errors::io_error;
use options::{KeyResolver, TlsOptions};

/// The TLS IO state machine.
pub struct TlsIo<T: Transport, S> {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    transport: T,
    options: TlsOptions,
    resolver: KeyResolver,
    signer: Option<Arc<dyn SigningKey>>,
    config: Option<Arc<rustls::ClientConfig>>,
    phase: Phase,
    conn: Option<ClientConnection>,
    outgoing: VecDeque<u8>,
    queued_total: u64,
    written_total: u64,
    sends: VecDeque<(u64, S)>,
    events: VecDeque<Event<S>>,
    last_error: Option<String>,
    /// Scratch buffer for reads (kept, so an idle `dowork` allocates nothing).
    scratch: Vec<u8>,
}

impl<T: Transport, S> std::fmt::Debug for TlsIo<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIo")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("phase", &self.phase)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<T: Transport, S> TlsIo<T, S> {
    /// A closed IO for `host:port` (the name is also the TLS server name checked against the
    /// server's certificate).
    pub fn new(host: &str, port: u16, transport: T, resolver: KeyResolver) -> Result<Self> {
        if host.is_empty() {
            return Err(Error::invalid("hostname", "is empty"));
        }
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|e| Error::invalid("hostname", format!("`{host}` is not a valid TLS server name: {e}")))?;
        Ok(TlsIo {
            host: host.to_string(),
            port,
            server_name,
            transport,
            options: TlsOptions::default(),
            resolver,
            signer: None,
            config: None,
            phase: Phase::NotOpen,
            conn: None,
            outgoing: VecDeque::new(),
            queued_total: 0,
            written_total: 0,
            sends: VecDeque::new(),
            events: VecDeque::new(),
            last_error: None,
            scratch: Vec::new(),
        })
    }

    /// The host name given at creation (also the name the server certificate is checked for).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port given at creation.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the IO is in its life.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The TLS options set so far.
    pub fn options(&self) -> &TlsOptions {
        &self.options
    }

    /// The transport, for options meant for it.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Why the last open, read or write failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The rustls connection, for inspection (negotiated version, peer certificates).
    pub fn connection(&self) -> Option<&ClientConnection> {
        self.conn.as_ref()
    }

    /// Set a string option (see [`options::TlsOptions::set_str`]); takes effect at the next open.
    pub fn set_option_str(&mut self, name: &str, value: &str) -> Result<()> {
        let key_before = self.options.key.is_some();
        self.options.set_str(name, value)?;
        if self.options.key.is_some() != key_before {
            self.signer = None;
        }
        self.config = None;
        Ok(())
    }

    /// Set an `int` option (see `options::TlsOptions::set_int`).
    pub fn set_option_int(&mut self, name: &str, value: i32) -> Result<()> {
        self.options.set_int(name, value)?;
        self.config = None;
        Ok(())
    }

    /// The next callback to make, if any.
    pub fn next_event(&mut self) -> Option<Event<S>> {
        self.events.pop_front()
    }

    /// Start opening.
    ///
    /// An open that fails at once (the client configuration or the key cannot be resolved, the
    /// connection is refused before `open` returns) returns the error, leaves the IO closed,
    /// AND queues an [`Event::OpenComplete`] with [`OpenResult::Error`]: the convention of the
    /// SDK's own socket and OpenSSL layers, which call their open callback with an error and
    /// then return non-zero. A caller such as the SDK's MQTT transport relies on the non-zero
    /// return: seeing success, it would wait forever for a connection that already failed.
    /// Calling `open` on an IO that is not closed is refused without any event
    /// (see [`TlsIo::is_closed`]). Later failures come only as the event.
    pub fn open(&mut self) -> Result<()> {
        if self.phase != Phase::NotOpen {
            return Err(Error::invalid(
                "open",
                format!("the TLS IO is {:?}, not closed", self.phase),
            ));
        }
        self.last_error = None;
        self.outgoing.clear();
        let started = self
            .client_config()
            .and_then(|config| {
                ClientConnection::new(config, self.server_name.clone())
                    .map_err(|e| Error::Internal(format!("rustls refused the client configuration: {e}")))
            })
            .and_then(|conn| {
                self.transport
                    .open(&self.host, self.port)
                    .map_err(|e| io_error("connecting", &self.host, self.port, &e))?;
                Ok(conn)
            });
        match started {
            Ok(conn) => {
                self.conn = Some(conn);
                self.phase = Phase::Connecting;
                // A connection that is up at once (loopback, an underlying IO that opens
                // synchronously) gets its ClientHello now rather than at the next dowork.
                // Nothing is read here: the open completes in a later dowork, never inside open.
                self.start_handshake();
                if self.phase == Phase::NotOpen {
                    // The transport failed at once; `fail` queued the event and closed the IO.
                    let message = self
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "the connection failed".into());
                    return Err(Error::Device {
                        origin: hsm_core::Origin::Tls,
                        op: "open".into(),
                        rv: 0,
                        message,
                    });
                }
                Ok(())
            }
            Err(e) => {
                self.note_error(&e.to_string());
                self.events.push_back(Event::OpenComplete(OpenResult::Error));
                Err(e)
            }
        }
    }

    /// True when the IO is closed, so that [`TlsIo::open`] may be called.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::NotOpen
    }

    /// Queue `data` for sending; its [`Event::SendComplete`] carries `token`.
    pub fn send(&mut self, data: &[u8], token: S) -> Result<()> {
        if self.phase != Phase::Open {
            return Err(Error::invalid(
                "send",
                format!("the TLS IO is {:?}, not open", self.phase),
            ));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::Internal("open TLS IO without a connection".into()));
        };
        let mut rest = data;
        while !rest.is_empty() {
            let n = conn
                .writer()
                .write(rest)
                .map_err(|e| Error::Internal(format!("rustls did not take plaintext: {e}")))?;
            rest = &rest[n..];
            drain_tls(conn, &mut self.outgoing, &mut self.queued_total)?;
        }
        self.sends.push_back((self.queued_total, token));
        if let Err(e) = self.flush() {
            self.fail(&e);
        }
        Ok(())
    }

    /// Close: cancels an open under way and pending sends, says goodbye to an open peer, then
    /// reports [`Event::CloseComplete`]. Closing a closed IO does nothing.
    pub fn close(&mut self) {
        match self.phase {
            Phase::NotOpen => {
                tracing::debug!(host = %self.host, "close of a TLS IO that is not open: nothing to do");
                return;
            }
            Phase::Connecting | Phase::Handshaking => {
                self.events.push_back(Event::OpenComplete(OpenResult::Cancelled));
            }
            Phase::Open => {
                if let Some(conn) = self.conn.as_mut() {
                    conn.send_close_notify();
                    if drain_tls(conn, &mut self.outgoing, &mut self.queued_total).is_ok() {
                        // Best effort: whatever the socket takes now, without waiting.
                        let _ = self.flush();
                    }
                }
            }
            Phase::Error => {}
        }
        self.shut();
        self.events.push_back(Event::CloseComplete);
    }

    /// If the transport is connected already, write the ClientHello.
    fn start_handshake(&mut self) {
        match self.transport.poll_open() {
            Ok(true) => {
                self.phase = Phase::Handshaking;
                if let Err(e) = self.write_pending() {
                    self.fail(&e);
                }
            }
            Ok(false) => {}
            Err(e) => {
                let e = io_error("connecting", &self.host, self.port, &e);
                self.fail(&e);
            }
        }
    }

    /// One turn of work: connect, handshake, write what is pending, read what arrived.
    pub fn dowork(&mut self) {
        if matches!(self.phase, Phase::NotOpen | Phase::Error) {
            return;
        }
        self.transport.pump();
        if self.phase == Phase::Connecting {
            match self.transport.poll_open() {
                Ok(true) => self.phase = Phase::Handshaking,
                Ok(false) => return,
                Err(e) => {
                    let e = io_error("connecting", &self.host, self.port, &e);
                    self.fail(&e);
                    return;
                }
            }
        }
        if let Err(e) = self.cycle() {
            self.fail(&e);
        }
    }
}
