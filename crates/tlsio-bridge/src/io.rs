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

mod cache;
mod errors;
mod events;
pub mod options;
mod tcp;
mod transport;

pub use events::{Event, OpenResult, Phase, SendResult};
pub use tcp::TcpTransport;
pub use transport::Transport;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;

use hsm_core::{Error, Result, SigningKey};
use rustls::ClientConnection;
use rustls::pki_types::ServerName;

use errors::{io_error, peer_closed, system_roots, tls_error};
use options::{KeyOption, KeyResolver, TlsOptions};

/// Reads per [`TlsIo::dowork`] at most, so one busy connection cannot hold the caller's loop.
const MAX_READS_PER_DOWORK: usize = 64;
const READ_CHUNK: usize = 16 * 1024;

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

    /// Write, read, process, until the transport has nothing more for now.
    fn cycle(&mut self) -> Result<()> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.resize(READ_CHUNK, 0);
        let r = self.cycle_with(&mut buf);
        self.scratch = buf;
        r
    }

    fn cycle_with(&mut self, buf: &mut [u8]) -> Result<()> {
        for _ in 0..MAX_READS_PER_DOWORK {
            self.write_pending()?;
            self.check_handshake_done()?;
            let n = match self.transport.read(buf) {
                Ok(0) => {
                    return Err(peer_closed(self.phase));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error("reading from", &self.host, self.port, &e)),
            };
            self.take_tls(&buf[..n])?;
            self.deliver_plaintext(buf)?;
        }
        self.write_pending()?;
        self.check_handshake_done()
    }

    fn take_tls(&mut self, mut data: &[u8]) -> Result<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::Internal("TLS IO without a connection".into()));
        };
        while !data.is_empty() {
            conn.read_tls(&mut data)
                .map_err(|e| tls_error("buffering received TLS data", e.to_string()))?;
            if let Err(e) = conn.process_new_packets() {
                // Tell the peer why (the alert rustls queued), without waiting.
                if drain_tls(conn, &mut self.outgoing, &mut self.queued_total).is_ok() {
                    let _ = self.flush();
                }
                return Err(tls_error(self.phase_action(), e.to_string()));
            }
        }
        Ok(())
    }

    fn phase_action(&self) -> &'static str {
        if self.phase == Phase::Open {
            "connection"
        } else {
            "handshake"
        }
    }

    /// Move rustls's output to our queue and write as much as the transport takes.
    fn write_pending(&mut self) -> Result<()> {
        if let Some(conn) = self.conn.as_mut() {
            drain_tls(conn, &mut self.outgoing, &mut self.queued_total)?;
        }
        self.flush()
    }

    /// After the handshake is done and the client's last flight is written: open.
    fn check_handshake_done(&mut self) -> Result<()> {
        if self.phase != Phase::Handshaking {
            return Ok(());
        }
        let done = self.conn.as_ref().is_some_and(|c| !c.is_handshaking());
        if done && self.outgoing.is_empty() {
            self.phase = Phase::Open;
            if let Some(conn) = &self.conn {
                tracing::debug!(
                    host = %self.host,
                    version = ?conn.protocol_version(),
                    suite = ?conn.negotiated_cipher_suite().map(|s| s.suite()),
                    "TLS IO open"
                );
            }
            self.events.push_back(Event::OpenComplete(OpenResult::Ok));
            let mut buf = std::mem::take(&mut self.scratch);
            buf.resize(READ_CHUNK, 0);
            let r = self.deliver_plaintext(&mut buf);
            self.scratch = buf;
            r?;
        }
        Ok(())
    }

    /// Hand decrypted bytes to the caller (only once open, so they follow the open event).
    fn deliver_plaintext(&mut self, buf: &mut [u8]) -> Result<()> {
        if self.phase != Phase::Open {
            return Ok(());
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        loop {
            match conn.reader().read(buf) {
                Ok(0) => return Err(peer_closed(Phase::Open)),
                Ok(n) => self.events.push_back(Event::BytesReceived(buf[..n].to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(tls_error("reading decrypted data", e.to_string())),
            }
        }
    }

    /// Write queued TLS bytes until done or the transport would block; complete sends.
    fn flush(&mut self) -> Result<()> {
        while !self.outgoing.is_empty() {
            let (front, _) = self.outgoing.as_slices();
            match self.transport.write(front) {
                Ok(0) => {
                    return Err(io_error(
                        "writing to",
                        &self.host,
                        self.port,
                        &io::Error::from(io::ErrorKind::WriteZero),
                    ));
                }
                Ok(n) => {
                    self.outgoing.drain(..n);
                    self.written_total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error("writing to", &self.host, self.port, &e)),
            }
        }
        while self.sends.front().is_some_and(|(end, _)| *end <= self.written_total) {
            if let Some((_, token)) = self.sends.pop_front() {
                self.events.push_back(Event::SendComplete(token, SendResult::Ok));
            }
        }
        Ok(())
    }

    fn note_error(&mut self, message: &str) {
        tracing::warn!(host = %self.host, port = self.port, "TLS IO: {message}");
        self.last_error = Some(message.to_string());
    }

    /// A failure: while opening, the open fails and the IO is closed again; once open, one
    /// error event and the IO waits for `close`.
    fn fail(&mut self, e: &Error) {
        let message = match e {
            // Our own TLS and socket errors: the device-style "(rv 0x0)" says nothing here.
            Error::Device {
                origin: hsm_core::Origin::Tls,
                op,
                message,
                ..
            } => format!("{op}: {message}"),
            other => other.to_string(),
        };
        self.note_error(&message);
        match self.phase {
            Phase::Connecting | Phase::Handshaking => {
                if self.phase == Phase::Handshaking {
                    // The key or the configuration may be what failed: resolve it again next time.
                    cache::forget(&self.options);
                    self.config = None;
                    self.signer = None;
                }
                self.shut();
                self.events.push_back(Event::OpenComplete(OpenResult::Error));
            }
            Phase::Open => {
                self.phase = Phase::Error;
                self.events.push_back(Event::Error);
            }
            Phase::NotOpen | Phase::Error => {}
        }
    }

    /// Drop the connection; pending sends are cancelled. The IO is closed afterwards.
    fn shut(&mut self) {
        self.transport.close();
        self.conn = None;
        self.outgoing.clear();
        while let Some((_, token)) = self.sends.pop_front() {
            self.events.push_back(Event::SendComplete(token, SendResult::Cancelled));
        }
        self.phase = Phase::NotOpen;
    }

    /// The client configuration for the current options (kept until an option changes, and
    /// across IOs with the same options: [`cache`]).
    fn client_config(&mut self) -> Result<Arc<rustls::ClientConfig>> {
        if let Some(c) = &self.config {
            return Ok(c.clone());
        }
        if let Some(c) = cache::get(&self.options) {
            self.config = Some(c.clone());
            return Ok(c);
        }
        let roots = match &self.options.trusted_certs {
            Some(pem) => crate::roots_from_pem("option TrustedCerts", pem.as_bytes())?,
            None => system_roots()?,
        };
        let identity = match (&self.options.certificate, &self.options.key) {
            (Some(chain_pem), Some(key)) => {
                let chain = hsm_core::pem::parse_certificates("option x509certificate", chain_pem.as_bytes())?;
                let signer = match &self.signer {
                    Some(s) => s.clone(),
                    None => {
                        let s = (self.resolver)(key.as_str()).map_err(|e| describe_key_error(key, e))?;
                        self.signer = Some(s.clone());
                        s
                    }
                };
                Some(crate::certified_key_from_parts(chain, signer)?)
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid(
                    "x509 options",
                    "a client certificate is set but no key (x509privatekey or x509EccAliasKey)",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "x509 options",
                    "a client key is set but no certificate (x509certificate or x509EccCertificate)",
                ));
            }
        };
        let config = Arc::new(crate::client_config_with_key(roots, identity, self.options.versions)?);
        cache::put(&self.options, &config);
        self.config = Some(config.clone());
        Ok(config)
    }
}

/// The error of a key that could not be resolved, naming the token (never an inline key).
fn describe_key_error(key: &KeyOption, e: Error) -> Error {
    let what = match key {
        KeyOption::Token(t, _) => format!("key token `{t}`"),
        KeyOption::InlinePem(_) => "inline PEM private key".to_string(),
    };
    Error::parse(what, format!("cannot be resolved to a signer: {e}"))
}

/// Move everything rustls has to send into `out`.
fn drain_tls(conn: &mut ClientConnection, out: &mut VecDeque<u8>, total: &mut u64) -> Result<()> {
    while conn.wants_write() {
        let mut sink = Sink(out, 0);
        conn.write_tls(&mut sink)
            .map_err(|e| tls_error("producing TLS records", e.to_string()))?;
        *total += sink.1;
    }
    Ok(())
}

struct Sink<'a>(&'a mut VecDeque<u8>, u64);

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
