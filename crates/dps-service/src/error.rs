//! The one error type of the crate.

/// What went wrong talking to the Provisioning Service, or reading its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string is malformed; the message names the field (never the key).
    #[error("connection string: {0}")]
    ConnectionString(String),
    /// 404: the enrollment, group or registration does not exist.
    #[error("{what} not found: {message}")]
    NotFound { what: String, message: String },
    /// 412: the `If-Match` etag is not the record's current one (someone else changed it).
    #[error("{what}: precondition failed (etag mismatch): {message}")]
    PreconditionFailed { what: String, message: String },
    /// 401: the SAS token is bad or expired.
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// 403: the policy lacks the right the operation needs.
    #[error("forbidden: {message}")]
    Forbidden { message: String },
    /// Any other error answer, with the service's `errorCode` when it sent one.
    #[error("{what}: the service answered {status}: {message}{}",
        code.map(|c| format!(" (errorCode {c})")).unwrap_or_default())]
    Service {
        what: String,
        status: u16,
        code: Option<i64>,
        message: String,
    },
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
            Error::Service { status, .. } => Some(*status),
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
