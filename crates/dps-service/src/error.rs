//! The one error type of the crate.

use std::time::Duration;

use dps_wire::ErrorDetails;

/// What went wrong talking to the Provisioning Service, or reading its input. An answer of the
/// service keeps its error body ([`Error::details`]: `errorCode`, `trackingId`, `info`, ...).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string is malformed; the message names the field (never the key).
    #[error("connection string: {0}")]
    ConnectionString(String),
    /// 404: the enrollment, group or registration does not exist.
    #[error("{what} not found: {message}")]
    NotFound {
        /// What the request was about (the record, the query).
        what: String,
        /// What went wrong, in words.
        message: String,
        /// The service's error body.
        details: Box<ErrorDetails>,
    },
    /// 412: the `If-Match` etag is not the record's current one (someone else changed it).
    #[error("{what}: precondition failed (etag mismatch): {message}")]
    PreconditionFailed {
        /// What the request was about (the record, the query).
        what: String,
        /// What went wrong, in words.
        message: String,
        /// The service's error body.
        details: Box<ErrorDetails>,
    },
    /// 401: the SAS token is bad or expired.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// What went wrong, in words.
        message: String,
        /// The service's error body.
        details: Box<ErrorDetails>,
    },
    /// 403: the policy lacks the right the operation needs.
    #[error("forbidden: {message}")]
    Forbidden {
        /// What went wrong, in words.
        message: String,
        /// The service's error body.
        details: Box<ErrorDetails>,
    },
    /// Any other error answer, with the service's `errorCode` when it sent one (body or
    /// `x-ms-error-code`) and how long it asked us to wait (`Retry-After` or `info.retryAfter`).
    #[error("{what}: the service answered {status}: {message}{}",
        code.map(|c| format!(" (errorCode {c})")).unwrap_or_default())]
    Service {
        /// What the request was about (the record, the query).
        what: String,
        /// The HTTP status.
        status: u16,
        /// The service's error code, from the body or `x-ms-error-code`.
        code: Option<i64>,
        /// What went wrong, in words.
        message: String,
        /// How long the service asked us to wait.
        retry_after: Option<Duration>,
        /// The service's error body.
        details: Box<ErrorDetails>,
    },
    /// A 3xx answer: the service API never redirects, so the request did not happen (a proxy or a
    /// wrong endpoint). Not followed.
    #[error("{what}: the service answered {status} (a redirect{}); redirects are not followed, nothing was done",
        location.as_deref().map(|l| format!(" to {l}")).unwrap_or_default())]
    Redirect {
        /// What the request was about (the record, the query).
        what: String,
        /// The HTTP status.
        status: u16,
        /// Where the answer pointed (its first 200 characters).
        location: Option<String>,
    },
    /// A query that does not end: a repeated continuation token, or over the listing's page cap or
    /// deadline ([`crate::ClientOptions::max_query_pages`], [`crate::ClientOptions::query_timeout`]).
    #[error("{what}: {message}")]
    Paging {
        /// What the request was about (the record, the query).
        what: String,
        /// What went wrong, in words.
        message: String,
    },
    /// The request never got an answer: [`TransportKind`] says why (no DNS answer, connection
    /// refused, TLS, timeout); the cause (the HTTP client's error, with the I/O or TLS error under
    /// it) is the error's [`source`](std::error::Error::source).
    #[error("{what}: transport: {message}")]
    Transport {
        /// What the request was about.
        what: String,
        /// Why it got no answer, in words (the cause's own text is in `source`).
        message: String,
        /// Why it got no answer, for a program.
        kind: TransportKind,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// An answer that is not what the API promises.
    #[error("{what}: unexpected answer: {message}")]
    Protocol {
        /// What the request or value was about.
        what: String,
        /// What was wrong, in words.
        message: String,
    },
    /// A bad record in a bulk input file.
    #[error("{source_name} line {line}: {message}")]
    Input {
        /// The input (a file name).
        source_name: String,
        /// The line of the input.
        line: u64,
        /// What went wrong, in words.
        message: String,
    },
    /// Trust roots that could not be read: a PEM file missing or without a certificate, a system
    /// store that is empty.
    #[error("{what}: cannot be used as trust roots")]
    Trust {
        /// The file or store.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A caller's mistake (an empty id, a bad option).
    #[error("invalid {what}: {message}")]
    Invalid {
        /// What the request or value was about.
        what: String,
        /// What was wrong, in words.
        message: String,
    },
}

impl Error {
    /// The HTTP status behind the error, if the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::NotFound { .. } => Some(404),
            Error::PreconditionFailed { .. } => Some(412),
            Error::Unauthorized { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::Service { status, .. } | Error::Redirect { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The service's error body, if it answered with one.
    pub fn details(&self) -> Option<&ErrorDetails> {
        match self {
            Error::NotFound { details, .. }
            | Error::PreconditionFailed { details, .. }
            | Error::Unauthorized { details, .. }
            | Error::Forbidden { details, .. }
            | Error::Service { details, .. } => Some(details),
            _ => None,
        }
    }

    /// The service's `trackingId` (quote it to Azure support).
    pub fn tracking_id(&self) -> Option<&str> {
        self.details()?.tracking_id.as_deref()
    }

    /// The service's six-digit `errorCode` (status and detail, e.g. 404201).
    pub fn error_code(&self) -> Option<i64> {
        match self {
            Error::Service { code, .. } => *code,
            _ => self.details()?.error_code,
        }
    }

    /// How long the service asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Service { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The request never reached the service: no DNS answer, the connection refused or timed out,
    /// or the TLS handshake failed. Nothing was done; the same request can be sent again.
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Transport { kind, .. } if kind.is_connect())
    }

    /// Why the request had no answer, for an [`Error::Transport`].
    pub fn transport_kind(&self) -> Option<TransportKind> {
        match self {
            Error::Transport { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// A timeout: connecting, or waiting for the answer ([`crate::ClientBuilder::timeout`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Transport { kind, .. } if kind.is_timeout())
    }

    /// Worth sending again later: no answer (except a TLS failure, which another try repeats),
    /// throttling (429) or a server-side failure (5xx). The client itself already sends a 429 or
    /// 503 again [`crate::ClientBuilder::retries`] times.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { kind, .. } => *kind != TransportKind::Tls,
            Error::Service { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// 404: the enrollment, group or registration does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// The record is not in the state the request assumed: its etag changed (412) or it already
    /// exists (409).
    pub fn is_conflict(&self) -> bool {
        matches!(self.status(), Some(409 | 412))
    }

    /// 401 or 403: the connection string's policy or key is refused, or lacks the right.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Unauthorized { .. } | Error::Forbidden { .. })
    }

    /// No answer at all, throttling or a server-side failure: [`Error::is_retryable`] and also a
    /// TLS failure (the bulk pipeline waits `connect_grace` on these before giving up).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Service { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Why a request got no answer ([`Error::Transport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// The host name has no address.
    Dns,
    /// The connection was refused or could not be made (also through a proxy).
    Connect,
    /// Connecting took longer than the timeout.
    ConnectTimeout,
    /// The TLS handshake failed (an untrusted or wrong certificate, no common protocol).
    Tls,
    /// Connected, but the answer took longer than the timeout.
    Timeout,
    /// The connection broke while sending or reading (reset, closed early, a malformed answer).
    Io,
}

impl TransportKind {
    /// The request did not reach the service.
    pub fn is_connect(self) -> bool {
        matches!(
            self,
            TransportKind::Dns | TransportKind::Connect | TransportKind::ConnectTimeout | TransportKind::Tls
        )
    }

    /// A timeout, connecting or waiting.
    pub fn is_timeout(self) -> bool {
        matches!(self, TransportKind::ConnectTimeout | TransportKind::Timeout)
    }

    /// In words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            TransportKind::Dns => "the host name does not resolve",
            TransportKind::Connect => "could not connect",
            TransportKind::ConnectTimeout => "connecting timed out",
            TransportKind::Tls => "the TLS handshake failed",
            TransportKind::Timeout => "the answer timed out",
            TransportKind::Io => "the connection failed",
        }
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// `e` and its causes, each once, joined with `: ` (for a message that keeps no source).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = cause.source();
    }
    text
}

/// The result of this crate's calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
