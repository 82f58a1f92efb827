//! The one error type of the crate.

use std::fmt;
use std::time::Duration;

use crate::Transport;

/// What a registration can end with instead of an assignment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller asked for something this crate cannot do (checked before any connection).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The device identity (key, certificate, TPM) failed.
    #[error("device identity: {0}")]
    Identity(#[from] hsm_core::Error),
    /// The connection could not be made or broke (DNS, TCP, closed mid-operation).
    #[error("{transport}: {message}{}", transport_hint(.message))]
    Transport { transport: Transport, message: String },
    /// The TLS handshake failed (server not trusted, client certificate refused, ...).
    #[error("{transport}: TLS: {message}{}", tls_hint(.message))]
    Tls { transport: Transport, message: String },
    /// The MQTT server refused the connection (CONNACK return code).
    #[error("{transport}: the server refused the connection: {reason} (CONNACK {code})")]
    ConnectionRefused {
        transport: Transport,
        code: u8,
        reason: String,
    },
    /// The service answered with an error status.
    #[error(transparent)]
    Service(ServiceError),
    /// The registration ended without an assignment (`failed`, `disabled`).
    #[error("registration {status}: {message} (errorCode {})", opt(.error_code))]
    NotAssigned {
        status: String,
        error_code: Option<i64>,
        message: String,
    },
    /// No assignment within the overall timeout.
    #[error("no assignment after {:.1}s: {detail}", .after.as_secs_f64())]
    Timeout { after: Duration, detail: String },
    /// The service answered something this client cannot use (not JSON, a redirect, too large, a
    /// missing field).
    #[error("{transport}: protocol: {message}")]
    Protocol { transport: Transport, message: String },
    /// An issued certificate chain failed a check (wrong key, wrong CN, broken links, not valid now):
    /// it must not be stored or used.
    #[error("the issued certificate chain is refused: {0}")]
    IssuedChain(String),
    /// A bug in this crate.
    #[error("internal error: {0}")]
    Internal(String),
}

/// An error answer of the service: HTTP status (or the status in the MQTT response topic), and the
/// fields of its JSON body. Text from the server is stripped of control characters and truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub transport: Transport,
    pub status: u16,
    pub error_code: Option<i64>,
    pub tracking_id: Option<String>,
    pub message: String,
    /// The body's `info` (for example `retryAfter`, `requestId`), as `(key, value)` text pairs.
    pub info: Vec<(String, String)>,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the service answered {}: {} (errorCode {}, trackingId {})",
            self.transport,
            self.status,
            self.message,
            opt(&self.error_code),
            self.tracking_id.as_deref().unwrap_or("none")
        )?;
        for (i, (k, v)) in self.info.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { "; info: " } else { ", " })?;
        }
        Ok(())
    }
}

impl std::error::Error for ServiceError {}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "none".to_string(), T::to_string)
}

// Hints naming the likely cause of the failures a new user runs into first (issue 21, item 10).

/// rustls's `invalid peer certificate: UnknownIssuer`: the server's CA is not among the roots.
fn tls_hint(message: &str) -> &'static str {
    if message.contains("UnknownIssuer") {
        " (the server's certificate is issued by a CA this client does not trust: pass the server's CA \
         certificate as a trusted root, with hsmctl --trusted-ca FILE)"
    } else {
        ""
    }
}

/// rumqttc's `Expected ConnAck packet, received: ...`: the server answered the MQTT CONNECT
/// with something else, typically an HTTPS server's `HTTP/1.1 400` read as an MQTT packet.
fn transport_hint(message: &str) -> &'static str {
    if message.starts_with("Expected ConnAck packet") {
        " (this port does not speak MQTT: is it an HTTPS port? DPS takes MQTT on 8883, HTTPS and MQTT \
         over WebSockets on 443)"
    } else {
        ""
    }
}

/// Longest server text kept in an error.
const MAX_TEXT: usize = 512;

/// Server text for an error message: control characters removed, at most [`MAX_TEXT`] characters.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().filter(|c| !c.is_control()).enumerate() {
        if i == MAX_TEXT {
            out.push_str("...");
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_controls_and_truncates() {
        assert_eq!(sanitize("a\u{1b}[31mb\r\nc\u{7f}"), "a[31mbc");
        let long = "x".repeat(2000);
        let s = sanitize(&long);
        assert_eq!(s.len(), MAX_TEXT + 3);
        assert!(s.ends_with("..."));
        assert_eq!(sanitize("é\u{0}é"), "éé");
    }
}
