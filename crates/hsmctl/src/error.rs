//! hsmctl's one error type: what every command ends with instead of success.

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Core(#[from] hsm_core::Error),
    #[error("{transport}: the service answered {status}: {message}{}{}",
        error_code.map(|c| format!(" (errorCode {c})")).unwrap_or_default(),
        tracking_id.as_ref().map(|t| format!(" (trackingId {t})")).unwrap_or_default())]
    Service {
        transport: String,
        status: u16,
        error_code: Option<i64>,
        tracking_id: Option<String>,
        message: String,
    },
    #[error("connection failed: {0}")]
    Transport(String),
    #[error("unexpected answer from the service: {0}")]
    Protocol(String),
    #[error("{0}")]
    Usage(String),
}
