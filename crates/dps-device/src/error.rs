//! The one error type of the crate.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use dps_wire::device::EnrollmentStatus;

use crate::Transport;

/// The underlying failure of a transport or TLS error (the HTTP client's, the MQTT client's, an I/O
/// error), kept for [`std::error::Error::source`].
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// The connection could not be made or broke (DNS, TCP, a proxy, closed mid-operation);
    /// [`Error::is_connect`] tells which.
    #[error("{transport}: {message}{}", transport_hint(.message))]
    Transport {
        /// The transport that failed.
        transport: Transport,
        /// What failed, in words (server text sanitized).
        message: String,
        /// What failed underneath, when something did.
        #[source]
        source: Option<Source>,
    },
    /// The TLS handshake failed (server not trusted, client certificate refused, ...).
    #[error("{transport}: TLS: {message}{}", tls_hint(.message))]
    Tls {
        /// The transport whose handshake failed.
        transport: Transport,
        /// What the handshake reported (rustls's error, e.g. `UnknownIssuer`).
        message: String,
        /// The rustls or I/O error, when there is one.
        #[source]
        source: Option<Source>,
    },
    /// The trusted CA file of [`crate::ClientBuilder::trust_pem_file`] could not be read or parsed.
    #[error("trusted CA file {}: {source}", .path.display())]
    TrustRoots {
        /// The PEM file given to the builder.
        path: PathBuf,
        /// Why it could not be used (unreadable, too large, not PEM).
        #[source]
        source: hsm_core::Error,
    },
    /// The operating system's root store ([`crate::ClientBuilder::system_roots`]) could not be read
    /// or holds no usable CA.
    #[error("system root store: {source}")]
    SystemRoots {
        /// What the store's loader reported, or that it was empty.
        #[source]
        source: Source,
    },
    /// The server refused the connection: over MQTT its CONNACK return code; over AMQP the refusal of
    /// the same meaning as that code (5, not authorized: the SASL outcome `auth` or `sys-perm`, or a link
    /// refused with `amqp:unauthorized-access`; 3, server unavailable: the SASL outcome `sys` or
    /// `sys-temp`), with the AMQP refusal in `reason` and `source`.
    #[error("{transport}: the server refused the connection: {reason} ({})", refusal_code(*.transport, *.code))]
    ConnectionRefused {
        /// The transport that connected (MQTT, MQTT-WS, AMQP or AMQP-WS).
        transport: Transport,
        /// The CONNACK return code, or over AMQP the code of the same meaning (3: server unavailable,
        /// retryable; 4: bad credentials; 5: not authorized).
        code: u8,
        /// The code in words.
        reason: String,
        /// What the client library reported, when it was an error of its own.
        #[source]
        source: Option<Source>,
    },
    /// The service answered with an error status.
    #[error(transparent)]
    Service(ServiceError),
    /// The registration ended without an assignment (`failed`, `disabled`).
    #[error("registration {status}: {message} (errorCode {})", opt(.error_code))]
    NotAssigned {
        /// [`EnrollmentStatus::Failed`] or [`EnrollmentStatus::Disabled`].
        status: EnrollmentStatus,
        /// The registration state's `errorCode` (six digits: the HTTP status and a detail).
        error_code: Option<i64>,
        /// The registration state's `errorMessage` (sanitized).
        message: String,
    },
    /// No assignment within the overall timeout.
    #[error("no assignment after {:.1}s: {detail}", .after.as_secs_f64())]
    Timeout {
        /// The overall timeout ([`crate::Options::timeout`]) that ran out.
        after: Duration,
        /// What the client was waiting for when it ran out.
        detail: String,
    },
    /// The service answered something this client cannot use (not JSON, a redirect, too large, a
    /// missing field).
    #[error("{transport}: protocol: {message}")]
    Protocol {
        /// The transport the answer came over.
        transport: Transport,
        /// What was wrong with the answer (server text sanitized).
        message: String,
    },
    /// An issued certificate chain failed a check (wrong key, wrong CN, broken links, not valid now):
    /// it must not be stored or used.
    #[error("the issued certificate chain is refused: {0}")]
    IssuedChain(String),
    /// A bug in this crate.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A transport error without an underlying one.
    pub(crate) fn transport(transport: Transport, message: impl Into<String>) -> Error {
        Error::Transport {
            transport,
            message: message.into(),
            source: None,
        }
    }

    /// A transport error caused by `source`.
    pub(crate) fn transport_from(transport: Transport, message: impl Into<String>, source: impl Into<Source>) -> Error {
        Error::Transport {
            transport,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A TLS error caused by `source`.
    pub(crate) fn tls_from(transport: Transport, message: impl Into<String>, source: impl Into<Source>) -> Error {
        Error::Tls {
            transport,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The connection to the service (or the proxy) could not be made: nothing listens, the name
    /// does not resolve, the proxy or the WebSocket upgrade was refused, the TLS handshake failed,
    /// or the server refused the connection (CONNACK).
    pub fn is_connect(&self) -> bool {
        match self {
            Error::ConnectionRefused { .. } | Error::Tls { .. } => true,
            Error::Transport { source: Some(s), .. } => causes(s.as_ref()).any(is_connect_cause),
            _ => false,
        }
    }

    /// Time ran out: the overall deadline ([`Error::Timeout`]) or a network timeout underneath.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Transport { source: Some(s), .. } => causes(s.as_ref()).any(is_timeout_cause),
            _ => false,
        }
    }

    /// The same call may succeed later unchanged: the network failed or was slow, the service was
    /// throttled or unavailable (429, 5xx, CONNACK 3). A refusal, a TLS failure (trust), a bad
    /// request or a protocol error will fail again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Timeout { .. } => true,
            Error::Service(s) => is_transient(s.status),
            Error::ConnectionRefused { code, .. } => *code == 3,
            _ => false,
        }
    }
}

