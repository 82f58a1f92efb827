//! The byte pump of a [`TlsIo`]: one turn of work (write what is pending, read what arrived,
//! feed rustls, hand out plaintext), the end of the handshake, failing and shutting the
//! connection, and the client configuration for the current options.

use std::io::{self, Read};
use std::sync::Arc;

use hsm_core::{Error, Result};

use super::TlsIo;
use super::cache;
use super::drain::drain_tls;
use super::errors::{io_error, peer_closed, system_roots, tls_error};
use super::events::{Event, OpenResult, Phase, SendResult};
use super::options::KeyOption;
use super::transport::Transport;

/// Reads per [`TlsIo::dowork`] at most, so one busy connection cannot hold the caller's loop.
const MAX_READS_PER_DOWORK: usize = 64;
const READ_CHUNK: usize = 16 * 1024;

impl<T: Transport, S> TlsIo<T, S> {
    /// Write, read, process, until the transport has nothing more for now.
    pub(super) fn cycle(&mut self) -> Result<()> {
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
    pub(super) fn write_pending(&mut self) -> Result<()> {
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
    pub(super) fn flush(&mut self) -> Result<()> {
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

    pub(super) fn note_error(&mut self, message: &str) {
        tracing::warn!(host = %self.host, port = self.port, "TLS IO: {message}");
        self.last_error = Some(message.to_string());
    }

    /// A failure: while opening, the open fails and the IO is closed again; once open, one
    /// error event and the IO waits for `close`.
    pub(super) fn fail(&mut self, e: &Error) {
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
    pub(super) fn shut(&mut self) {
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
    pub(super) fn client_config(&mut self) -> Result<Arc<rustls::ClientConfig>> {
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
