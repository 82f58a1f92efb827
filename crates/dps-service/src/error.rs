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
        what: String,
        message: String,
        details: Box<ErrorDetails>,
    },
    /// 412: the `If-Match` etag is not the record's current one (someone else changed it).
    #[error("{what}: precondition failed (etag mismatch): {message}")]
    PreconditionFailed {
        what: String,
        message: String,
        details: Box<ErrorDetails>,
    },
    /// 401: the SAS token is bad or expired.
    #[error("unauthorized: {message}")]
    Unauthorized {
        message: String,
        details: Box<ErrorDetails>,
    },
    /// 403: the policy lacks the right the operation needs.
    #[error("forbidden: {message}")]
    Forbidden {
        message: String,
        details: Box<ErrorDetails>,
    },
    /// Any other error answer, with the service's `errorCode` when it sent one (body or
    /// `x-ms-error-code`) and how long it asked us to wait (`Retry-After` or `info.retryAfter`).
    #[error("{what}: the service answered {status}: {message}{}",
        code.map(|c| format!(" (errorCode {c})")).unwrap_or_default())]
    Service {
        what: String,
        status: u16,
        code: Option<i64>,
        message: String,
        retry_after: Option<Duration>,
        details: Box<ErrorDetails>,
    },
    /// A 3xx answer: the service API never redirects, so the request did not happen (a proxy or a
    /// wrong endpoint). Not followed.
    #[error("{what}: the service answered {status} (a redirect{}); redirects are not followed, nothing was done",
        location.as_deref().map(|l| format!(" to {l}")).unwrap_or_default())]
    Redirect {
        what: String,
        status: u16,
        location: Option<String>,
    },
    /// A query that does not end: a repeated continuation token, or over the listing's page cap or
    /// deadline ([`crate::ClientOptions::max_query_pages`], [`crate::ClientOptions::query_timeout`]).
    #[error("{what}: {message}")]
    Paging { what: String, message: String },
    /// The request never got an answer (connection refused, TLS, timeout).
    #[error("{what}: transport: {message}")]
    Transport { what: String, message: String },
    /// An answer that is not what the API promises.
    #[error("{what}: unexpected answer: {message}")]
    Protocol { what: String, message: String },
    /// A bad record in a bulk input file.
    #[error("{source_name} line {line}: {message}")]
    Input {
        source_name: String,
        line: u64,
        message: String,
    },
    /// A caller's mistake (an empty id, a bad option).
    #[error("invalid {what}: {message}")]
    Invalid { what: String, message: String },
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

    /// Worth another try: no answer, throttling or a server-side failure.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Service { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