/// `e` and its sources.
fn causes<'a>(e: &'a (dyn std::error::Error + 'static)) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

fn is_connect_cause(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind as K;
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return matches!(
            io.kind(),
            K::ConnectionRefused | K::AddrNotAvailable | K::HostUnreachable | K::NetworkUnreachable
        );
    }
    if let Some(t) = e.downcast_ref::<ureq::Transport>() {
        return matches!(
            t.kind(),
            ureq::ErrorKind::Dns
                | ureq::ErrorKind::ConnectionFailed
                | ureq::ErrorKind::ProxyConnect
                | ureq::ErrorKind::ProxyUnauthorized
                | ureq::ErrorKind::InvalidProxyUrl
        );
    }
    if let Some(c) = e.downcast_ref::<rumqttc::ConnectionError>() {
        return matches!(
            c,
            rumqttc::ConnectionError::Proxy(_) | rumqttc::ConnectionError::ConnectionRefused(_)
        );
    }
    matches!(
        e.downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Http(_))
    )
}

fn is_timeout_cause(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return io.kind() == std::io::ErrorKind::TimedOut;
    }
    matches!(
        e.downcast_ref::<rumqttc::ConnectionError>(),
        Some(rumqttc::ConnectionError::NetworkTimeout | rumqttc::ConnectionError::FlushTimeout)
    )
}

/// How a [`Error::ConnectionRefused`] names its code: the CONNACK's over MQTT, the CONNACK code of the
/// same meaning over AMQP (which has none of its own).
fn refusal_code(t: Transport, code: u8) -> String {
    match t {
        Transport::Amqp | Transport::AmqpWs => format!("as CONNACK {code}"),
        _ => format!("CONNACK {code}"),
    }
}

/// An error answer of the service: HTTP status (or the status in the MQTT response topic), and the
/// fields of its JSON body. Text from the server is stripped of control characters and truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// The transport the answer came over.
    pub transport: Transport,
    /// The HTTP status (or the status of the MQTT response topic, AMQP `iotdps-status`).
    pub status: u16,
    /// The body's `errorCode`: six digits, the HTTP status then a detail (`401002`: unauthorized).
    pub error_code: Option<i64>,
    /// The body's `trackingId`: quote it to Azure support.
    pub tracking_id: Option<String>,
    /// The body's `message`, or the body itself when it is not DPS's error shape.
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

/// A protocol error of `t`: the service or the peer said something this client cannot read.
pub(crate) fn protocol(t: Transport, message: impl Into<String>) -> Error {
    Error::Protocol {
        transport: t,
        message: message.into(),
    }
}

/// A status DPS may answer again a little later: throttled (429) or a server error (5xx). (The C SDK
/// treats every status from 429 up as transient; the 4xx above 429 are not DPS answers.)
pub(crate) fn is_transient(status: u16) -> bool {
    status == 429 || status >= 500
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

    fn service(status: u16) -> Error {
        Error::Service(ServiceError {
            transport: Transport::Https,
            status,
            error_code: None,
            tracking_id: None,
            message: String::new(),
            info: Vec::new(),
        })
    }

    #[test]
    fn throttling_and_unavailability_are_retryable_refusals_are_not() {
        assert!(service(429).is_retryable() && service(503).is_retryable());
        assert!(!service(400).is_retryable() && !service(401).is_retryable());
        let refused = |code| Error::ConnectionRefused {
            transport: Transport::Mqtt,
            code,
            reason: String::new(),
            source: None,
        };
        assert!(refused(3).is_retryable() && refused(3).is_connect());
        assert!(!refused(5).is_retryable());
        assert!(!Error::InvalidRequest(String::new()).is_retryable());
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        let e = Error::transport_from(Transport::Mqtt, "slow", timed_out);
        assert!(e.is_timeout() && !e.is_connect() && e.is_retryable());
        assert!(std::error::Error::source(&e).is_some());
        assert!(!Error::transport(Transport::Mqtt, "closed").is_connect());
    }

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
