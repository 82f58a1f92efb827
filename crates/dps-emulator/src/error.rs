/// Every error of the emulator: configuration, files, sockets and TLS set-up.
///
/// Errors that a device's request causes are not here: they become HTTP responses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is wrong (names the source file, the key and what was expected) or a
    /// file could not be read: the core's `Config` and `Io` errors, one definition for the
    /// library and the emulator.
    #[error(transparent)]
    Core(#[from] hsm_core::Error),
    /// The listening socket could not be set up.
    #[error("{op} 127.0.0.1:{port}: {source}")]
    Socket {
        op: &'static str,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// The server's own CA or certificate could not be generated.
    #[error("generating the server {what}: {reason}")]
    Certificate { what: &'static str, reason: String },
    /// The durable state store (`--state-dir`) could not be opened or set up.
    #[error("the state store {}: {reason}", .path.display())]
    Store { path: std::path::PathBuf, reason: String },
    /// The TLS server configuration or an enrollment's trust store could not be built.
    #[error("TLS set-up ({what}): {source}")]
    Tls {
        what: String,
        #[source]
        source: rustls::Error,
    },
}

impl Error {
    pub(crate) fn config(source_name: impl Into<String>, key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Core(hsm_core::Error::config(source_name, key, message))
    }
}
